/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.vss.BackupSchedules1 on each backup object: tagging the set being
 * made with the schedule that makes it, listing the tagged sets, and
 * pruning a schedule's sets by its retention (docs/man/vss-schedules.md).
 *
 * A client is hostile: only root may tag or prune (a backup operator
 * tagging its own sets "daily" would push the real daily sets out), a tag
 * must name a schedule of vssd's own directory, and a prune reads the
 * retention from that file, never from the caller. The decision and the
 * deletions run in one go on the event loop against the catalog, so no set
 * can become exposed (or be made) between them.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/retention.h"
#include "basic/schedule.h"
#include "protocol/bus.h"
#include "vssd/manager.h"

void backup_note_set_used(BackupObject *b, const vss_id *set_id)
{
	vss_id *slot;

	for (size_t i = 0; i < b->n_used_sets; i++)
		if (vss_id_equal(&b->used_sets[i], set_id))
			return;
	slot = array_grow((void **)&b->used_sets, &b->n_used_sets, sizeof(*slot));
	/* Without memory the set is still exposed now; only its protection
	 * after an unexpose is lost, and that is logged. */
	if (slot)
		*slot = *set_id;
	else
		log_warning("%s: out of memory noting that it uses set %s", b->path, ID_TO_STRING(set_id));
}

void backup_schedules_free(BackupObject *b)
{
	free(b->schedule);
	free(b->used_sets);
	b->schedule = NULL;
	b->used_sets = NULL;
	b->n_used_sets = 0;
}

/* Whether a live object made set_id and still holds it, or exposed one of
 * its snapshots (vssadmin exec reads clones of the exposures it dropped). */
static bool set_in_use(Manager *m, const vss_id *set_id)
{
	for (Connection *c = m->connections; c; c = c->connections_next)
		for (BackupObject *b = c->backups; b; b = b->backups_next) {
			if (b->set_created && vss_id_equal(&b->set_id, set_id))
				return true;
			for (size_t i = 0; i < b->n_used_sets; i++)
				if (vss_id_equal(&b->used_sets[i], set_id))
					return true;
		}
	return false;
}

static int check_root(BackupObject *b, const char *what, sd_bus_error *error)
{
	if (b->conn->cred.uid == 0)
		return 0;
	log_notice("uid %u may not %s: only root may", (unsigned)b->conn->cred.uid, what);
	return bus_error_set_hr(error, E_ACCESSDENIED, "only root may %s", what);
}

/* The schedule as vssd's own directory has it, or the D-Bus error. */
static int load_schedule(BackupObject *b, const char *name, Schedule *ret, sd_bus_error *error)
{
	char err[SCHEDULE_ERROR_MAX];
	int r = schedule_load(b->manager->config.schedules_dir, name, ret, err);

	if (r == -ENOENT)
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "%s", err);
	if (r == -ENOMEM)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	if (r < 0)
		return bus_error_set_hr(error, E_INVALIDARG, "%s", err[0] ? err : strerror(-r));
	return 0;
}

static int method_set_schedule(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	Schedule s;
	const char *name;
	char *copy;
	int r;

	r = sd_bus_message_read(msg, "s", &name);
	if (r < 0)
		return r;
	r = check_root(b, "record a schedule on a set", error);
	if (r < 0)
		return r;
	if (b->state != BS_INITIALIZED && b->state != BS_SET_OPEN && b->state != BS_PREPARED)
		return bus_error_set_hr(error, VSS_E_BAD_STATE,
					"SetSchedule: only between InitializeForBackup and DoSnapshotSet (object is %s)",
					backup_state_to_string(b->state));
	if (b->facts.context_all)
		return bus_error_set_hr(error, VSS_E_BAD_STATE, "SetSchedule: VSS_CTX_ALL makes no sets");
	r = load_schedule(b, name, &s, error);
	if (r < 0)
		return r;
	schedule_clear(&s);
	copy = strdup(name);
	if (!copy)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	free(b->schedule);
	b->schedule = copy;
	return sd_bus_reply_method_return(msg, "");
}

