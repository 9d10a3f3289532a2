/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Backup Components Document, as any client could send it to vssd:
 * bcd_parse() either refuses it or returns a document that formats, and
 * parses back to the same text (nothing it accepted is lost or made up).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "vssd/bcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char error[512], *text = NULL, *again = NULL;
	Bcd d, e;
	int r;

	r = bcd_parse((const char *)data, size, &d, error, sizeof(error));
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		/* A refusal always names what is wrong. */
		if (error[0] == '\0')
			abort();
		return 0;
	}
	if (bcd_format(&d, &text) < 0)
		abort(); /* accepted what it cannot write */
	if (bcd_parse(text, strlen(text), &e, error, sizeof(error)) < 0)
		abort(); /* wrote what it refuses */
	if (bcd_format(&e, &again) < 0 || strcmp(text, again) != 0)
		abort(); /* the round trip changed the document */
	free(text);
	free(again);
	bcd_clear(&d);
	bcd_clear(&e);
	return 0;
}
