/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/macro.h"
#include "basic/retention.h"
#include "tests.h"

#define MIN_US (60 * (int64_t)USEC_PER_SEC)
#define HOUR_US (60 * MIN_US)
#define DAY_US (24 * HOUR_US)

/* A zone tzdata lacks would silently be UTC, and the DST tables would test
 * nothing: each zone is checked to be the one asked for. */
static void set_zone(const char *tz)
{
	static const struct {
		const char *tz;
		long january_offset;
	} zones[] = { { "UTC", 0 }, { "Europe/Berlin", 3600 }, { "America/New_York", -5 * 3600 } };
	time_t jan = 1767268800; /* 2026-01-01 12:00 UTC */
	struct tm tm;

	setenv("TZ", tz, 1);
	tzset();
	ASSERT_NOT_NULL(localtime_r(&jan, &tm));
	for (size_t i = 0; i < ELEMENTSOF(zones); i++)
		if (streq(zones[i].tz, tz) && tm.tm_gmtoff != zones[i].january_offset)
			TEST_FAIL("TZ=%s has offset %ld: is tzdata installed?", tz, (long)tm.tm_gmtoff);
}

/* A UTC wall-clock time, as µs since the epoch. */
static int64_t utc(int y, int mon, int d, int h, int min)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = min };

	return (int64_t)timegm(&tm) * (int64_t)USEC_PER_SEC;
}

/* A local wall-clock time (one that happens once) in the current zone. */
static int64_t local(int y, int mon, int d, int h, int min)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = min,
			 .tm_isdst = -1 };

	return (int64_t)mktime(&tm) * (int64_t)USEC_PER_SEC;
}

/* Decide sets made at times[] (in that order), the last one the newest
 * unless newest_at says otherwise; expected[i]: 'k' kept, 'd' deleted. */
static void check(const RetentionPolicy *p, const int64_t *times, size_t n, int64_t now, const char *expected,
		  RetentionSet *out)
{
	RetentionSet local_sets[64];
	RetentionSet *s = out ?: local_sets;
	char why[RETENTION_REASON_MAX];

	ASSERT_TRUE(n <= ELEMENTSOF(local_sets));
	ASSERT_EQ_UINT(n, strlen(expected));
	for (size_t i = 0; i < n; i++)
		s[i] = (RetentionSet){ .created_us = times[i] };
	ASSERT_OK(retention_decide(s, n, p, now));
	for (size_t i = 0; i < n; i++) {
		if (s[i].keep != (expected[i] == 'k'))
			TEST_FAIL("set %zu: expected %s, got %s: %s", i, expected[i] == 'k' ? "kept" : "deleted",
				  s[i].keep ? "kept" : "deleted", retention_reason_format(&s[i], p, why));
		ASSERT_EQ_INT(s[i].keep, s[i].reason != RETENTION_DELETE);
	}
}

static void test_no_policy(void)
{
	RetentionPolicy p = { 0 };
	int64_t t[] = { utc(2026, 1, 1, 0, 0), utc(2026, 1, 2, 0, 0), utc(2026, 1, 3, 0, 0) };
	RetentionSet s[3];
	char why[RETENTION_REASON_MAX];

	ASSERT_TRUE(retention_policy_is_empty(&p));
	check(&p, t, 3, utc(2027, 1, 1, 0, 0), "kkk", s);
	ASSERT_EQ_INT(RETENTION_KEEP_NO_POLICY, s[0].reason);
	ASSERT_EQ_INT(RETENTION_KEEP_NEWEST, s[2].reason);
	ASSERT_STREQ("the schedule has no retention policy", retention_reason_format(&s[0], &p, why));
	ASSERT_OK(retention_decide(NULL, 0, &p, 0));
}

