/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The text forms that come from users and peers: ids (vss_id_parse) and
 * result names (vss_hr_from_name). What parses must print back to a form
 * that parses to the same value.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vss/hresult.h>
#include <vss/types.h>

#include "basic/hresult-table.h"
#include "basic/id.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput in = fuzz_input(data, size);
	char buf[VSS_ID_STRING_MAX];
	const char *s;
	vss_id id, again;
	vss_hr hr, back;
	uint32_t code;

	s = fuzz_string(&in);
	if (VSS_SUCCEEDED(vss_id_parse(s, &id))) {
		vss_id_format(&id, buf);
		if (strlen(buf) != 38 || VSS_FAILED(vss_id_parse(buf, &again)) || !vss_id_equal(&id, &again))
			abort(); /* the printed form does not parse back */
		if (strncasecmp(buf + 1, s + (s[0] == '{'), 36) != 0)
			abort(); /* parsed to another id than the one written */
	}

	s = fuzz_string(&in);
	if (VSS_SUCCEEDED(vss_hr_from_name(s, &hr)) && (VSS_FAILED(vss_hr_from_name(vss_hr_name(hr), &back)) ||
							 back != hr || !streq(vss_hr_name(hr), s)))
		abort(); /* a name that does not come back */

	/* Names and messages of any value, known or not. */
	fuzz_bytes(&in, &code, sizeof(code));
	if (!vss_hr_name((vss_hr)code) || !vss_hr_message((vss_hr)code))
		abort();
	fuzz_free(&in);
	return 0;
}
