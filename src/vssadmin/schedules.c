/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vssadmin's schedule commands (docs/man/vss-schedules.md): create shadow
 * --schedule=NAME, list schedules, prune --schedule=NAME. The schedule files
 * are read here for what to make; vssd reads them again itself for what it
 * allows and what a prune keeps.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/vss.h>

#include "basic/id.h"
#include "basic/macro.h"
#include "basic/retention.h"
#include "basic/schedule.h"
#include "basic/util.h"
#include "shared/json.h"
#include "shared/names.h"
#include "vssadmin/vssadmin.h"

/* How long a scheduled run waits for the creation slot unless --autoretry
 * says: a timer's run must not be skipped because another set was being
 * made, nor wait for ever. */
#define SCHEDULE_AUTORETRY_USEC (300 * USEC_PER_SEC)

const char *schedules_dir(void)
{
	const char *d = secure_getenv("VSS_SCHEDULES_DIR");

	return d && d[0] ? d : VSS_SCHEDULES_DIR;
}

/* A schedule file, or its failure reported. */
static int load(const char *name, Schedule *ret)
{
	char err[SCHEDULE_ERROR_MAX];
	int r = schedule_load(schedules_dir(), name, ret, err);

	if (r == -ENOENT)
		return fail(VSS_E_OBJECT_NOT_FOUND, "%s", err);
	if (r == -ENOMEM)
		return fail(E_OUTOFMEMORY, "out of memory");
	if (r < 0)
		return fail(E_INVALIDARG, "%s", err[0] ? err : strerror(-r));
	return EXIT_SUCCESS;
}

int schedule_create_args(const char *name, Schedule *s, CreateArgs *a, bool autoretry_given)
{
	int64_t ctx = VSS_CTX_APP_ROLLBACK;
	int r;

	r = load(name, s);
	if (r != EXIT_SUCCESS)
		return r;
	if (s->context) {
		ctx = context_from_name(s->context);
		if (ctx < 0)
			return fail(E_INVALIDARG, "schedule %s: unknown context \"%s\"", name, s->context);
	}
	if (!((int32_t)ctx & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE))
		return fail(E_INVALIDARG,
			    "schedule %s: context \"%s\" is auto-release: its sets would be deleted when vssadmin "
			    "exits; use a persistent context",
			    name, s->context);
	if (s->writers == 0)
		ctx |= VSS_VOLSNAP_ATTR_NO_WRITERS;
	else if (s->writers == 1 && ((int32_t)ctx & VSS_VOLSNAP_ATTR_NO_WRITERS))
		return fail(E_INVALIDARG, "schedule %s: Writers=yes, but context \"%s\" has no writers", name,
			    s->context);
	if (strv_length(s->volumes) > VSS_MAX_VOLUMES_PER_SET + 1)
		return fail(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "schedule %s: a set holds at most %d volumes",
			    name, VSS_MAX_VOLUMES_PER_SET);
	a->volumes = s->volumes;
	a->context = (int32_t)ctx;
	a->schedule = name;
	a->backoff = true;
	if (!autoretry_given)
		a->autoretry = SCHEDULE_AUTORETRY_USEC;
	return EXIT_SUCCESS;
}

void schedule_run_failed(const char *name, int status)
{
	char now[RFC3339_MAX];

	/* stderr goes to the journal under systemd: the run is not lost
	 * silently. */
	fprintf(stderr, "%s: schedule %s: run at %s made no set (exit status %d; the reason is above)\n", program,
		name, format_rfc3339((int64_t)now_usec(CLOCK_REALTIME), now), status);
}

static char *policy_text(const RetentionPolicy *p, char *buf, size_t size)
{
	size_t pos = 0;
	char span[32];

	buf[0] = '\0';
	if (retention_policy_is_empty(p)) {
		snprintf(buf, size, "none (every set is kept)");
		return buf;
	}
	if (p->keep_last)
		pos += (size_t)snprintf(buf + pos, size - pos, "KeepLast=%u ", p->keep_last);
	if (p->keep_within && pos < size)
		pos += (size_t)snprintf(buf + pos, size - pos, "KeepWithin=%s ",
					format_timespan(p->keep_within, span, sizeof(span)));
	for (size_t q = 0; q < _RETENTION_PERIOD_MAX && pos < size; q++)
		if (p->timeline[q])
			pos += (size_t)snprintf(buf + pos, size - pos, "%s=%u ", retention_period_name(q),
						p->timeline[q]);
	if (pos > 0 && pos <= size)
		buf[pos - 1] = '\0';
	return buf;
}

