/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/json.h"
#include "tests.h"

/* Output goes to memory so that it can be compared byte for byte: --json is
 * read by scripts, and a stray space or comma breaks them. */
typedef struct Capture {
	FILE *f;
	char *buf;
	size_t size;
	JsonWriter w;
} Capture;

static void capture_start(Capture *c, bool pretty)
{
	c->buf = NULL;
	c->size = 0;
	c->f = open_memstream(&c->buf, &c->size);
	ASSERT_NOT_NULL(c->f);
	json_init(&c->w, c->f, pretty);
}

static void capture_check(Capture *c, const char *expected)
{
	ASSERT_EQ_INT(0, fclose(c->f));
	ASSERT_STREQ(expected, c->buf);
	ASSERT_EQ_UINT(strlen(expected), c->size);
	free(c->buf);
}

/* One document exercising every call, written compact or pretty. */
static void write_sample(JsonWriter *w)
{
	json_begin_object(w);
	json_key(w, "name");
	json_string(w, "vss");
	json_key(w, "count");
	json_int(w, -3);
	json_key(w, "size");
	json_uint(w, UINT64_MAX);
	json_key(w, "ok");
	json_bool(w, true);
	json_key(w, "no");
	json_bool(w, false);
	json_key(w, "missing");
	json_string(w, NULL);
	json_key(w, "list");
	json_begin_array(w);
	json_int(w, 1);
	json_int(w, 2);
	json_begin_object(w);
	json_key(w, "a");
	json_begin_array(w);
	json_end_array(w);
	json_end_object(w);
	json_end_array(w);
	json_key(w, "empty");
	json_begin_object(w);
	json_end_object(w);
	json_end_object(w);
	json_finish(w);
}

static void test_compact(void)
{
	Capture c;

	capture_start(&c, false);
	write_sample(&c.w);
	capture_check(&c, "{\"name\":\"vss\",\"count\":-3,\"size\":18446744073709551615,\"ok\":true,"
			  "\"no\":false,\"missing\":null,\"list\":[1,2,{\"a\":[]}],\"empty\":{}}\n");
}

static void test_pretty(void)
{
	Capture c;

	capture_start(&c, true);
	write_sample(&c.w);
	capture_check(&c,
		      "{\n"
		      "  \"name\": \"vss\",\n"
		      "  \"count\": -3,\n"
		      "  \"size\": 18446744073709551615,\n"
		      "  \"ok\": true,\n"
		      "  \"no\": false,\n"
		      "  \"missing\": null,\n"
		      "  \"list\": [\n"
		      "    1,\n"
		      "    2,\n"
		      "    {\n"
		      "      \"a\": []\n"
		      "    }\n"
		      "  ],\n"
		      "  \"empty\": {}\n"
		      "}\n");
}

/* vssadmin list --json: a top-level array of objects. */
static void test_array_of_objects(void)
{
	Capture c;

	for (int pretty = 0; pretty < 2; pretty++) {
		capture_start(&c, pretty);
		json_begin_array(&c.w);
		for (int i = 0; i < 3; i++) {
			json_begin_object(&c.w);
			json_key(&c.w, "i");
			json_int(&c.w, i);
			json_key(&c.w, "tags");
			json_begin_array(&c.w);
			json_string(&c.w, "t");
			json_end_array(&c.w);
			json_end_object(&c.w);
		}
		json_end_array(&c.w);
		json_finish(&c.w);
		if (pretty)
			capture_check(&c, "[\n"
					  "  {\n"
					  "    \"i\": 0,\n"
					  "    \"tags\": [\n"
					  "      \"t\"\n"
					  "    ]\n"
					  "  },\n"
					  "  {\n"
					  "    \"i\": 1,\n"
					  "    \"tags\": [\n"
					  "      \"t\"\n"
					  "    ]\n"
					  "  },\n"
					  "  {\n"
					  "    \"i\": 2,\n"
					  "    \"tags\": [\n"
					  "      \"t\"\n"
					  "    ]\n"
					  "  }\n"
					  "]\n");
		else
			capture_check(&c, "[{\"i\":0,\"tags\":[\"t\"]},{\"i\":1,\"tags\":[\"t\"]},"
					  "{\"i\":2,\"tags\":[\"t\"]}]\n");
	}

	/* Empty containers at the top. */
	capture_start(&c, true);
	json_begin_array(&c.w);
	json_end_array(&c.w);
	json_finish(&c.w);
	capture_check(&c, "[]\n");
	capture_start(&c, false);
	json_begin_object(&c.w);
	json_end_object(&c.w);
	json_finish(&c.w);
	capture_check(&c, "{}\n");
}

static void test_escaping(void)
{
	Capture c;

	capture_start(&c, false);
	json_begin_object(&c.w);
	/* Keys are escaped like values. */
	json_key(&c.w, "k\"ey\\");
	json_string(&c.w, "q\"b\\s\nn\tt\rr\x01\x1f\x7f /é€");
	json_key(&c.w, "");
	json_string(&c.w, "");
	json_end_object(&c.w);
	json_finish(&c.w);
	capture_check(&c, "{\"k\\\"ey\\\\\":\"q\\\"b\\\\s\\nn\\tt\\rr\\u0001\\u001f\x7f /é€\",\"\":\"\"}\n");
}

static void test_numbers(void)
{
	Capture c;

	capture_start(&c, false);
	json_begin_array(&c.w);
	json_int(&c.w, INT64_MIN);
	json_int(&c.w, INT64_MAX);
	json_int(&c.w, 0);
	json_uint(&c.w, 0);
	json_uint(&c.w, (uint64_t)INT64_MAX + 1);
	json_end_array(&c.w);
	json_finish(&c.w);
	capture_check(&c, "[-9223372036854775808,9223372036854775807,0,0,9223372036854775808]\n");
}

/* The writer keeps its own stack of 32 levels; everything vssadmin writes
 * is far shallower, but up to that depth the output must stay exact and the
 * levels must unwind to where they started. */
static void test_nesting(void)
{
	char expected[256];
	size_t n;
	Capture c;

	capture_start(&c, false);
	json_begin_object(&c.w);
	json_key(&c.w, "x");
	for (int i = 0; i < 30; i++)
		json_begin_array(&c.w);
	json_int(&c.w, 1);
	json_int(&c.w, 2);
	for (int i = 0; i < 30; i++)
		json_end_array(&c.w);
	json_key(&c.w, "y");
	json_int(&c.w, 3);
	json_end_object(&c.w);
	json_finish(&c.w);

	n = (size_t)snprintf(expected, sizeof(expected), "{\"x\":");
	for (int i = 0; i < 30; i++)
		expected[n++] = '[';
	n += (size_t)snprintf(expected + n, sizeof(expected) - n, "1,2");
	for (int i = 0; i < 30; i++)
		expected[n++] = ']';
	snprintf(expected + n, sizeof(expected) - n, ",\"y\":3}\n");
	capture_check(&c, expected);
}

int main(void)
{
	RUN_TEST(test_compact);
	RUN_TEST(test_pretty);
	RUN_TEST(test_array_of_objects);
	RUN_TEST(test_escaping);
	RUN_TEST(test_numbers);
	RUN_TEST(test_nesting);
	TEST_SUMMARY();
	return 0;
}
