/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;
#define USEC_PER_SEC ((usec_t)1000000)
#define USEC_PER_MSEC ((usec_t)1000)
#define USEC_INFINITY ((usec_t)UINT64_MAX)

/* Microseconds on a clock (CLOCK_MONOTONIC, CLOCK_REALTIME, ...). */
usec_t now_usec(clockid_t clock);

/* "2026-11-24T23:05:43.123456Z" for microseconds since the epoch. */
#define RFC3339_MAX 64
char *format_rfc3339(int64_t usec, char buf[RFC3339_MAX]);

/* Append a zeroed element of size bytes to *array, which holds *n of them;
 * returns it (and counts it in *n), or NULL when out of memory, the array
 * then unchanged. */
void *array_grow(void **array, size_t *n, size_t size);
/* The same for long lists: the capacity, *allocated, doubles, so that a list
 * of 100,000 elements is not copied 100,000 times. */
void *array_append(void **array, size_t *n, size_t *allocated, size_t size);
/* Room for at least want elements (capacity at least doubling); -ENOMEM. */
int array_reserve(void **array, size_t *allocated, size_t want, size_t size);

/* strdup() that passes NULL through. */
char *strdup_or_null(const char *s);

/* s without its leading and trailing white space (cut in place). */
char *strip_whitespace(char *s);

/* Parse a non-negative decimal integer that fits in uint64_t. */
int parse_u64(const char *s, uint64_t *ret);

/* Parse a size in bytes: a decimal number with an optional binary unit, K,
 * M, G, T or P, which may be followed by "B" or "iB" ("512M", "10GiB"). */
int parse_size(const char *s, uint64_t *ret);

/* Length of a NULL-terminated string vector, and freeing one. */
size_t strv_length(char **l);
void strv_free(char **l);
static inline void strv_freep(char ***l)
{
	strv_free(*l);
}
/* Append a copy of s; returns -ENOMEM on failure. */
int strv_push_dup(char ***l, const char *s);

/* The directory holding path ("." for a bare name, "/" for "/x"); NULL when
 * out of memory. */
char *path_parent(const char *path);

/* Whether path is dir or lies below it (both canonical). */
bool path_is_below(const char *path, const char *dir);

/* mkdir -p with mode for the directories made. */
int mkdir_p(const char *path, unsigned mode);

/* The host name, for originating/service machine fields. */
const char *host_name(void);

/* The length of the UTF-8 character starting at s (of n bytes), or 0 when
 * it is not one D-Bus accepts: every string on the wire must be valid. */
size_t utf8_char_len(const char *s, size_t n);
/* Whether all of s is valid UTF-8. */
bool utf8_is_valid(const char *s);
/* Replace each byte of s that is not part of a valid character with '?' (a
 * message cut in the middle of a character, a file name in another
 * encoding), so that it can travel over D-Bus; returns s. */
char *utf8_make_valid(char *s);

/* Sleep interruptibly-safe for the given microseconds. */
void sleep_usec(usec_t usec);
