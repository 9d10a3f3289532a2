/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-schedule-generator: a systemd generator (systemd.generator(7)). A
 * template timer cannot read each schedule's calendar, so at boot and at
 * each daemon-reload this writes, for every schedule of the schedules
 * directory, a drop-in vss-snapshot@NAME.timer.d/50-calendar.conf with its
 * OnCalendar=, and enables that timer under timers.target. A bad schedule
 * is skipped and said on stderr (the journal); the others are written.
 *
 * Usage: vss-schedule-generator NORMAL_DIR [EARLY_DIR LATE_DIR]. The
 * schedules are read from $VSS_SCHEDULES_DIR, else the installed
 * /etc/vss/schedules.d.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/schedule.h"
#include "basic/util.h"

#ifndef VSS_UNIT_DIR
#define VSS_UNIT_DIR "/usr/lib/systemd/system"
#endif

static int write_timer(const char *out, const char *dir, const Schedule *s)
{
	_cleanup_free_ char *dropin = NULL, *conf = NULL, *wants = NULL, *link = NULL;
	FILE *f;

	if (asprintf(&dropin, "%s/vss-snapshot@%s.timer.d", out, s->name) < 0 ||
	    asprintf(&conf, "%s/50-calendar.conf", dropin) < 0 || asprintf(&wants, "%s/timers.target.wants", out) < 0 ||
	    asprintf(&link, "%s/vss-snapshot@%s.timer", wants, s->name) < 0)
		return -ENOMEM;
	if (mkdir_p(dropin, 0755) < 0 || mkdir_p(wants, 0755) < 0)
		return -errno;
	f = fopen(conf, "we");
	if (!f)
		return -errno;
	fprintf(f, "# Made by vss-schedule-generator from %s/%s.conf\n[Timer]\nOnCalendar=%s\n", dir, s->name,
		s->calendar);
	if (fclose(f) != 0)
		return -errno;
	if (symlink(VSS_UNIT_DIR "/vss-snapshot@.timer", link) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = secure_getenv("VSS_SCHEDULES_DIR");
	_cleanup_(strv_freep) char **names = NULL;
	size_t n = 0;
	int r, ret = EXIT_SUCCESS;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: %s NORMAL_DIR [EARLY_DIR LATE_DIR]\n", argv[0]);
		return EXIT_FAILURE;
	}
	if (!dir || !dir[0])
		dir = VSS_SCHEDULES_DIR;
	r = schedule_list(dir, &names, &n);
	if (r < 0) {
		fprintf(stderr, "vss-schedule-generator: cannot read %s: %s\n", dir, strerror(-r));
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_(schedule_clear) Schedule s = { .writers = -1 };
		char err[SCHEDULE_ERROR_MAX];

		r = schedule_load(dir, names[i], &s, err);
		if (r < 0) {
			fprintf(stderr, "vss-schedule-generator: skipping schedule %s: %s\n", names[i],
				err[0] ? err : strerror(-r));
			continue;
		}
		r = write_timer(argv[1], dir, &s);
		if (r < 0) {
			fprintf(stderr, "vss-schedule-generator: cannot write the timer of schedule %s: %s\n", names[i],
				strerror(-r));
			ret = EXIT_FAILURE;
		}
	}
	return ret;
}
