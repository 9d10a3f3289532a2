/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>

#include "basic/macro.h"

#include "shared/json.h"

/* The writer takes the stream's lock for its whole document (json_init() to
 * json_finish()), so that each character does not: a listing of 100,000
 * snapshots is some 60 MB. */
void json_init(JsonWriter *w, FILE *f, bool pretty)
{
	flockfile(f);
	*w = (JsonWriter){ .f = f, .pretty = pretty };
}

static void indent(JsonWriter *w)
{
	static const char spaces[] = "                                ";

	if (!w->pretty)
		return;
	putc_unlocked('\n', w->f);
	for (int left = 2 * w->depth; left > 0; left -= (int)sizeof(spaces) - 1)
		fwrite_unlocked(spaces, 1, MIN((size_t)left, sizeof(spaces) - 1), w->f);
}

/* Before a value or a key at the current level. */
static void separate(JsonWriter *w, bool is_value_after_key)
{
	if (is_value_after_key)
		return;
	if (w->need_comma[w->depth])
		putc_unlocked(',', w->f);
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
	putc_unlocked(c, w->f);
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
	putc_unlocked(c, w->f);
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

static void write_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putc_unlocked('"', f);
	for (;;) {
		size_t run = 0;

		/* Runs that need no escape in one call, not a call per
		 * byte: a listing of 100,000 snapshots is some 60 MB. */
		while (p[run] >= 0x20 && p[run] != '"' && p[run] != '\\')
			run++;
		fwrite_unlocked(p, 1, run, f);
		p += run;
		if (!*p)
			break;
		switch (*p) {
		case '"':
			fputs_unlocked("\\\"", f);
			break;
		case '\\':
			fputs_unlocked("\\\\", f);
			break;
		case '\n':
			fputs_unlocked("\\n", f);
			break;
		case '\t':
			fputs_unlocked("\\t", f);
			break;
		case '\r':
			fputs_unlocked("\\r", f);
			break;
		default:
			fprintf(f, "\\u%04x", *p);
		}
		p++;
	}
	putc_unlocked('"', f);
}

void json_key(JsonWriter *w, const char *key)
{
	separate(w, false);
	write_string(w->f, key);
	fputs_unlocked(w->pretty ? ": " : ":", w->f);
	w->after_key = true;
}

void json_string(JsonWriter *w, const char *s)
{
	value_prefix(w);
	if (s)
		write_string(w->f, s);
	else
		fputs_unlocked("null", w->f);
}

void json_int(JsonWriter *w, int64_t v)
{
	value_prefix(w);
	fprintf(w->f, "%" PRId64, v);
}

void json_uint(JsonWriter *w, uint64_t v)
{
	value_prefix(w);
	fprintf(w->f, "%" PRIu64, v);
}

void json_bool(JsonWriter *w, bool v)
{
	value_prefix(w);
	fputs_unlocked(v ? "true" : "false", w->f);
}

void json_finish(JsonWriter *w)
{
	putc_unlocked('\n', w->f);
	fflush(w->f);
	funlockfile(w->f);
}