static void test_keep_last(void)
{
	RetentionPolicy p = { .keep_last = 3 };
	int64_t t[6];
	RetentionSet s[6];
	char why[RETENTION_REASON_MAX];

	for (size_t i = 0; i < 6; i++)
		t[i] = utc(2026, 5, 1, (int)i, 0);
	check(&p, t, 6, utc(2026, 6, 1, 0, 0), "dddkkk", s);
	ASSERT_EQ_INT(RETENTION_KEEP_LAST, s[3].reason);
	ASSERT_EQ_UINT(3, s[3].rank);
	ASSERT_EQ_UINT(2, s[4].rank);
	ASSERT_EQ_INT(RETENTION_KEEP_NEWEST, s[5].reason);
	ASSERT_STREQ("one of the last 3 (3 of 3)", retention_reason_format(&s[3], &p, why));
	ASSERT_STREQ("beyond the policy: not one of the last 3", retention_reason_format(&s[0], &p, why));

	/* KeepLast=1 is the newest alone. */
	p.keep_last = 1;
	check(&p, t, 6, utc(2026, 6, 1, 0, 0), "dddddk", NULL);
}

static void test_keep_within(void)
{
	RetentionPolicy p = { .keep_within = 2 * DAY_US };
	int64_t now = utc(2026, 7, 10, 12, 0);
	int64_t t[] = { now - 3 * DAY_US, now - 2 * DAY_US, now - 2 * DAY_US + 1, now - DAY_US, now - MIN_US };
	RetentionSet s[5];
	char why[RETENTION_REASON_MAX];

	/* Exactly 2 days old is not younger than 2 days. */
	check(&p, t, 5, now, "ddkkk", s);
	ASSERT_STREQ("younger than 2d", retention_reason_format(&s[3], &p, why));
	ASSERT_STREQ("beyond the policy: older than 2d", retention_reason_format(&s[0], &p, why));
}

static void test_daily_first_of_day(void)
{
	RetentionPolicy p = { .timeline[RETENTION_DAILY] = 3 };
	int64_t t[15];
	RetentionSet s[15];
	char why[RETENTION_REASON_MAX];

	set_zone("UTC");
	/* Five days, three sets a day: the first of each of the three newest
	 * days stays, as snapper keeps it. */
	for (size_t d = 0; d < 5; d++)
		for (size_t k = 0; k < 3; k++)
			t[d * 3 + k] = utc(2026, 3, 10 + (int)d, 6 + 6 * (int)k, 0);
	check(&p, t, 15, utc(2026, 3, 20, 0, 0), "ddd" "ddd" "kdd" "kdd" "kdk", s);
	ASSERT_EQ_UINT(1, s[12].period_rank[RETENTION_DAILY]);
	ASSERT_EQ_UINT(3, s[6].period_rank[RETENTION_DAILY]);
	ASSERT_STREQ("the first set of its day (3 of 3 daily)", retention_reason_format(&s[6], &p, why));
	ASSERT_STREQ("beyond the policy: not the first set of one of the 3 newest days",
		     retention_reason_format(&s[0], &p, why));
}

static void test_rules_combine(void)
{
	RetentionPolicy p = { .keep_last = 2, .timeline[RETENTION_HOURLY] = 2, .timeline[RETENTION_DAILY] = 2 };
	int64_t t[] = {
		utc(2026, 4, 1, 10, 0), utc(2026, 4, 1, 10, 30), /* day 1: its first stays (daily) */
		utc(2026, 4, 2, 9, 0),  utc(2026, 4, 2, 9, 30),  /* day 2's first (daily) */
		utc(2026, 4, 2, 10, 0), utc(2026, 4, 2, 10, 20), utc(2026, 4, 2, 10, 40),
		/* 10:00 first of the newest hour; 09:00 first of the hour before */
	};
	RetentionSet s[7];
	char why[RETENTION_REASON_MAX];

	set_zone("UTC");
	check(&p, t, 7, utc(2026, 4, 3, 0, 0), "kdkdkkk", s);
	ASSERT_EQ_INT(RETENTION_KEEP_TIMELINE, s[2].reason);
	ASSERT_EQ_UINT((1u << RETENTION_HOURLY) | (1u << RETENTION_DAILY), s[2].periods);
	ASSERT_STREQ("the first set of its hour (2 of 2 hourly), day (1 of 2 daily)",
		     retention_reason_format(&s[2], &p, why));
	ASSERT_EQ_INT(RETENTION_KEEP_LAST, s[5].reason);
	ASSERT_STREQ("beyond the policy: not one of the last 2, not the first set of one of the 2 newest hours,"
		     " not the first set of one of the 2 newest days",
		     retention_reason_format(&s[1], &p, why));
}

