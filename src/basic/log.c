/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"

static int max_level = LOG_INFO;
static const char *ident;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Lines queued while held; bounded so a long hold cannot eat memory. */
#define HELD_MAX 256
static bool held;
static char *held_lines[HELD_MAX];
static unsigned n_held, n_dropped;

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

void log_set_prefix_ident(const char *s)
{
	ident = s;
}

void log_hold(void)
{
	pthread_mutex_lock(&lock);
	held = true;
	pthread_mutex_unlock(&lock);
}

void log_release(void)
{
	pthread_mutex_lock(&lock);
	held = false;
	for (unsigned i = 0; i < n_held; i++) {
		fputs(held_lines[i], stderr);
		free(held_lines[i]);
	}
	if (n_dropped > 0)
		fprintf(stderr, "<4>%s%s%u log lines dropped while filesystems were held\n",
			ident ?: "", ident ? ": " : "", n_dropped);
	n_held = n_dropped = 0;
	fflush(stderr);
	pthread_mutex_unlock(&lock);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...)
{
	char msg[2048], *out = NULL;
	int saved = errno, n;
	va_list ap;

	(void)file;
	(void)line;
	(void)func;
	if (error < 0)
		error = -error;
	if (level > max_level)
		return -error;

	/* %m in the format means the error passed in, not whatever errno is. */
	errno = error;
	va_start(ap, format);
	vsnprintf(msg, sizeof(msg), format, ap);
	va_end(ap);

	n = asprintf(&out, "<%d>%s%s%s\n", level, ident ?: "", ident ? ": " : "", msg);
	if (n < 0) {
		errno = saved;
		return -error;
	}

	pthread_mutex_lock(&lock);
	if (held) {
		if (n_held < HELD_MAX) {
			held_lines[n_held++] = out;
			out = NULL;
		} else {
			n_dropped++;
		}
	} else {
		fputs(out, stderr);
		fflush(stderr);
	}
	pthread_mutex_unlock(&lock);
	free(out);
	errno = saved;
	return -error;
}
