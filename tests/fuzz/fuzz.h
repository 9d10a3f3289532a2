/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every fuzz target shares: the libFuzzer entry point, and a reader of
 * the input that never runs past its end (past it, every read gives zeros
 * and empty strings), so a target can take what it needs without checks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct FuzzInput {
	char *buf;      /* a copy of the input with a '\0' after it */
	size_t size, pos;
} FuzzInput;

static inline FuzzInput fuzz_input(const uint8_t *data, size_t size)
{
	FuzzInput in = { .buf = malloc(size + 1), .size = size };

	if (!in.buf)
		abort();
	memcpy(in.buf, data, size);
	in.buf[size] = '\0';
	return in;
}

static inline void fuzz_free(FuzzInput *in)
{
	free(in->buf);
	*in = (FuzzInput){ 0 };
}

static inline bool fuzz_at_end(const FuzzInput *in)
{
	return in->pos >= in->size;
}

static inline void fuzz_bytes(FuzzInput *in, void *ret, size_t n)
{
	size_t k = MIN(n, in->size - in->pos);

	memcpy(ret, in->buf + in->pos, k);
	memset((char *)ret + k, 0, n - k);
	in->pos += k;
}

static inline uint8_t fuzz_u8(FuzzInput *in)
{
	uint8_t v;

	fuzz_bytes(in, &v, 1);
	return v;
}

/* The bytes up to the next '\0' (or the end), as a string that lives as long
 * as the input. */
static inline const char *fuzz_string(FuzzInput *in)
{
	const char *s = in->buf + in->pos;
	size_t n = strlen(s);

	in->pos = MIN(in->pos + n + 1, in->size);
	return s;
}