static void test_month_ends(void)
{
	RetentionPolicy p = { .timeline[RETENTION_MONTHLY] = 3 };
	int64_t t[6];

	/* Berlin: 00:30 on 1 February is still 31 January in UTC; it is
	 * February's first set here. */
	set_zone("Europe/Berlin");
	t[0] = local(2026, 1, 15, 12, 0);
	t[1] = local(2026, 1, 31, 23, 30);
	t[2] = local(2026, 2, 1, 0, 30);
	t[3] = local(2026, 2, 28, 23, 59);
	t[4] = local(2026, 3, 1, 0, 0);
	t[5] = local(2026, 3, 31, 23, 0);
	check(&p, t, 6, local(2026, 4, 1, 0, 0), "kdkdkk", NULL);

	/* Only the three newest months count. */
	p.timeline[RETENTION_MONTHLY] = 2;
	check(&p, t, 6, local(2026, 4, 1, 0, 0), "dd" "kd" "kk", NULL);

	/* The same sets read in UTC put 1 February 00:30 in January. */
	set_zone("UTC");
	p.timeline[RETENTION_MONTHLY] = 3;
	check(&p, t, 6, local(2026, 4, 1, 0, 0), "kdd" "kdk", NULL);
}

static void test_leap_years(void)
{
	RetentionPolicy p = { .timeline[RETENTION_DAILY] = 3 };
	int64_t t[8];
	RetentionSet s[8];

	set_zone("America/New_York");
	/* 29 February is a day of its own and of February. */
	t[0] = local(2024, 2, 28, 12, 0);
	t[1] = local(2024, 2, 29, 0, 0);
	t[2] = local(2024, 2, 29, 23, 59);
	t[3] = local(2024, 3, 1, 0, 1);
	check(&p, t, 4, local(2024, 3, 2, 0, 0), "kkdk", NULL);
	p = (RetentionPolicy){ .timeline[RETENTION_MONTHLY] = 2 };
	check(&p, t, 4, local(2024, 3, 2, 0, 0), "kddk", s);

	/* A week across 29 February: Monday 26 February to Sunday 3 March. */
	p = (RetentionPolicy){ .timeline[RETENTION_WEEKLY] = 2 };
	t[0] = local(2024, 2, 25, 23, 0); /* Sunday: the week before */
	t[1] = local(2024, 2, 26, 0, 30); /* Monday */
	t[2] = local(2024, 2, 29, 12, 0);
	t[3] = local(2024, 3, 3, 23, 59); /* Sunday */
	t[4] = local(2024, 3, 4, 0, 0);   /* Monday: the next week */
	t[5] = local(2024, 3, 5, 0, 0);
	check(&p, t, 6, local(2024, 3, 6, 0, 0), "dkddkk", NULL);

	/* A week across a new year is one week; the years are two. */
	t[0] = local(2024, 12, 29, 12, 0); /* Sunday */
	t[1] = local(2024, 12, 30, 12, 0); /* Monday */
	t[2] = local(2024, 12, 31, 23, 59);
	t[3] = local(2025, 1, 1, 0, 0);
	t[4] = local(2025, 1, 5, 23, 0);   /* Sunday */
	t[5] = local(2025, 1, 6, 1, 0);    /* Monday */
	t[6] = local(2025, 1, 7, 1, 0);
	check(&p, t, 7, local(2025, 2, 1, 0, 0), "dkdddkk", NULL);
	p = (RetentionPolicy){ .timeline[RETENTION_YEARLY] = 5 };
	check(&p, t, 7, local(2025, 2, 1, 0, 0), "kddkddk", NULL);

	/* 2100 is no leap year: 1 March follows 28 February. */
	p = (RetentionPolicy){ .timeline[RETENTION_DAILY] = 5 };
	t[0] = local(2100, 2, 28, 12, 0);
	t[1] = local(2100, 3, 1, 12, 0);
	t[2] = local(2100, 3, 1, 13, 0);
	check(&p, t, 3, local(2100, 3, 2, 0, 0), "kkk", s);
	ASSERT_EQ_UINT(1, s[1].period_rank[RETENTION_DAILY]);
	ASSERT_EQ_UINT(2, s[0].period_rank[RETENTION_DAILY]);
}

