/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include <vss/types.h>

#include "basic/id.h"

void vss_id_generate(vss_id *ret)
{
	uuid_generate_random(ret->bytes);
}

char *vss_id_format(const vss_id *id, char buf[VSS_ID_STRING_MAX])
{
	buf[0] = '{';
	uuid_unparse_lower(id->bytes, buf + 1);
	buf[37] = '}';
	buf[38] = '\0';
	return buf;
}

vss_hr vss_id_parse(const char *s, vss_id *ret)
{
	char tmp[37];
	size_t n;
	uuid_t u;

	if (ret)
		*ret = VSS_ID_NULL;
	if (!s || !ret)
		return E_INVALIDARG;
	n = strlen(s);
	if (n == 38 && s[0] == '{' && s[37] == '}') {
		memcpy(tmp, s + 1, 36);
	} else if (n == 36) {
		memcpy(tmp, s, 36);
	} else {
		return E_INVALIDARG;
	}
	tmp[36] = '\0';
	if (uuid_parse(tmp, u) < 0)
		return E_INVALIDARG;
	memcpy(ret->bytes, u, 16);
	return S_OK;
}

bool vss_id_is_null(const vss_id *id)
{
	static const vss_id null_id;

	return !id || memcmp(id, &null_id, sizeof(null_id)) == 0;
}

bool vss_id_equal(const vss_id *a, const vss_id *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}
