/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "basic/macro.h"

#include "shared/json.h"

/* The writer takes the stream's lock for its whole document (json_init() to
 * json_finish()) and hands it its own buffer a block at a time. */
void json_init(JsonWriter *w, FILE *f, bool pretty)
{
	flockfile(f);
	w->f = f;
	w->depth = 0;
	w->need_comma[0] = false;
	w->pretty = pretty;
	w->after_key = false;
	w->len = 0;
}

static void flush_buffer(JsonWriter *w)
{
	fwrite_unlocked(w->buf, 1, w->len, w->f);
	w->len = 0;
}

static void put(JsonWriter *w, const void *p, size_t n)
{
	if (w->len + n > sizeof(w->buf)) {
		flush_buffer(w);
		if (n > sizeof(w->buf)) {
			fwrite_unlocked(p, 1, n, w->f);
			return;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void putch(JsonWriter *w, char c)
{
	if (w->len == sizeof(w->buf))
		flush_buffer(w);
	w->buf[w->len++] = c;
}

static void indent(JsonWriter *w)
{
	static const char spaces[] = "                                ";

	if (!w->pretty)
		return;
	putch(w, '\n');
	for (int left = 2 * w->depth; left > 0; left -= (int)sizeof(spaces) - 1)
		put(w, spaces, MIN((size_t)left, sizeof(spaces) - 1));
}

/* Before a value or a key at the current level. */
static void separate(JsonWriter *w, bool is_value_after_key)
{
	if (is_value_after_key)
		return;
	if (w->need_comma[w->depth])
		putch(w, ',');
	w->need_comma[w->depth] = true;
	if (w->depth > 0)
		indent(w);
}

static void value_prefix(JsonWriter *w)
{
	separate(w, w->after_key);
	w->after_key = false;
}

static void open_container(JsonWriter *w, char c)
{
	/* The documents vss writes are a few levels deep. */
	assert(w->depth < (int)ELEMENTSOF(w->need_comma) - 1);
	value_prefix(w);
	putch(w, c);
	w->depth++;
	w->need_comma[w->depth] = false;
}

static void close_container(JsonWriter *w, char c)
{
	bool had = w->need_comma[w->depth];

	if (w->depth > 0)
		w->depth--;
	if (had)
		indent(w);
	putch(w, c);
}

void json_begin_object(JsonWriter *w)
{
	open_container(w, '{');
}

void json_end_object(JsonWriter *w)
{
	close_container(w, '}');
}

void json_begin_array(JsonWriter *w)
{
	open_container(w, '[');
}

void json_end_array(JsonWriter *w)
{
	close_container(w, ']');
}

/* Bytes written as they are: not a control character, '"' or '\\' (NUL,
 * which ends the string, is not plain either). */
static const bool plain[256] = {
	[0x20 ... '"' - 1] = true,
	['"' + 1 ... '\\' - 1] = true,
	['\\' + 1 ... 0xff] = true,
};

static void write_string(JsonWriter *w, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putch(w, '"');
	for (;;) {
		size_t run = 0;
		char esc[8];

		/* Runs that need no escape in one copy, not a call per byte;
		 * one table look-up a byte (this loop was a third of a
		 * listing's time in vssadmin). */
		while (plain[p[run]])
			run++;
		put(w, p, run);
		p += run;
		if (!*p)
			break;
		switch (*p) {
		case '"':
			put(w, "\\\"", 2);
			break;
		case '\\':
			put(w, "\\\\", 2);
			break;
		case '\n':
			put(w, "\\n", 2);
			break;
		case '\t':
			put(w, "\\t", 2);
			break;
		case '\r':
			put(w, "\\r", 2);
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(w, esc, 6);
		}
		p++;
	}
	putch(w, '"');
}

/* Digits of v, without printf's format parsing for each number. */
static void write_u64(JsonWriter *w, uint64_t v, bool negative)
{
	char digits[24], *p = digits + sizeof(digits);

	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	if (negative)
		*--p = '-';
	put(w, p, (size_t)(digits + sizeof(digits) - p));
}

void json_key(JsonWriter *w, const char *key)
{
	separate(w, false);
	write_string(w, key);
	put(w, ": ", w->pretty ? 2 : 1);
	w->after_key = true;
}

void json_string(JsonWriter *w, const char *s)
{
	value_prefix(w);
	if (s)
		write_string(w, s);
	else
		put(w, "null", 4);
}

void json_int(JsonWriter *w, int64_t v)
{
	value_prefix(w);
	/* -INT64_MIN does not fit an int64_t; as a uint64_t it is exact. */
	write_u64(w, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0);
}

void json_uint(JsonWriter *w, uint64_t v)
{
	value_prefix(w);
	write_u64(w, v, false);
}

void json_bool(JsonWriter *w, bool v)
{
	value_prefix(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void json_finish(JsonWriter *w)
{
	putch(w, '\n');
	flush_buffer(w);
	fflush(w->f);
	funlockfile(w->f);
}
