/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/macro.h"
#include "basic/retention.h"

static const char *const period_names[_RETENTION_PERIOD_MAX] = {
	[RETENTION_HOURLY] = "hourly",   [RETENTION_DAILY] = "daily",   [RETENTION_WEEKLY] = "weekly",
	[RETENTION_MONTHLY] = "monthly", [RETENTION_YEARLY] = "yearly",
};
static const char *const period_units[_RETENTION_PERIOD_MAX] = {
	[RETENTION_HOURLY] = "hour",   [RETENTION_DAILY] = "day",   [RETENTION_WEEKLY] = "week",
	[RETENTION_MONTHLY] = "month", [RETENTION_YEARLY] = "year",
};

const char *retention_period_name(RetentionPeriod p)
{
	return p < _RETENTION_PERIOD_MAX ? period_names[p] : NULL;
}

bool retention_policy_is_empty(const RetentionPolicy *p)
{
	if (p->keep_last || p->keep_within)
		return false;
	for (size_t i = 0; i < _RETENTION_PERIOD_MAX; i++)
		if (p->timeline[i])
			return false;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): a week is keyed by its Monday's day number, so that a
 * week across a new year is one week. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

typedef struct Keys {
	int64_t k[_RETENTION_PERIOD_MAX];
} Keys;

/* The local periods of t. An hour is keyed by its UTC offset too: when the
 * clocks go back, 02:00-03:00 happens twice and is two hours that each keep
 * their set; a day stays the calendar's day (23 or 25 hours). */
static void period_keys(int64_t usec, Keys *ret)
{
	time_t t = (time_t)(usec >= 0 ? usec / (int64_t)USEC_PER_SEC : -((-usec + (int64_t)USEC_PER_SEC - 1) / (int64_t)USEC_PER_SEC));
	struct tm tm;
	int64_t day;

	if (!localtime_r(&t, &tm)) {
		/* Out of range for struct tm: one period of its own per second. */
		for (size_t i = 0; i < _RETENTION_PERIOD_MAX; i++)
			ret->k[i] = (int64_t)t;
		return;
	}
	day = days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
	ret->k[RETENTION_HOURLY] = (day * 24 + tm.tm_hour) * 100000 + (tm.tm_gmtoff + 50000);
	ret->k[RETENTION_DAILY] = day;
	ret->k[RETENTION_WEEKLY] = day - (tm.tm_wday + 6) % 7;
	ret->k[RETENTION_MONTHLY] = ((int64_t)tm.tm_year + 1900) * 12 + tm.tm_mon;
	ret->k[RETENTION_YEARLY] = (int64_t)tm.tm_year + 1900;
}

typedef struct Entry {
	size_t index;
	int64_t created_us;
	Keys keys;
} Entry;

/* Newest first; sets made at the same µs in the order made, the later one
 * first, so that the order is total and each period has one first set. */
static int entry_compare(const void *a, const void *b)
{
	const Entry *x = a, *y = b;

	if (x->created_us != y->created_us)
		return x->created_us > y->created_us ? -1 : 1;
	return x->index > y->index ? -1 : x->index < y->index;
}

int retention_decide(RetentionSet *sets, size_t n, const RetentionPolicy *p, int64_t now_us)
{
	_cleanup_free_ Entry *e = NULL;
	unsigned count[_RETENTION_PERIOD_MAX] = { 0 };
	size_t newest = 0, rank = 0;
	bool empty = retention_policy_is_empty(p);

	for (size_t i = 0; i < n; i++)
		if (sets[i].newest)
			newest++;
	if (newest > 1)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (newest == 0)
		sets[n - 1].newest = true;
	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		RetentionSet *s = &sets[i];

		s->keep = false;
		s->reason = RETENTION_DELETE;
		s->rank = 0;
		s->periods = 0;
		memset(s->period_rank, 0, sizeof(s->period_rank));
		e[i] = (Entry){ .index = i, .created_us = s->created_us };
		period_keys(s->created_us, &e[i].keys);
	}

	/* KeepLast counts in the order the sets were made, which a clock
	 * stepped back does not change. */
	for (size_t i = n; i-- > 0 && rank < p->keep_last;)
		sets[i].rank = (unsigned)++rank;

	/* The timeline, as snapper's: walking from the newest, a set is the
	 * first of its period when the next older set is of another period;
	 * the newest `timeline[p]` such periods keep their first set. */
	qsort(e, n, sizeof(*e), entry_compare);
	for (size_t i = 0; i < n; i++)
		for (size_t q = 0; q < _RETENTION_PERIOD_MAX; q++) {
			RetentionSet *s = &sets[e[i].index];

			if (count[q] >= p->timeline[q])
				continue;
			if (i + 1 < n && e[i + 1].keys.k[q] == e[i].keys.k[q])
				continue;
			s->periods |= 1u << q;
			s->period_rank[q] = ++count[q];
		}

	for (size_t i = 0; i < n; i++) {
		RetentionSet *s = &sets[i];

		if (s->newest)
			s->reason = RETENTION_KEEP_NEWEST;
		else if (s->exposed)
			s->reason = RETENTION_KEEP_EXPOSED;
		else if (s->created_us > now_us)
			s->reason = RETENTION_KEEP_FUTURE;
		else if (empty)
			s->reason = RETENTION_KEEP_NO_POLICY;
		else if (s->rank)
			s->reason = RETENTION_KEEP_LAST;
		else if (p->keep_within && (uint64_t)(now_us - s->created_us) < p->keep_within)
			s->reason = RETENTION_KEEP_WITHIN;
		else if (s->periods)
			s->reason = RETENTION_KEEP_TIMELINE;
		s->keep = s->reason != RETENTION_DELETE;
	}
	return 0;
}

