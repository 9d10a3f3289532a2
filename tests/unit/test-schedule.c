/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/schedule.h"
#include "tests.h"

static char dir[] = "/tmp/vss-test-schedule-XXXXXX";

static void put(const char *name, const char *text)
{
	char path[sizeof(dir) + 128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	ASSERT_NOT_NULL(f);
	fputs(text, f);
	fclose(f);
}

static void cleanup(void)
{
	char cmd[sizeof(dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_names(void)
{
	const char *good[] = { "daily", "a", "hourly-srv", "x_1.2", "0", "Z9" };
	const char *bad[] = { "", ".hidden", "-x", "_x", "a/b", "a..b", "..", "é", "a b", "a@b", "a\\b", NULL };
	char long_name[SCHEDULE_NAME_MAX + 2];

	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		ASSERT_TRUE(schedule_name_is_valid(good[i]));
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		ASSERT_FALSE(schedule_name_is_valid(bad[i]));
	memset(long_name, 'a', sizeof(long_name));
	long_name[SCHEDULE_NAME_MAX] = '\0';
	ASSERT_TRUE(schedule_name_is_valid(long_name));
	long_name[SCHEDULE_NAME_MAX] = 'a';
	long_name[SCHEDULE_NAME_MAX + 1] = '\0';
	ASSERT_FALSE(schedule_name_is_valid(long_name));
}

static void test_load(void)
{
	Schedule s;
	char err[SCHEDULE_ERROR_MAX];

	put("full.conf", "# a comment\n[Schedule]\nVolumes = /srv /home\nVolumes = /var\nContext = client_accessible\n"
			 "Writers = no\nCalendar = Mon..Fri 08..18:00\n\n[Retention]\nKeepLast = 3\n"
			 "KeepWithin = 1d 12h\nHourly = 24\nDaily = 7\nWeekly = 4\nMonthly = 12\nYearly = 2\n");
	ASSERT_OK(schedule_load(dir, "full", &s, err));
	ASSERT_STREQ("full", s.name);
	ASSERT_EQ_UINT(3, strv_length(s.volumes));
	ASSERT_STREQ("/var", s.volumes[2]);
	ASSERT_STREQ("client_accessible", s.context);
	ASSERT_EQ_INT(0, s.writers);
	ASSERT_STREQ("Mon..Fri 08..18:00", s.calendar);
	ASSERT_EQ_UINT(3, s.policy.keep_last);
	ASSERT_EQ_UINT(36 * 3600 * USEC_PER_SEC, s.policy.keep_within);
	ASSERT_EQ_UINT(24, s.policy.timeline[RETENTION_HOURLY]);
	ASSERT_EQ_UINT(2, s.policy.timeline[RETENTION_YEARLY]);
	schedule_clear(&s);

	put("min.conf", "[Schedule]\nVolumes = /srv\nCalendar = daily\n");
	ASSERT_OK(schedule_load(dir, "min", &s, err));
	ASSERT_NULL(s.context);
	ASSERT_EQ_INT(-1, s.writers);
	ASSERT_TRUE(retention_policy_is_empty(&s.policy));
	schedule_clear(&s);
}

static void test_refused(void)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{ "Volumes = /srv\n", "a key before [Schedule]" },
		{ "[Schedule]\nVolumes = srv\nCalendar = daily\n", "not an absolute path" },
		{ "[Schedule]\nVolumes = /srv\n", "no Calendar=" },
		{ "[Schedule]\nCalendar = daily\n", "no Volumes=" },
		{ "[Schedule]\nVolumes = /srv\nVolumes =\nCalendar = daily\n", "no Volumes=" },
		{ "[Schedule]\nWriters = maybe\n", "neither yes nor no" },
		{ "[Schedule]\nContext = a;b\n", "not a context's name" },
		{ "[Schedule]\nCalendar =\n", "Calendar=: empty" },
		{ "[Schedule]\nFoo = 1\n", "unknown key \"Foo\" in [Schedule]" },
		{ "[Retention]\nKeepLast = -1\n", "KeepLast=" },
		{ "[Retention]\nKeepLast = 100001\n", "KeepLast=" },
		{ "[Retention]\nKeepWithin = 3 days\n", "KeepWithin=" },
		{ "[Retention]\nDaily = x\n", "Daily=" },
		{ "[Retention]\nVolumes = /srv\n", "unknown key \"Volumes\" in [Retention]" },
		{ "[Timer]\n", "unknown section [Timer]" },
		{ "[Schedule]\nno equals sign\n", "expected Key = Value" },
	};
	Schedule s;
	char err[SCHEDULE_ERROR_MAX];

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		put("bad.conf", cases[i].text);
		ASSERT_ERRNO(-EINVAL, schedule_load(dir, "bad", &s, err));
		if (!strstr(err, cases[i].why))
			TEST_FAIL("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].why);
		ASSERT_TRUE(strstr(err, "bad.conf") != NULL);
		ASSERT_NULL(s.name);
	}
	/* A NUL byte would hide what follows it. */
	{
		char path[sizeof(dir) + 32];
		FILE *f;

		snprintf(path, sizeof(path), "%s/nul.conf", dir);
		f = fopen(path, "we");
		ASSERT_NOT_NULL(f);
		fwrite("[Schedule]\nVolumes = /srv\0x\n", 1, 29, f);
		fclose(f);
		ASSERT_ERRNO(-EINVAL, schedule_load(dir, "nul", &s, err));
		ASSERT_TRUE(strstr(err, "NUL") != NULL);
	}
	ASSERT_ERRNO(-ENOENT, schedule_load(dir, "absent", &s, err));
	ASSERT_TRUE(strstr(err, "no schedule \"absent\"") != NULL);
	ASSERT_ERRNO(-EINVAL, schedule_load(dir, "../bad", &s, err));
	ASSERT_TRUE(strstr(err, "not a schedule's name") != NULL);
	/* A link or a directory is no schedule. */
	{
		char target[sizeof(dir) + 32], link[sizeof(dir) + 32];

		snprintf(target, sizeof(target), "%s/min.conf", dir);
		snprintf(link, sizeof(link), "%s/link.conf", dir);
		ASSERT_EQ_INT(0, symlink(target, link));
		ASSERT_ERRNO(-EINVAL, schedule_load(dir, "link", &s, err));
		snprintf(link, sizeof(link), "%s/dir.conf", dir);
		ASSERT_EQ_INT(0, mkdir(link, 0755));
		ASSERT_ERRNO(-EINVAL, schedule_load(dir, "dir", &s, err));
		ASSERT_TRUE(strstr(err, "not a regular file") != NULL);
	}
}

static void test_list(void)
{
	char **names = NULL;
	size_t n = 0;

	put(".hidden.conf", "");
	put("notes.txt", "");
	put(".conf", "");
	ASSERT_OK(schedule_list(dir, &names, &n));
	/* Sorted; only valid names (the link and the directory are listed:
	 * loading them says why they are refused). */
	ASSERT_EQ_UINT(6, n);
	ASSERT_STREQ("bad", names[0]);
	ASSERT_STREQ("dir", names[1]);
	ASSERT_STREQ("full", names[2]);
	ASSERT_STREQ("link", names[3]);
	ASSERT_STREQ("min", names[4]);
	ASSERT_STREQ("nul", names[5]);
	strv_free(names);
	ASSERT_OK(schedule_list("/nonexistent/schedules.d", &names, &n));
	ASSERT_EQ_UINT(0, n);
	ASSERT_NULL(names);
}

static void test_calendar(void)
{
	char err[SCHEDULE_ERROR_MAX], *next = NULL;
	int r;

	r = schedule_check_calendar("daily", &next, err);
	if (r == -ENOENT) {
		printf("no systemd-analyze: %s\n", err);
		return;
	}
	ASSERT_OK(r);
	ASSERT_NOT_NULL(next);
	free(next);
	ASSERT_ERRNO(-EINVAL, schedule_check_calendar("every tuesday-ish", &next, err));
	ASSERT_NULL(next);
	ASSERT_TRUE(strstr(err, "every tuesday-ish") != NULL);
}

int main(void)
{
	ASSERT_NOT_NULL(mkdtemp(dir));
	test_on_failure = cleanup;
	RUN_TEST(test_names);
	RUN_TEST(test_load);
	RUN_TEST(test_refused);
	RUN_TEST(test_list);
	RUN_TEST(test_calendar);
	cleanup();
	TEST_SUMMARY();
	return 0;
}