static int method_query_scheduled_sets(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	CatalogScheduledSet *sets = NULL;
	const char *name;
	char id[VSS_ID_STRING_MAX];
	size_t n = 0;
	int r;

	r = sd_bus_message_read(msg, "s", &name);
	if (r < 0)
		return r;
	if (b->state == BS_NEW)
		return bus_error_set_hr(error, VSS_E_BAD_STATE, "QueryScheduledSets: InitializeForBackup must be called first");
	if (name[0] && !schedule_name_is_valid(name))
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not a schedule's name", name);
	r = catalog_list_scheduled_sets(b->manager->catalog, name[0] ? name : NULL, &sets, &n);
	if (r < 0)
		return bus_error_set_hr(error, r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED,
					"cannot read the catalog: %s", strerror(-r));
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(ssxb)");
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = sd_bus_message_append(reply, "(ssxb)", vss_id_format(&sets[i].id, id), sets[i].schedule,
					  sets[i].created_us, sets[i].exposed || set_in_use(b->manager, &sets[i].id));
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	catalog_scheduled_sets_free(sets, n);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

/* Delete one set's snapshots: S_OK, or the failure with why in msg. */
static vss_hr delete_set(Manager *m, const vss_id *set_id, char *msg, size_t size)
{
	CatalogSnapshot *snaps;
	size_t n;
	int32_t deleted;
	vss_id failed;
	vss_hr hr;
	int r;

	r = catalog_list_snapshots(m->catalog, &(CatalogFilter){ .set_id = set_id }, &snaps, &n);
	if (r < 0) {
		snprintf(msg, size, "cannot read the catalog: %s", strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	hr = manager_delete_snapshots(m, snaps, n, &deleted, &failed, msg, size);
	catalog_snapshots_free(snaps, n);
	return hr;
}

static int method_prune(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	Manager *m = b->manager;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_free_ RetentionSet *rs = NULL;
	CatalogScheduledSet *sets = NULL;
	Schedule s;
	const char *name;
	char id[VSS_ID_STRING_MAX], why[RETENTION_REASON_MAX], message[512] = "";
	vss_hr result = S_OK;
	int dry_run, r;
	size_t n = 0;

	r = sd_bus_message_read(msg, "sb", &name, &dry_run);
	if (r < 0)
		return r;
	r = check_root(b, "prune a schedule's sets", error);
	if (r < 0)
		return r;
	r = manager_check_running(m, error);
	if (r < 0)
		return r;
	if (b->state == BS_NEW)
		return bus_error_set_hr(error, VSS_E_BAD_STATE, "Prune: InitializeForBackup must be called first");
	r = load_schedule(b, name, &s, error);
	if (r < 0)
		return r;
	r = catalog_list_scheduled_sets(m->catalog, name, &sets, &n);
	if (r < 0) {
		schedule_clear(&s);
		return bus_error_set_hr(error, r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED,
					"cannot read the catalog: %s", strerror(-r));
	}
	rs = calloc(MAX(n, (size_t)1), sizeof(*rs));
	if (!rs) {
		schedule_clear(&s);
		catalog_scheduled_sets_free(sets, n);
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	}
	/* The last recorded is the newest (retention_decide()'s default). */
	for (size_t i = 0; i < n; i++)
		rs[i] = (RetentionSet){
			.created_us = sets[i].created_us,
			.exposed = sets[i].exposed || set_in_use(m, &sets[i].id),
		};
	r = retention_decide(rs, n, &s.policy, (int64_t)now_usec(CLOCK_REALTIME));
	if (r < 0) {
		schedule_clear(&s);
		catalog_scheduled_sets_free(sets, n);
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	}

	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(sxbbs)");
	for (size_t i = 0; r >= 0 && i < n; i++) {
		bool deleted = false;

		retention_reason_format(&rs[i], &s.policy, why);
		/* After a failure the sets still to go stay: the caller hears
		 * which and why, and the next prune takes them. */
		if (!rs[i].keep && !dry_run && VSS_SUCCEEDED(result)) {
			result = delete_set(m, &sets[i].id, message, sizeof(message));
			deleted = VSS_SUCCEEDED(result);
			if (deleted)
				log_info("prune %s: deleted set %s: %s", name, vss_id_format(&sets[i].id, id), why);
			else
				log_error("prune %s: cannot delete set %s: %s", name, vss_id_format(&sets[i].id, id),
					  message);
		}
		r = sd_bus_message_append(reply, "(sxbbs)", vss_id_format(&sets[i].id, id), sets[i].created_us,
					  rs[i].keep, deleted, why);
	}
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r >= 0)
		r = sd_bus_message_append(reply, "is", result, message);
	schedule_clear(&s);
	catalog_scheduled_sets_free(sets, n);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

const sd_bus_vtable backup_schedules_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("SetSchedule", "s", "", method_set_schedule, 0),
	SD_BUS_METHOD("QueryScheduledSets", "s", "a(ssxb)", method_query_scheduled_sets, 0),
	SD_BUS_METHOD("Prune", "sb", "a(sxbbs)is", method_prune, 0),
	SD_BUS_VTABLE_END,
};