static const struct {
	const char *suffix;
	usec_t usec;
} units[] = {
	/* Longest first: format_timespan() takes the largest that divides. */
	{ "y", 365 * 24 * 3600 * USEC_PER_SEC },
	{ "M", 30 * 24 * 3600 * USEC_PER_SEC },
	{ "w", 7 * 24 * 3600 * USEC_PER_SEC },
	{ "d", 24 * 3600 * USEC_PER_SEC },
	{ "h", 3600 * USEC_PER_SEC },
	{ "min", 60 * USEC_PER_SEC },
	{ "s", USEC_PER_SEC },
};

int parse_timespan(const char *s, usec_t *ret)
{
	usec_t total = 0;
	bool any = false;

	for (const char *c = s;;) {
		char *end;
		unsigned long long v;
		usec_t unit = 0;
		size_t len;

		while (*c == ' ' || *c == '\t')
			c++;
		if (!*c)
			break;
		if (*c < '0' || *c > '9')
			return -EINVAL;
		errno = 0;
		v = strtoull(c, &end, 10);
		if (errno == ERANGE)
			return -ERANGE;
		len = strcspn(end, " \t0123456789");
		if (len == 0)
			unit = USEC_PER_SEC;
		for (size_t i = 0; !unit && i < ELEMENTSOF(units); i++)
			if (strlen(units[i].suffix) == len && strncmp(end, units[i].suffix, len) == 0)
				unit = units[i].usec;
		if (!unit)
			return -EINVAL;
		if (v > (USEC_INFINITY - 1 - total) / unit)
			return -ERANGE;
		total += v * unit;
		any = true;
		c = end + len;
	}
	if (!any)
		return -EINVAL;
	*ret = total;
	return 0;
}

char *format_timespan(usec_t span, char *buf, size_t size)
{
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (span >= units[i].usec && span % units[i].usec == 0) {
			snprintf(buf, size, "%llu%s", (unsigned long long)(span / units[i].usec), units[i].suffix);
			return buf;
		}
	snprintf(buf, size, "%lluus", (unsigned long long)span);
	return buf;
}

/* Append to buf at *pos, never past size. */
_printf_(4, 5) static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (*pos >= size)
		return;
	va_start(ap, fmt);
	k = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	va_end(ap);
	if (k > 0)
		*pos = MIN(size - 1, *pos + (size_t)k);
}

char *retention_reason_format(const RetentionSet *s, const RetentionPolicy *p, char buf[static RETENTION_REASON_MAX])
{
	const size_t size = RETENTION_REASON_MAX;
	size_t pos = 0;
	char span[32];
	bool first = true;

	buf[0] = '\0';
	switch (s->reason) {
	case RETENTION_KEEP_NEWEST:
		append(buf, size, &pos, "the schedule's newest set");
		break;
	case RETENTION_KEEP_EXPOSED:
		append(buf, size, &pos, "exposed");
		break;
	case RETENTION_KEEP_FUTURE:
		append(buf, size, &pos, "newer than now (the clock was set back)");
		break;
	case RETENTION_KEEP_NO_POLICY:
		append(buf, size, &pos, "the schedule has no retention policy");
		break;
	case RETENTION_KEEP_LAST:
		append(buf, size, &pos, "one of the last %u (%u of %u)", p->keep_last, s->rank, p->keep_last);
		break;
	case RETENTION_KEEP_WITHIN:
		append(buf, size, &pos, "younger than %s", format_timespan(p->keep_within, span, sizeof(span)));
		break;
	case RETENTION_KEEP_TIMELINE:
		append(buf, size, &pos, "the first set of its");
		for (size_t q = 0; q < _RETENTION_PERIOD_MAX; q++)
			if (s->periods & (1u << q)) {
				append(buf, size, &pos, "%s %s (%u of %u %s)", first ? "" : ",", period_units[q],
				       s->period_rank[q], p->timeline[q], period_names[q]);
				first = false;
			}
		break;
	case RETENTION_DELETE:
		append(buf, size, &pos, "beyond the policy:");
		if (p->keep_last) {
			append(buf, size, &pos, " not one of the last %u", p->keep_last);
			first = false;
		}
		if (p->keep_within) {
			append(buf, size, &pos, "%s older than %s", first ? "" : ",",
			       format_timespan(p->keep_within, span, sizeof(span)));
			first = false;
		}
		for (size_t q = 0; q < _RETENTION_PERIOD_MAX; q++)
			if (p->timeline[q]) {
				append(buf, size, &pos, "%s not the first set of one of the %u newest %ss",
				       first ? "" : ",", p->timeline[q], period_units[q]);
				first = false;
			}
		break;
	}
	return buf;
}
