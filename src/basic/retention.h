/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which sets of a schedule a prune keeps (docs/man/vss-schedules.md): a pure
 * function of the sets' creation times and flags, the policy, "now" and the
 * local time zone (localtime_r(), so TZ as tzset() last read it).
 *
 * A set is kept when any rule keeps it, in this order of reasons: it is the
 * newest set of the schedule; it is exposed; it is newer than now (the clock
 * was stepped back: its age cannot be judged); the policy is empty; it is one
 * of the KeepLast newest; it is younger than KeepWithin; it is the first set
 * (the oldest) of one of the newest Hourly/Daily/Weekly/Monthly/Yearly
 * periods that have sets, as snapper's timeline cleanup keeps them. Every
 * other set goes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic/util.h"

typedef enum RetentionPeriod {
	RETENTION_HOURLY,
	RETENTION_DAILY,
	RETENTION_WEEKLY,       /* weeks begin on Monday */
	RETENTION_MONTHLY,
	RETENTION_YEARLY,
	_RETENTION_PERIOD_MAX,
} RetentionPeriod;

typedef struct RetentionPolicy {
	unsigned keep_last;                     /* KeepLast=: the N newest; 0: no rule */
	usec_t keep_within;                     /* KeepWithin=: younger than this; 0: no rule */
	unsigned timeline[_RETENTION_PERIOD_MAX]; /* Hourly= ... Yearly=: periods kept; 0: no rule */
} RetentionPolicy;

typedef enum RetentionReason {
	RETENTION_KEEP_NEWEST,
	RETENTION_KEEP_EXPOSED,
	RETENTION_KEEP_FUTURE,
	RETENTION_KEEP_NO_POLICY,
	RETENTION_KEEP_LAST,
	RETENTION_KEEP_WITHIN,
	RETENTION_KEEP_TIMELINE,
	RETENTION_DELETE,
} RetentionReason;

typedef struct RetentionSet {
	/* Given: */
	int64_t created_us;     /* CLOCK_REALTIME µs */
	bool exposed;           /* one of its snapshots is exposed (or in use) */
	bool newest;            /* the set the schedule made last */
	/* Written by retention_decide(): */
	bool keep;
	RetentionReason reason; /* the first rule that keeps it, or RETENTION_DELETE */
	unsigned rank;          /* RETENTION_KEEP_LAST: 1 for the newest */
	unsigned periods;       /* bit p: the first set of a kept period p ... */
	unsigned period_rank[_RETENTION_PERIOD_MAX]; /* ... the rank-th newest of them */
} RetentionSet;

/* Whether the policy has no rule at all (a prune then keeps every set). */
bool retention_policy_is_empty(const RetentionPolicy *p);

/* Decide every set of sets[], given in the order they were made (created_us
 * need not increase: the clock may have been stepped). When no set is
 * flagged newest, the last one given is. -EINVAL for more than one set
 * flagged newest, -ENOMEM. */
int retention_decide(RetentionSet *sets, size_t n, const RetentionPolicy *p, int64_t now_us);

/* The decision on s as a phrase ("one of the last 3", "the first set of its
 * day (2 of 7 daily)", "beyond the policy: ..."). */
#define RETENTION_REASON_MAX 256
char *retention_reason_format(const RetentionSet *s, const RetentionPolicy *p, char buf[static RETENTION_REASON_MAX]);

/* "hourly" ... "yearly". */
const char *retention_period_name(RetentionPeriod p);

/* A time span as KeepWithin= takes it: a number with a unit, s, min, h, d,
 * w (7 d), M (30 d) or y (365 d), several of them added ("1d 12h"); a bare
 * number is seconds. -EINVAL, -ERANGE. */
int parse_timespan(const char *s, usec_t *ret);
/* The shortest such text for a span ("36h", "7d"). */
char *format_timespan(usec_t span, char *buf, size_t size);
