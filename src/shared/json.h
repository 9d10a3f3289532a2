/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small streaming JSON writer for --json output. It keeps track of commas;
 * the caller keeps track of nesting, at most 31 levels deep. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_BUFFER_SIZE 65536

typedef struct JsonWriter {
	FILE *f;
	int depth;
	bool need_comma[32];
	bool pretty;
	bool after_key;
	/* The document goes to f in blocks of this buffer, not a stdio
	 * call per token: a listing of 100,000 snapshots is some 68 MB. */
	size_t len;
	char buf[JSON_BUFFER_SIZE];
} JsonWriter;

/* Holds f's lock (flockfile) until json_finish(), which must follow and
 * writes what is still buffered. */
void json_init(JsonWriter *w, FILE *f, bool pretty);
void json_begin_object(JsonWriter *w);
void json_end_object(JsonWriter *w);
void json_begin_array(JsonWriter *w);
void json_end_array(JsonWriter *w);
/* A key inside an object; the value follows with one of the calls below. */
void json_key(JsonWriter *w, const char *key);
void json_string(JsonWriter *w, const char *s); /* NULL writes null */
void json_int(JsonWriter *w, int64_t v);
void json_uint(JsonWriter *w, uint64_t v);
void json_bool(JsonWriter *w, bool v);
/* Finish the document with a newline, and release f. */
void json_finish(JsonWriter *w);
