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

/* Each byte's value as a hex digit plus one, 0 for any other: a table, not
 * three range checks, since a listing parses three ids a snapshot. */
static const unsigned char hex_values[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* By hand rather than with libuuid: a listing formats or parses three ids
 * per snapshot at each end, and uuid_parse() (a strtoul() per group) was
 * some 6 % of vssd's time in a listing. The forms are the same. */
char *vss_id_format(const vss_id *id, char buf[VSS_ID_STRING_MAX])
{
	static const char digits[] = "0123456789abcdef";
	char *p = buf;

	*p++ = '{';
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = digits[id->bytes[i] >> 4];
		*p++ = digits[id->bytes[i] & 15];
	}
	*p++ = '}';
	*p = '\0';
	return buf;
}

vss_hr vss_id_parse(const char *s, vss_id *ret)
{
	const unsigned char *p;
	vss_id id;
	bool braced;

	if (ret)
		*ret = VSS_ID_NULL;
	if (!s || !ret)
		return E_INVALIDARG;
	braced = s[0] == '{';
	p = (const unsigned char *)s + braced;
	/* A NUL fails the digit or dash checks before anything past it is
	 * read, so no strlen() first. */
	for (size_t i = 0, k = 0; i < 16; i++) {
		int hi, lo;

		if (k == 8 || k == 13 || k == 18 || k == 23) {
			if (p[k] != '-')
				return E_INVALIDARG;
			k++;
		}
		hi = hex_values[p[k]] - 1;
		if (hi < 0)
			return E_INVALIDARG;
		lo = hex_values[p[k + 1]] - 1;
		if (lo < 0)
			return E_INVALIDARG;
		id.bytes[i] = (uint8_t)(hi << 4 | lo);
		k += 2;
	}
	if (braced ? p[36] != '}' || p[37] != '\0' : p[36] != '\0')
		return E_INVALIDARG;
	*ret = id;
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
