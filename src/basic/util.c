/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/util.h"

usec_t now_usec(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

char *format_rfc3339(int64_t usec, char buf[RFC3339_MAX])
{
	time_t sec = (time_t)(usec / 1000000);
	struct tm tm;
	char base[32];

	gmtime_r(&sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, RFC3339_MAX, "%s.%06dZ", base, (int)(usec % 1000000));
	return buf;
}

void *array_grow(void **array, size_t *n, size_t size)
{
	void *na = realloc(*array, size * (*n + 1));

	if (!na)
		return NULL;
	*array = na;
	memset((char *)na + size * *n, 0, size);
	return (char *)na + size * (*n)++;
}

int array_reserve(void **array, size_t *allocated, size_t want, size_t size)
{
	void *na;

	if (want <= *allocated)
		return 0;
	want = MAX(want, MAX(*allocated * 2, (size_t)16));
	na = reallocarray(*array, want, size);
	if (!na)
		return -ENOMEM;
	*array = na;
	*allocated = want;
	return 0;
}

void *array_append(void **array, size_t *n, size_t *allocated, size_t size)
{
	if (array_reserve(array, allocated, *n + 1, size) < 0)
		return NULL;
	memset((char *)*array + size * *n, 0, size);
	return (char *)*array + size * (*n)++;
}

char *strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *strip_whitespace(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	/* strtoull() would skip blanks and accept a sign: " -1" is not a u64. */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -errno;
	if (*end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const char units[] = "BKMGTP";
	unsigned long long v;
	const char *u;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -errno;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u || !(streq(end + 1, "") || strcasecmp(end + 1, "B") == 0 || strcasecmp(end + 1, "iB") == 0))
			return -EINVAL;
		for (long i = 0; i < u - units; i++) {
			if (v > UINT64_MAX / 1024)
				return -ERANGE;
			v *= 1024;
		}
	}
	*ret = v;
	return 0;
}

size_t strv_length(char **l)
{
	size_t n = 0;

	while (l && l[n])
		n++;
	return n;
}

void strv_free(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

int strv_push_dup(char ***l, const char *s)
{
	size_t n = strv_length(*l);
	char **nl, *c;

	c = strdup(s);
	if (!c)
		return -ENOMEM;
	nl = realloc(*l, sizeof(char *) * (n + 2));
	if (!nl) {
		free(c);
		return -ENOMEM;
	}
	nl[n] = c;
	nl[n + 1] = NULL;
	*l = nl;
	return 0;
}

char *path_parent(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

bool path_is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (streq(dir, "/"))
		return path[0] == '/';
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int mkdir_p(const char *path, unsigned mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

const char *host_name(void)
{
	static char name[256];

	if (!name[0] && gethostname(name, sizeof(name) - 1) < 0)
		strcpy(name, "localhost");
	return name;
}

void sleep_usec(usec_t usec)
{
	struct timespec ts = {
		.tv_sec = (time_t)(usec / USEC_PER_SEC),
		.tv_nsec = (long)(usec % USEC_PER_SEC) * 1000,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The hook writer has a copy of its own: writers use the installed API only. */
size_t utf8_char_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t c;
	size_t len;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and noncharacters: sd-bus refuses them too. */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
	    (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
		return 0;
	return len;
}

bool utf8_is_valid(const char *s)
{
	size_t n = strlen(s), len;

	for (size_t i = 0; i < n; i += len) {
		len = utf8_char_len(s + i, n - i);
		if (len == 0)
			return false;
	}
	return true;
}

char *utf8_make_valid(char *s)
{
	size_t n = strlen(s), len;

	for (size_t i = 0; i < n; i += len) {
		len = utf8_char_len(s + i, n - i);
		if (len == 0) {
			s[i] = '?';
			len = 1;
		}
	}
	return s;
}