static void policy_json(JsonWriter *w, const RetentionPolicy *p)
{
	json_begin_object(w);
	json_key(w, "keep_last");
	json_uint(w, p->keep_last);
	json_key(w, "keep_within_us");
	json_uint(w, p->keep_within);
	for (size_t q = 0; q < _RETENTION_PERIOD_MAX; q++) {
		json_key(w, retention_period_name(q));
		json_uint(w, p->timeline[q]);
	}
	json_end_object(w);
}

/* One schedule's line of the listing: what its file says (or why it is
 * refused), the next run, and the sets it has. */
typedef struct Row {
	char *name;
	Schedule s;
	bool valid;
	char error[SCHEDULE_ERROR_MAX];
	char *next;
	size_t n_sets;
	int64_t newest_us;
} Row;

int list_schedules(bool json)
{
	_cleanup_(strv_freep) char **names = NULL;
	vss_scheduled_set *sets = NULL;
	_cleanup_free_ Row *rows = NULL;
	size_t n = 0, n_sets = 0;
	vss_backup *b = NULL;
	JsonWriter *w = NULL;
	vss_hr hr;
	int r;

	r = schedule_list(schedules_dir(), &names, &n);
	if (r < 0)
		return fail(VSS_E_UNEXPECTED, "cannot read %s: %s", schedules_dir(), strerror(-r));
	hr = open_admin(&b);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_query_scheduled_sets(b, NULL, &sets, &n_sets);
	/* Reported before the release, which clears libvss's message. */
	r = VSS_FAILED(hr) ? fail(hr, NULL) : EXIT_SUCCESS;
	vss_backup_release(b);
	if (r != EXIT_SUCCESS)
		return r;
	rows = calloc(MAX(n, (size_t)1), sizeof(*rows));
	if (!rows) {
		vss_free_scheduled_sets(sets, n_sets);
		return fail(E_OUTOFMEMORY, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		Row *row = &rows[i];

		row->name = names[i];
		r = schedule_load(schedules_dir(), names[i], &row->s, row->error);
		if (r >= 0)
			r = schedule_check_calendar(row->s.calendar, &row->next, row->error);
		row->valid = r >= 0;
		for (size_t k = 0; k < n_sets; k++)
			if (streq(sets[k].schedule, names[i])) {
				row->n_sets++;
				row->newest_us = sets[k].creation_timestamp;
			}
	}
	vss_free_scheduled_sets(sets, n_sets);

	if (json) {
		w = malloc(sizeof(*w));
		if (!w) {
			r = fail(E_OUTOFMEMORY, "out of memory");
			goto out;
		}
		json_init(w, stdout, true);
		json_begin_array(w);
	} else if (n == 0)
		printf("No schedules in %s.\n", schedules_dir());
	for (size_t i = 0; i < n; i++) {
		Row *row = &rows[i];
		char text[512], when[RFC3339_MAX];

		if (json) {
			json_begin_object(w);
			json_key(w, "name");
			json_string(w, row->name);
			json_key(w, "valid");
			json_bool(w, row->valid);
			json_key(w, "error");
			json_string(w, row->valid ? NULL : row->error);
			json_key(w, "calendar");
			json_string(w, row->s.calendar);
			json_key(w, "next_run");
			json_string(w, row->next);
			json_key(w, "volumes");
			json_begin_array(w);
			for (size_t v = 0; row->s.volumes && row->s.volumes[v]; v++)
				json_string(w, row->s.volumes[v]);
			json_end_array(w);
			json_key(w, "context");
			json_string(w, row->s.context ?: "app_rollback");
			json_key(w, "writers");
			if (row->s.writers < 0)
				json_string(w, NULL);
			else
				json_bool(w, row->s.writers);
			json_key(w, "retention");
			policy_json(w, &row->s.policy);
			json_key(w, "sets");
			json_uint(w, row->n_sets);
			json_key(w, "newest_set");
			json_string(w, row->n_sets ? format_rfc3339(row->newest_us, when) : NULL);
			json_end_object(w);
			continue;
		}
		printf("%sSchedule: %s\n", i ? "\n" : "", row->name);
		if (!row->valid) {
			printf("   Invalid: %s\n", row->error);
			continue;
		}
		printf("   Calendar: %s\n", row->s.calendar);
		printf("   Next run: %s\n", row->next ?: "never");
		printf("   Volumes:");
		for (size_t v = 0; row->s.volumes[v]; v++)
			printf(" %s", row->s.volumes[v]);
		printf("\n   Context: %s\n", row->s.context ?: "app_rollback");
		printf("   Writers: %s\n", row->s.writers < 0 ? "as the context says" : row->s.writers ? "yes" : "no");
		printf("   Retention: %s\n", policy_text(&row->s.policy, text, sizeof(text)));
		if (row->n_sets)
			printf("   Sets: %zu, the newest made %s\n", row->n_sets, format_rfc3339(row->newest_us, when));
		else
			printf("   Sets: none\n");
	}
	if (json) {
		json_end_array(w);
		json_finish(w);
	}
	r = EXIT_SUCCESS;
out:
	for (size_t i = 0; i < n; i++) {
		schedule_clear(&rows[i].s);
		free(rows[i].next);
	}
	free(w);
	return r;
}

int prune_schedule(const char *name, bool dry_run, bool json)
{
	vss_prune_entry *e = NULL;
	size_t n = 0, gone = 0;
	vss_backup *b = NULL;
	JsonWriter *w = NULL;
	vss_hr hr;

	if (!schedule_name_is_valid(name)) {
		char quoted[96];

		/* Cut to fit, maybe inside a character. */
		snprintf(quoted, sizeof(quoted), "%.80s", name);
		return fail(E_INVALIDARG, "\"%s\" is not a schedule's name", utf8_make_valid(quoted));
	}
	hr = open_admin(&b);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_prune(b, name, dry_run, &e, &n);
	if (VSS_FAILED(hr)) {
		/* Before the release, which clears libvss's message. */
		int r = fail(hr, NULL);

		vss_backup_release(b);
		return r;
	}
	vss_backup_release(b);
	if (json) {
		w = malloc(sizeof(*w));
		if (!w) {
			vss_free_prune_entries(e, n);
			return fail(E_OUTOFMEMORY, "out of memory");
		}
		json_init(w, stdout, true);
		json_begin_array(w);
	}
	for (size_t i = 0; i < n; i++) {
		char id[VSS_ID_STRING_MAX], when[RFC3339_MAX];
		const char *verdict = e[i].keep ? "kept" : e[i].deleted ? "deleted" : dry_run ? "would delete" : "left";

		if (!e[i].keep)
			gone++;
		if (json) {
			json_begin_object(w);
			json_key(w, "set_id");
			json_string(w, vss_id_format(&e[i].set_id, id));
			json_key(w, "created");
			json_string(w, format_rfc3339(e[i].creation_timestamp, when));
			json_key(w, "keep");
			json_bool(w, e[i].keep);
			json_key(w, "deleted");
			json_bool(w, e[i].deleted);
			json_key(w, "reason");
			json_string(w, e[i].reason);
			json_end_object(w);
			continue;
		}
		printf("%-12s %s  %s  %s\n", verdict, vss_id_format(&e[i].set_id, id),
		       format_rfc3339(e[i].creation_timestamp, when), e[i].reason);
	}
	if (json) {
		json_end_array(w);
		json_finish(w);
		free(w);
	} else if (n == 0)
		printf("Schedule %s has no sets.\n", name);
	else
		printf("Schedule %s: %zu set(s), %zu %s, %zu kept.\n", name, n, gone, dry_run ? "would go" : "deleted",
		       n - gone);
	vss_free_prune_entries(e, n);
	return EXIT_SUCCESS;
}
