/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A minimal assertion kit for the unit tests: no framework, so a test is a
 * plain program whose exit status meson reads.
 *
 * Every ASSERT_* counts one check and, when it fails, prints file:line, the
 * expression and both values, then exits with status 1 at once: one broken
 * invariant tends to break the ones after it, and the first report is the one
 * worth reading. The exit skips atexit handlers so that LeakSanitizer does
 * not bury the report under leaks of the aborted test; test_on_failure lets a
 * test remove what it created on disk first.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vss/hresult.h>
#include <vss/types.h>

static unsigned long test_checks __attribute__((unused));
static void (*test_on_failure)(void) __attribute__((unused));

__attribute__((noreturn, format(printf, 3, 4), unused))
static void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	if (test_on_failure)
		test_on_failure();
	_exit(EXIT_FAILURE);
}

#define TEST_FAIL(...) test_fail(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT_TRUE(expr)                                                   \
	do {                                                                \
		test_checks++;                                              \
		if (!(expr))                                                \
			TEST_FAIL("ASSERT_TRUE(%s) failed", #expr);         \
	} while (0)

#define ASSERT_FALSE(expr)                                                  \
	do {                                                                \
		test_checks++;                                              \
		if (expr)                                                   \
			TEST_FAIL("ASSERT_FALSE(%s) failed", #expr);        \
	} while (0)

#define ASSERT_EQ_INT(expected, actual)                                     \
	do {                                                                \
		long long _e = (long long)(expected);                       \
		long long _a = (long long)(actual);                         \
		test_checks++;                                              \
		if (_e != _a)                                               \
			TEST_FAIL("%s: expected %lld (%s), got %lld",       \
				  #actual, _e, #expected, _a);              \
	} while (0)

#define ASSERT_EQ_UINT(expected, actual)                                    \
	do {                                                                \
		unsigned long long _e = (unsigned long long)(expected);     \
		unsigned long long _a = (unsigned long long)(actual);       \
		test_checks++;                                              \
		if (_e != _a)                                               \
			TEST_FAIL("%s: expected %llu (%s), got %llu",       \
				  #actual, _e, #expected, _a);              \
	} while (0)

#define ASSERT_NE_INT(unexpected, actual)                                   \
	do {                                                                \
		long long _u = (long long)(unexpected);                     \
		long long _a = (long long)(actual);                         \
		test_checks++;                                              \
		if (_u == _a)                                               \
			TEST_FAIL("%s: expected anything but %lld (%s)",    \
				  #actual, _u, #unexpected);                \
	} while (0)

/* NULL equals only NULL, so optional strings compare with the same macro. */
#define ASSERT_STREQ(expected, actual)                                      \
	do {                                                                \
		const char *_e = (expected);                                \
		const char *_a = (actual);                                  \
		test_checks++;                                              \
		if (!(_e == _a || (_e && _a && strcmp(_e, _a) == 0)))      \
			TEST_FAIL("%s: expected \"%s\", got \"%s\"",        \
				  #actual, _e ? _e : "(null)",               \
				  _a ? _a : "(null)");                      \
	} while (0)

#define ASSERT_NULL(p)                                                      \
	do {                                                                \
		const void *_p = (p);                                       \
		test_checks++;                                              \
		if (_p)                                                     \
			TEST_FAIL("%s: expected NULL, got %p", #p, _p);     \
	} while (0)

#define ASSERT_NOT_NULL(p)                                                  \
	do {                                                                \
		test_checks++;                                              \
		if (!(p))                                                   \
			TEST_FAIL("%s: expected non-NULL", #p);             \
	} while (0)

/* Results are shown by name as well as by value: "VSS_E_BAD_STATE" is what
 * one looks up, 0x80042301 is what tells two unknown values apart. */
#define ASSERT_HR(expected, actual)                                         \
	do {                                                                \
		vss_hr _e = (expected);                                     \
		vss_hr _a = (actual);                                       \
		test_checks++;                                              \
		if (_e != _a)                                               \
			TEST_FAIL("%s: expected %s (0x%08" PRIx32 "), got %s (0x%08" PRIx32 ")", \
				  #actual, vss_hr_name(_e), (uint32_t)_e,   \
				  vss_hr_name(_a), (uint32_t)_a);           \
	} while (0)

/* For the errno-style "r < 0 is -errno" convention of the internal API. */
#define ASSERT_OK(expr)                                                     \
	do {                                                                \
		long long _r = (long long)(expr);                           \
		test_checks++;                                              \
		if (_r < 0)                                                 \
			TEST_FAIL("%s failed: %lld (%s)", #expr, _r,       \
				  strerror((int)-_r));                      \
	} while (0)

#define ASSERT_ERRNO(expected_negative, expr)                               \
	do {                                                                \
		long long _e = (long long)(expected_negative);              \
		long long _r = (long long)(expr);                           \
		test_checks++;                                              \
		if (_e != _r)                                               \
			TEST_FAIL("%s: expected %lld (%s), got %lld (%s)",  \
				  #expr, _e, strerror((int)-_e), _r,        \
				  _r < 0 ? strerror((int)-_r) : "no error"); \
	} while (0)

#define ASSERT_ID_EQ(expected, actual)                                      \
	do {                                                                \
		const vss_id *_e = (expected);                              \
		const vss_id *_a = (actual);                                \
		char _be[VSS_ID_STRING_MAX], _ba[VSS_ID_STRING_MAX];        \
		test_checks++;                                              \
		if (memcmp(_e->bytes, _a->bytes, sizeof(_e->bytes)) != 0)   \
			TEST_FAIL("%s: expected %s, got %s", #actual,       \
				  vss_id_format(_e, _be),                   \
				  vss_id_format(_a, _ba));                  \
	} while (0)

/* Run one test function and say which, so a failure report has context. */
#define RUN_TEST(fn, ...)                                                   \
	do {                                                                \
		unsigned long _before = test_checks;                        \
		fn(__VA_ARGS__);                                            \
		printf("%-40s ok (%lu checks)\n", #fn,                       \
		       test_checks - _before);                              \
	} while (0)

#define TEST_SUMMARY()                                                      \
	do {                                                                \
		printf("all %lu checks passed\n", test_checks);             \
		fflush(stdout);                                             \
	} while (0)
