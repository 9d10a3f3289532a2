/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/schedule.h"
#include "basic/spawn-util.h"
#include "basic/util.h"

bool schedule_name_is_valid(const char *name)
{
	size_t len;

	if (!name || !isalnum((unsigned char)name[0]))
		return false;
	len = strlen(name);
	if (len > SCHEDULE_NAME_MAX || strstr(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isascii((unsigned char)name[i]) ||
		    !(isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-' || name[i] == '.'))
			return false;
	return true;
}

void schedule_clear(Schedule *s)
{
	free(s->name);
	strv_free(s->volumes);
	free(s->context);
	free(s->calendar);
	*s = (Schedule){ .writers = -1 };
}

_printf_(2, 3) static int refuse(char err[static SCHEDULE_ERROR_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, SCHEDULE_ERROR_MAX, fmt, ap);
	va_end(ap);
	/* It quotes the file, cut to fit: maybe inside a character. */
	utf8_make_valid(err);
	return -EINVAL;
}

static int parse_bool(const char *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -EINVAL;
}

static int set_string(char **field, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* Volumes= takes several paths, and may be repeated; an empty value resets. */
static int add_volumes(Schedule *s, char *v, const char *where, char err[static SCHEDULE_ERROR_MAX])
{
	char *save = NULL;

	if (!*v) {
		strv_free(s->volumes);
		s->volumes = NULL;
		return 0;
	}
	for (char *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (t[0] != '/')
			return refuse(err, "%s: Volumes=: \"%s\" is not an absolute path", where, t);
		if (strv_length(s->volumes) >= SCHEDULE_VOLUMES_MAX)
			return refuse(err, "%s: Volumes=: more than %d volumes", where, SCHEDULE_VOLUMES_MAX);
		if (strv_push_dup(&s->volumes, t) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int set_key(Schedule *s, bool retention, char *k, char *v, const char *where,
		   char err[static SCHEDULE_ERROR_MAX])
{
	static const char *const periods[_RETENTION_PERIOD_MAX] = {
		[RETENTION_HOURLY] = "Hourly",   [RETENTION_DAILY] = "Daily",   [RETENTION_WEEKLY] = "Weekly",
		[RETENTION_MONTHLY] = "Monthly", [RETENTION_YEARLY] = "Yearly",
	};
	uint64_t x;
	int r;

	if (!retention) {
		if (streq(k, "Volumes"))
			return add_volumes(s, v, where, err);
		if (streq(k, "Context")) {
			for (const char *c = v; *c; c++)
				if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
					return refuse(err, "%s: Context=: \"%s\" is not a context's name", where, v);
			return set_string(&s->context, v);
		}
		if (streq(k, "Writers")) {
			r = parse_bool(v);
			if (r < 0)
				return refuse(err, "%s: Writers=: \"%s\" is neither yes nor no", where, v);
			s->writers = r;
			return 0;
		}
		if (streq(k, "Calendar")) {
			/* systemd-analyze judges it; what it cannot be is
			 * empty, or long enough to be something else. */
			if (!*v || strlen(v) > 256)
				return refuse(err, "%s: Calendar=: empty or longer than 256 characters", where);
			return set_string(&s->calendar, v);
		}
		return refuse(err, "%s: unknown key \"%s\" in [Schedule]", where, k);
	}
	if (streq(k, "KeepLast")) {
		if (parse_u64(v, &x) < 0 || x > 100000)
			return refuse(err, "%s: KeepLast=: \"%s\" is not a number from 0 to 100000", where, v);
		s->policy.keep_last = (unsigned)x;
		return 0;
	}
	if (streq(k, "KeepWithin")) {
		usec_t u;

		if (parse_timespan(v, &u) < 0)
			return refuse(err, "%s: KeepWithin=: \"%s\" is not a time span such as 36h or 7d", where, v);
		s->policy.keep_within = u;
		return 0;
	}
	for (size_t p = 0; p < _RETENTION_PERIOD_MAX; p++)
		if (streq(k, periods[p])) {
			if (parse_u64(v, &x) < 0 || x > 100000)
				return refuse(err, "%s: %s=: \"%s\" is not a number from 0 to 100000", where, k, v);
			s->policy.timeline[p] = (unsigned)x;
			return 0;
		}
	return refuse(err, "%s: unknown key \"%s\" in [Retention]", where, k);
}

static int parse_file(FILE *f, const char *path, Schedule *s, char err[static SCHEDULE_ERROR_MAX])
{
	_cleanup_free_ char *line = NULL;
	size_t size = 0;
	unsigned lineno = 0;
	bool retention = false, header = false;
	ssize_t n;
	int r;

	while ((n = getline(&line, &size, f)) >= 0) {
		char where[PATH_MAX + 16], *t, *eq;

		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		if (strlen(line) != (size_t)n)
			return refuse(err, "%s: contains a NUL byte", where);
		if (lineno > 1000)
			return refuse(err, "%s: a schedule has at most 1000 lines", where);
		t = strip_whitespace(line);
		if (*t == '\0' || *t == '#' || *t == ';')
			continue;
		if (*t == '[') {
			if (streq(t, "[Schedule]"))
				retention = false;
			else if (streq(t, "[Retention]"))
				retention = true;
			else
				return refuse(err, "%s: unknown section %s; a schedule has [Schedule] and [Retention]", where,
					      t);
			header = true;
			continue;
		}
		if (!header)
			return refuse(err, "%s: a key before [Schedule] or [Retention]", where);
		eq = strchr(t, '=');
		if (!eq)
			return refuse(err, "%s: expected Key = Value", where);
		*eq = '\0';
		r = set_key(s, retention, strip_whitespace(t), strip_whitespace(eq + 1), where, err);
		if (r < 0)
			return r;
	}
	if (!s->volumes)
		return refuse(err, "%s: no Volumes=", path);
	if (!s->calendar)
		return refuse(err, "%s: no Calendar=", path);
	return 0;
}

int schedule_load(const char *dir, const char *name, Schedule *ret, char err[static SCHEDULE_ERROR_MAX])
{
	_cleanup_free_ char *path = NULL;
	Schedule s = { .writers = -1 };
	struct stat st;
	FILE *f;
	int fd, r;

	err[0] = '\0';
	*ret = (Schedule){ .writers = -1 };
	if (!schedule_name_is_valid(name))
		return refuse(err,
			      "\"%.80s\" is not a schedule's name: 1 to %d letters, digits, '_', '-' or '.', beginning "
			      "with a letter or digit",
			      name ?: "", SCHEDULE_NAME_MAX);
	if (asprintf(&path, "%s/%s.conf", dir, name) < 0)
		return -ENOMEM;
	/* O_NOFOLLOW: a schedule is a file of the directory, not a link
	 * to whatever else; O_NONBLOCK: a FIFO is refused, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			snprintf(err, SCHEDULE_ERROR_MAX, "no schedule \"%s\" (%s does not exist)", name, path);
		else
			snprintf(err, SCHEDULE_ERROR_MAX, "cannot open %s: %s", path, strerror(-r));
		utf8_make_valid(err);
		return r == -ENOENT ? -ENOENT : r == -ELOOP ? -EINVAL : r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return refuse(err, "%s: not a regular file", path);
	}
	f = fdopen(fd, "re");
	if (!f) {
		r = -errno;
		close(fd);
		return r;
	}
	s.name = strdup(name);
	r = s.name ? parse_file(f, path, &s, err) : -ENOMEM;
	fclose(f);
	if (r < 0) {
		schedule_clear(&s);
		return r;
	}
	*ret = s;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int schedule_list(const char *dir, char ***ret_names, size_t *ret_n)
{
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	*ret_names = NULL;
	*ret_n = 0;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char name[SCHEDULE_NAME_MAX + 1];

		if (len <= 5 || len - 5 > SCHEDULE_NAME_MAX || !streq(de->d_name + len - 5, ".conf"))
			continue;
		memcpy(name, de->d_name, len - 5);
		name[len - 5] = '\0';
		if (!schedule_name_is_valid(name))
			continue;
		if (strv_push_dup(&names, name) < 0) {
			closedir(d);
			strv_free(names);
			return -ENOMEM;
		}
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), compare_names);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

int schedule_check_calendar(const char *calendar, char **ret_next, char err[static SCHEDULE_ERROR_MAX])
{
	char *argv[] = { (char *)"systemd-analyze", (char *)"calendar", (char *)"--", (char *)calendar, NULL };
	SpawnResult res = { 0 };
	const char *next;
	int r;

	err[0] = '\0';
	if (ret_next)
		*ret_next = NULL;
	r = spawn_run(argv, &(SpawnOptions){ .timeout = 10 * USEC_PER_SEC }, &res);
	if (r < 0) {
		snprintf(err, SCHEDULE_ERROR_MAX, "cannot run systemd-analyze: %s", strerror(-r));
		return -ENOENT;
	}
	if (!spawn_succeeded(&res)) {
		snprintf(err, SCHEDULE_ERROR_MAX, "Calendar=%s: %s", calendar,
			 res.err[0] ? strip_whitespace(res.err) : "systemd-analyze refuses it");
		spawn_result_clear(&res);
		return -EINVAL;
	}
	next = strstr(res.out, "Next elapse: ");
	if (ret_next && next) {
		next += strlen("Next elapse: ");
		*ret_next = strndup(next, strcspn(next, "\n"));
		if (!*ret_next) {
			spawn_result_clear(&res);
			return -ENOMEM;
		}
	}
	spawn_result_clear(&res);
	return 0;
}