static void test_dst_fall_back(void)
{
	RetentionPolicy p = { .timeline[RETENTION_HOURLY] = 10 };
	int64_t t[7];
	RetentionSet s[7];

	/* Berlin, 25 October 2026: at 01:00 UTC, 03:00 CEST becomes 02:00
	 * CET, so 02:00-03:00 comes twice: two hours, each its first set. */
	set_zone("Europe/Berlin");
	t[0] = utc(2026, 10, 25, 0, 10); /* 02:10 CEST */
	t[1] = utc(2026, 10, 25, 0, 40); /* 02:40 CEST */
	t[2] = utc(2026, 10, 25, 1, 10); /* 02:10 CET */
	t[3] = utc(2026, 10, 25, 1, 40); /* 02:40 CET */
	t[4] = utc(2026, 10, 25, 2, 10); /* 03:10 CET */
	t[5] = utc(2026, 10, 25, 2, 20);
	t[6] = utc(2026, 10, 25, 2, 30);
	check(&p, t, 7, utc(2026, 10, 26, 0, 0), "kdkdkdk", s);

	/* That day has 25 hours and is one day. */
	p = (RetentionPolicy){ .timeline[RETENTION_DAILY] = 10 };
	t[0] = utc(2026, 10, 24, 21, 30); /* 24 Oct 23:30 CEST */
	t[1] = utc(2026, 10, 24, 22, 30); /* 25 Oct 00:30 CEST */
	t[2] = utc(2026, 10, 25, 22, 30); /* 25 Oct 23:30 CET: 24 h later, the same day */
	t[3] = utc(2026, 10, 25, 23, 30); /* 26 Oct 00:30 CET */
	t[4] = utc(2026, 10, 26, 0, 30);
	check(&p, t, 5, utc(2026, 10, 27, 0, 0), "kkdkk", NULL);
}

static void test_dst_spring_forward(void)
{
	RetentionPolicy p = { .timeline[RETENTION_HOURLY] = 10 };
	int64_t t[6];

	/* New York, 8 March 2026: at 07:00 UTC, 02:00 EST becomes 03:00 EDT;
	 * there is no 02:00 hour. */
	set_zone("America/New_York");
	t[0] = utc(2026, 3, 8, 6, 30);  /* 01:30 EST */
	t[1] = utc(2026, 3, 8, 6, 50);  /* 01:50 EST */
	t[2] = utc(2026, 3, 8, 7, 10);  /* 03:10 EDT */
	t[3] = utc(2026, 3, 8, 7, 40);  /* 03:40 EDT */
	t[4] = utc(2026, 3, 8, 8, 5);   /* 04:05 EDT */
	check(&p, t, 5, utc(2026, 3, 9, 0, 0), "kdkdk", NULL);

	/* That day has 23 hours. */
	p = (RetentionPolicy){ .timeline[RETENTION_DAILY] = 10 };
	t[0] = utc(2026, 3, 8, 5, 30);  /* 8 Mar 00:30 EST */
	t[1] = utc(2026, 3, 9, 3, 30);  /* 8 Mar 23:30 EDT: 22 h later, the same day */
	t[2] = utc(2026, 3, 9, 4, 10);  /* 9 Mar 00:10 EDT */
	t[3] = utc(2026, 3, 9, 5, 0);
	check(&p, t, 4, utc(2026, 3, 10, 0, 0), "kdkk", NULL);
	/* In UTC the first two are different days. */
	set_zone("UTC");
	check(&p, t, 4, utc(2026, 3, 10, 0, 0), "kkdk", NULL);
}

