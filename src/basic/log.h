/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "basic/macro.h"

/*
 * Logging for vssd and the tools (never for libvss, which reports through
 * its results). Lines go to stderr with a "<N>" syslog prefix that journald
 * understands.
 *
 * While filesystems are held, a write to stderr could block on one of them,
 * so log_hold() queues lines in memory and log_release() writes them out.
 */

void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_prefix_ident(const char *ident);

void log_hold(void);
void log_release(void);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);

/* Each returns -abs(error), so "return log_error_errno(r, ...)" works. */
#define log_full_errno(level, error, ...) \
	log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_crit(...) log_full_errno(LOG_CRIT, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
