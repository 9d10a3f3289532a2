/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Schedules: /etc/vss/schedules.d/NAME.conf, one file a schedule
 * (docs/man/vss-schedules.md). Read by vssd (a tag's check, and the
 * retention a prune applies: vssd reads it itself, never from a caller), by
 * vssadmin (what create shadow --schedule makes) and by the generator that
 * makes each schedule's timer.
 */

#include <stdbool.h>
#include <stddef.h>

#include "basic/retention.h"

/* Where schedules live unless configured otherwise (vssd.conf's
 * SchedulesDirectory=, $VSS_SCHEDULES_DIR for vssadmin and the generator). */
#ifndef VSS_SCHEDULES_DIR
#define VSS_SCHEDULES_DIR "/etc/vss/schedules.d"
#endif

#define SCHEDULE_NAME_MAX 64
#define SCHEDULE_VOLUMES_MAX 65
#define SCHEDULE_ERROR_MAX 512

typedef struct Schedule {
	char *name;
	char **volumes;         /* Volumes=: absolute paths, at least one */
	char *context;          /* Context=: a context's name as vssadmin takes it; NULL: app_rollback */
	int writers;            /* Writers=: -1 as the context says, else 0 or 1 */
	char *calendar;         /* Calendar=: systemd's OnCalendar= syntax */
	RetentionPolicy policy; /* [Retention] */
} Schedule;

/* Whether name may name a schedule: 1 to SCHEDULE_NAME_MAX characters of
 * [A-Za-z0-9_.-], beginning with a letter or digit, with no "..": a file
 * name in the schedules directory and a systemd unit's instance as it is. */
bool schedule_name_is_valid(const char *name);

/* Read dir/name.conf. -ENOENT when there is none, -EINVAL for a bad name or
 * file, with why in err (file and line); -ENOMEM. The calendar is not
 * checked here (schedule_check_calendar()). */
int schedule_load(const char *dir, const char *name, Schedule *ret, char err[static SCHEDULE_ERROR_MAX]);
void schedule_clear(Schedule *s);

/* The names of the *.conf files in dir with a valid name, sorted; a
 * missing dir has none. */
int schedule_list(const char *dir, char ***ret_names, size_t *ret_n);

/* Ask systemd-analyze whether calendar is an OnCalendar= expression: 0 with
 * its next elapse (its text, e.g. "Tue 2026-12-01 22:00:00 UTC") in
 * *ret_next if wanted, -EINVAL with systemd-analyze's reason in err, or
 * -ENOENT when systemd-analyze cannot be run. */
int schedule_check_calendar(const char *calendar, char **ret_next, char err[static SCHEDULE_ERROR_MAX]);