static void test_clock_stepped_back(void)
{
	RetentionPolicy p = { .keep_last = 2 };
	int64_t now = utc(2026, 6, 1, 9, 10);
	/* Made in this order; the clock then went back to 09:00, and the last
	 * one was made at 09:05. */
	int64_t t[] = { utc(2026, 6, 1, 8, 0), utc(2026, 6, 1, 10, 0), utc(2026, 6, 1, 11, 0),
			utc(2026, 6, 1, 12, 0), utc(2026, 6, 1, 9, 5) };
	RetentionSet s[5];
	char why[RETENTION_REASON_MAX];

	set_zone("UTC");
	check(&p, t, 5, now, "dkkkk", s);
	ASSERT_EQ_INT(RETENTION_KEEP_FUTURE, s[1].reason);
	ASSERT_EQ_INT(RETENTION_KEEP_FUTURE, s[2].reason);
	/* KeepLast counts what was made last, not what says it is latest. */
	ASSERT_EQ_UINT(2, s[3].rank);
	ASSERT_EQ_INT(RETENTION_KEEP_NEWEST, s[4].reason);
	ASSERT_STREQ("newer than now (the clock was set back)", retention_reason_format(&s[1], &p, why));

	/* An age rule never reads a negative age as an old one. */
	p = (RetentionPolicy){ .keep_within = HOUR_US };
	check(&p, t, 5, now, "dkkkk", NULL);
	/* The timeline orders by time: 12:00 is the first of its hour. */
	p = (RetentionPolicy){ .timeline[RETENTION_HOURLY] = 2 };
	check(&p, t, 5, utc(2026, 6, 2, 0, 0), "ddkkk", s);
	ASSERT_EQ_INT(RETENTION_KEEP_TIMELINE, s[3].reason);
}

static void test_never_newest_or_exposed(void)
{
	RetentionPolicy p = { .keep_within = MIN_US };
	int64_t now = utc(2026, 9, 1, 0, 0);
	RetentionSet s[4] = {
		{ .created_us = now - 4 * DAY_US },
		{ .created_us = now - 3 * DAY_US, .exposed = true },
		{ .created_us = now - 2 * DAY_US, .newest = true }, /* made last, with an earlier time */
		{ .created_us = now - 1 * DAY_US },
	};
	char why[RETENTION_REASON_MAX];

	ASSERT_OK(retention_decide(s, 4, &p, now));
	ASSERT_FALSE(s[0].keep);
	ASSERT_TRUE(s[1].keep);
	ASSERT_EQ_INT(RETENTION_KEEP_EXPOSED, s[1].reason);
	ASSERT_STREQ("exposed", retention_reason_format(&s[1], &p, why));
	ASSERT_TRUE(s[2].keep);
	ASSERT_EQ_INT(RETENTION_KEEP_NEWEST, s[2].reason);
	ASSERT_STREQ("the schedule's newest set", retention_reason_format(&s[2], &p, why));
	ASSERT_FALSE(s[3].keep);

	/* The newest exposed is kept as the newest. */
	s[2].exposed = true;
	ASSERT_OK(retention_decide(s, 4, &p, now));
	ASSERT_EQ_INT(RETENTION_KEEP_NEWEST, s[2].reason);

	/* Two newest sets is a caller's mistake. */
	s[3].newest = true;
	ASSERT_ERRNO(-EINVAL, retention_decide(s, 4, &p, now));

	/* A lone set is always the newest. */
	s[0] = (RetentionSet){ .created_us = 0 };
	ASSERT_OK(retention_decide(s, 1, &p, now));
	ASSERT_TRUE(s[0].keep);
	ASSERT_EQ_INT(RETENTION_KEEP_NEWEST, s[0].reason);
}

static void test_same_time(void)
{
	RetentionPolicy p = { .timeline[RETENTION_DAILY] = 2 };
	int64_t t[] = { utc(2026, 2, 1, 8, 0), utc(2026, 2, 1, 8, 0), utc(2026, 2, 1, 9, 0),
			utc(2026, 2, 2, 9, 0) };
	RetentionSet s[4];

	/* Two sets of one µs: the first made is the day's first, once. */
	set_zone("UTC");
	check(&p, t, 4, utc(2026, 3, 1, 0, 0), "kddk", s);
	ASSERT_EQ_UINT(2, s[0].period_rank[RETENTION_DAILY]);
}

static void test_timespan(void)
{
	usec_t u;
	char buf[32];

	ASSERT_OK(parse_timespan("7d", &u));
	ASSERT_EQ_UINT(7 * DAY_US, u);
	ASSERT_OK(parse_timespan("1d 12h", &u));
	ASSERT_EQ_UINT(36 * HOUR_US, u);
	ASSERT_OK(parse_timespan("90", &u));
	ASSERT_EQ_UINT(90 * USEC_PER_SEC, u);
	ASSERT_OK(parse_timespan("5min", &u));
	ASSERT_EQ_UINT(5 * MIN_US, u);
	ASSERT_OK(parse_timespan("2w", &u));
	ASSERT_EQ_UINT(14 * DAY_US, u);
	ASSERT_OK(parse_timespan("1y1M", &u));
	ASSERT_EQ_UINT(395 * DAY_US, u);
	ASSERT_ERRNO(-EINVAL, parse_timespan("", &u));
	ASSERT_ERRNO(-EINVAL, parse_timespan("  ", &u));
	ASSERT_ERRNO(-EINVAL, parse_timespan("d", &u));
	ASSERT_ERRNO(-EINVAL, parse_timespan("3 days", &u));
	ASSERT_ERRNO(-EINVAL, parse_timespan("-3d", &u));
	ASSERT_ERRNO(-EINVAL, parse_timespan("3q", &u));
	ASSERT_ERRNO(-ERANGE, parse_timespan("99999999999999999999", &u));
	ASSERT_ERRNO(-ERANGE, parse_timespan("999999999999y", &u));

	ASSERT_STREQ("36h", format_timespan(36 * HOUR_US, buf, sizeof(buf)));
	ASSERT_STREQ("1w", format_timespan(7 * DAY_US, buf, sizeof(buf)));
	ASSERT_STREQ("90s", format_timespan(90 * USEC_PER_SEC, buf, sizeof(buf)));
	ASSERT_STREQ("5us", format_timespan(5, buf, sizeof(buf)));
	ASSERT_STREQ("daily", retention_period_name(RETENTION_DAILY));
}

int main(void)
{
	RUN_TEST(test_no_policy);
	RUN_TEST(test_keep_last);
	RUN_TEST(test_keep_within);
	RUN_TEST(test_daily_first_of_day);
	RUN_TEST(test_rules_combine);
	RUN_TEST(test_month_ends);
	RUN_TEST(test_leap_years);
	RUN_TEST(test_dst_fall_back);
	RUN_TEST(test_dst_spring_forward);
	RUN_TEST(test_clock_stepped_back);
	RUN_TEST(test_never_newest_or_exposed);
	RUN_TEST(test_same_time);
	RUN_TEST(test_timespan);
	TEST_SUMMARY();
	return 0;
}
