/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Reverting a volume to one of its snapshots (revert.h). A revert goes:
 *
 *   RevertToSnapshot, checked on the loop (root, a persistent snapshot,
 *   not exposed, no set being made, no other revert of the volume)
 *   -> revert_plan on a thread (changes nothing)
 *   -> the intent recorded in the catalog, on the loop (synced)
 *   -> revert on a thread
 *   -> the outcome recorded, on the loop, and the call answered.
 *
 * The call's answer waits for the end, as DoSnapshotSet's waits for room
 * in shadow storage (creation/room.c); the requestor may ask
 * QueryRevertStatus meanwhile, from any object.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "basic/util.h"
#include "protocol/bus.h"
#include "vssd/revert.h"

typedef enum RevertPhase {
	PHASE_PLAN,
	PHASE_REVERT,
} RevertPhase;

struct Revert {
	Manager *manager;
	CatalogRevert rec;       /* the intent, as recorded (or to be) */
	const provider_ops *ops;
	ProviderRevert pr;       /* its strings are rec's */
	RevertPhase phase;
	bool recorded;           /* rec is in the catalog */
	bool unfinished;         /* it failed part-way: rec stays, the volume waits */
	vss_hr hr;               /* why, when unfinished */
	char message[512];
	/* The thread of the phase in flight: its own until it signals done_fd. */
	pthread_t thread;
	bool running;
	int result;
	int done_fd;
	sd_event_source *source;
	/* Who waits: the RevertToSnapshot call (and its object, NULL once
	 * gone), and the operations QueryRevertStatus gave. */
	BackupObject *owner;
	sd_bus_message *call;
	AsyncOp **asyncs;
	size_t n_asyncs;
	LIST_FIELDS(Revert, reverts);
};

static Revert *revert_free(Revert *rv)
{
	if (!rv)
		return NULL;
	if (rv->running)
		pthread_join(rv->thread, NULL);
	LIST_REMOVE(reverts, rv->manager->reverts, rv);
	sd_event_source_disable_unref(rv->source);
	safe_close(rv->done_fd);
	sd_bus_message_unref(rv->call);
	free(rv->asyncs);
	catalog_revert_clear(&rv->rec);
	free(rv);
	return NULL;
}

static Revert *find_volume(Manager *m, const char *volume)
{
	for (Revert *rv = m->reverts; rv; rv = rv->reverts_next)
		if (streq(rv->rec.volume, volume))
			return rv;
	return NULL;
}

/* The provider's result as the requestor sees it (provider.h). */
static vss_hr revert_result_to_hr(int r)
{
	switch (r) {
	case 0:
		return S_OK;
	case -EBUSY:
		return VSS_E_VOLUME_IN_USE;
	case -EOPNOTSUPP:
		return VSS_E_VOLUME_NOT_SUPPORTED;
	case -ENOENT:
		return VSS_E_OBJECT_NOT_FOUND;
	case -ENOSPC:
	case -EDQUOT:
		return VSS_E_INSUFFICIENT_STORAGE;
	case -ENOMEM:
		return E_OUTOFMEMORY;
	default:
		return VSS_E_UNEXPECTED_PROVIDER_ERROR;
	}
}

static void revert_point_pr(Revert *rv)
{
	rv->pr.volume = rv->rec.volume;
	rv->pr.snapshot_path = rv->rec.snapshot_path;
	rv->pr.provider_data = rv->rec.provider_data;
	rv->pr.force_unmount = rv->rec.force_unmount;
}

static void *phase_thread(void *userdata)
{
	Revert *rv = userdata;

	rv->result = rv->phase == PHASE_PLAN ? rv->ops->revert_plan(&rv->pr) : rv->ops->revert(&rv->pr);
	/* Whatever a provider wrote, the message ends. */
	rv->pr.message[sizeof(rv->pr.message) - 1] = '\0';
	rv->pr.plan[sizeof(rv->pr.plan) - 1] = '\0';
	(void)eventfd_write(rv->done_fd, 1);
	return NULL;
}

static int phase_start(Revert *rv, RevertPhase phase)
{
	int r;

	rv->phase = phase;
	rv->pr.message[0] = '\0';
	rv->pr.snapshot_consumed = false;
	r = -pthread_create(&rv->thread, NULL, phase_thread, rv);
	if (r < 0)
		return r;
	rv->running = true;
	return 0;
}

/* Answer everyone waiting for rv with hr (and why). */
static void revert_answer(Revert *rv, vss_hr hr, const char *message)
{
	Manager *m = rv->manager;

	if (rv->call) {
		_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

		if (VSS_SUCCEEDED(hr))
			(void)sd_bus_reply_method_return(rv->call, "");
		else {
			bus_error_set_hr(&error, hr, "%s", message);
			(void)sd_bus_reply_method_error(rv->call, &error);
		}
		rv->call = sd_bus_message_unref(rv->call);
		if (rv->owner)
			connection_touched(rv->owner->conn);
	}
	rv->owner = NULL;
	for (size_t i = 0; i < rv->n_asyncs; i++) {
		AsyncOp *a = rv->asyncs[i];

		if (VSS_FAILED(hr))
			async_op_set_message(a, message);
		async_op_complete(a, VSS_SUCCEEDED(hr) ? VSS_S_ASYNC_FINISHED : hr);
		connection_touched(a->conn);
	}
	rv->n_asyncs = 0;
	if (m->stopping && !m->creation && !m->room && !revert_running(m))
		(void)manager_exit(m);
}

/* The revert failed part-way: its intent stays recorded, and its volume
 * refuses sets and reverts until a revert of the same snapshot, or vssd's
 * next start, finishes it. */
static void revert_left_unfinished(Revert *rv, vss_hr hr, const char *why)
{
	rv->unfinished = true;
	rv->hr = hr;
	snprintf(rv->message, sizeof(rv->message),
		 "the revert of %s to snapshot %s is unfinished (%s); once the cause is fixed, revert to the same "
		 "snapshot again or restart vssd, which finishes it",
		 rv->rec.volume, ID_TO_STRING(&rv->rec.snapshot_id), why);
	log_error("%s", rv->message);
}

/* The revert is done: recorded, and the later snapshots noted. */
static int revert_record_done(Revert *rv)
{
	char note[128 + VSS_ID_STRING_MAX], when[RFC3339_MAX];
	int r;

	snprintf(note, sizeof(note), "taken before the volume was reverted to %s at %s",
		 ID_TO_STRING(&rv->rec.snapshot_id), format_rfc3339((int64_t)now_usec(CLOCK_REALTIME), when));
	r = catalog_finish_revert(rv->manager->catalog, &rv->rec, rv->pr.snapshot_consumed, note);
	if (r < 0)
		log_error_errno(r, "the revert of %s to snapshot %s is done, but cannot be recorded: %m; vssd "
				   "finds it done at its next start",
				rv->rec.volume, ID_TO_STRING(&rv->rec.snapshot_id));
	return r;
}

/* The outcome of revert(), on the loop (or at stop, with nobody left to
 * answer). Returns whether rv is gone: a revert left unfinished stays
 * listed, for the volume is blocked until it is finished. */
static bool revert_ended(Revert *rv)
{
	const char *why = rv->pr.message[0] ? rv->pr.message : strerror(-rv->result);
	vss_hr hr = revert_result_to_hr(rv->result);
	char message[512];

	if (rv->result == 0) {
		log_info("%s reverted to snapshot %s%s%s", rv->rec.volume, ID_TO_STRING(&rv->rec.snapshot_id),
			 rv->pr.message[0] ? ": " : "", rv->pr.message);
		if (revert_record_done(rv) < 0) {
			/* The disk is done; the row says to look again. */
			revert_left_unfinished(rv, VSS_E_UNEXPECTED, "the catalog cannot record it");
			revert_answer(rv, S_OK, NULL);
			return false;
		}
		revert_answer(rv, S_OK, NULL);
		revert_free(rv);
		return true;
	}
	if (rv->result == -EBUSY) {
		/* Refused before anything changed. */
		snprintf(message, sizeof(message), "%s", why);
		if (catalog_drop_revert(rv->manager->catalog, &rv->rec.snapshot_id) < 0) {
			revert_left_unfinished(rv, VSS_E_REVERT_IN_PROGRESS, "the catalog cannot forget its intent");
			revert_answer(rv, hr, message);
			return false;
		}
		log_info("revert of %s to snapshot %s refused: %s", rv->rec.volume, ID_TO_STRING(&rv->rec.snapshot_id),
			 why);
		revert_answer(rv, hr, message);
		revert_free(rv);
		return true;
	}
	revert_left_unfinished(rv, hr, why);
	revert_answer(rv, hr, rv->message);
	return false;
}

/* The plan is made: the intent is recorded, then the revert begins. */
static void plan_ended(Revert *rv)
{
	Manager *m = rv->manager;
	const char *why = rv->pr.message[0] ? rv->pr.message : strerror(-rv->result);
	char message[512];
	int r;

	if (rv->result < 0) {
		snprintf(message, sizeof(message), "%s cannot be reverted: %s", rv->rec.volume, why);
		log_info("%s", message);
		revert_answer(rv, revert_result_to_hr(rv->result), message);
		revert_free(rv);
		return;
	}
	if (m->stopping) {
		revert_answer(rv, VSS_E_UNEXPECTED, "vssd is stopping");
		revert_free(rv);
		return;
	}
	rv->rec.plan = strdup(rv->pr.plan);
	rv->rec.started_us = (int64_t)now_usec(CLOCK_REALTIME);
	r = rv->rec.plan ? catalog_begin_revert(m->catalog, &rv->rec) : -ENOMEM;
	if (r < 0) {
		snprintf(message, sizeof(message), "cannot record the revert of %s in the catalog: %s", rv->rec.volume,
			 strerror(-r));
		log_error("%s", message);
		revert_answer(rv, r == -EEXIST ? VSS_E_REVERT_IN_PROGRESS : VSS_E_UNEXPECTED, message);
		revert_free(rv);
		return;
	}
	rv->recorded = true;
	log_notice("reverting %s to snapshot %s (%s provider)%s", rv->rec.volume, ID_TO_STRING(&rv->rec.snapshot_id),
		   rv->ops->name, rv->rec.force_unmount ? ", unmounting it even if in use" : "");
	r = phase_start(rv, PHASE_REVERT);
	if (r < 0) {
		rv->result = r;
		rv->pr.message[0] = '\0';
		(void)revert_ended(rv);
	}
}

static int on_phase_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Revert *rv = userdata;
	eventfd_t v;

	(void)s, (void)revents;
	(void)eventfd_read(fd, &v);
	pthread_join(rv->thread, NULL);
	rv->running = false;
	if (rv->phase == PHASE_PLAN)
		plan_ended(rv);
	else
		(void)revert_ended(rv);
	return 0;
}

static int revert_new(Manager *m, const CatalogSnapshot *s, const provider_ops *ops, bool force, Revert **ret)
{
	Revert *rv = calloc(1, sizeof(*rv));
	int r;

	if (!rv)
		return -ENOMEM;
	rv->manager = m;
	rv->ops = ops;
	rv->done_fd = -1;
	LIST_PREPEND(reverts, m->reverts, rv);
	rv->rec.snapshot_id = s->prop.snapshot_id;
	rv->rec.provider_id = s->prop.provider_id;
	rv->rec.force_unmount = force;
	rv->rec.snapshot_created_us = s->prop.creation_timestamp;
	rv->rec.volume = strdup(s->prop.original_volume_name);
	rv->rec.provider_name = strdup(ops->name);
	rv->rec.snapshot_path = strdup(s->prop.snapshot_device_object);
	rv->rec.provider_data = strdup_or_null(s->provider_data);
	if (!rv->rec.volume || !rv->rec.provider_name || !rv->rec.snapshot_path ||
	    (s->provider_data && !rv->rec.provider_data)) {
		revert_free(rv);
		return -ENOMEM;
	}
	revert_point_pr(rv);
	rv->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = rv->done_fd < 0 ? -errno : sd_event_add_io(m->event, &rv->source, rv->done_fd, EPOLLIN, on_phase_done, rv);
	if (r < 0) {
		revert_free(rv);
		return r;
	}
	*ret = rv;
	return 0;
}

int revert_check_volume(Manager *m, const char *volume, sd_bus_error *error)
{
	Revert *rv = find_volume(m, volume);

	if (!rv)
		return 0;
	if (rv->unfinished)
		return bus_error_set_hr(error, VSS_E_REVERT_IN_PROGRESS, "%s", rv->message);
	return bus_error_set_hr(error, VSS_E_REVERT_IN_PROGRESS, "%s is being reverted to snapshot %s", volume,
				ID_TO_STRING(&rv->rec.snapshot_id));
}

bool revert_holds_volume(Manager *m, const char *volume)
{
	return find_volume(m, volume) != NULL;
}

bool revert_running(Manager *m)
{
	for (Revert *rv = m->reverts; rv; rv = rv->reverts_next)
		if (rv->running)
			return true;
	return false;
}

int method_revert_to_snapshot(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	Manager *m = b->manager;
	_cleanup_free_ CatalogSnapshot *list = NULL;
	CatalogSnapshot *s;
	const provider_ops *ops = NULL;
	const char *id_str;
	size_t n = 0;
	Revert *rv = NULL;
	vss_id id;
	int force, r;

	r = sd_bus_message_read(msg, "sb", &id_str, &force);
	if (r < 0)
		return r;
	if (b->state == BS_NEW)
		return bus_error_set_hr(error, VSS_E_BAD_STATE, "RevertToSnapshot: InitializeForBackup comes first");
	r = manager_check_running(m, error);
	if (r < 0)
		return r;
	/* It destroys what the volume holds now: not for backup operators. */
	if (b->conn->cred.uid != 0)
		return bus_error_set_hr(error, E_ACCESSDENIED,
					"RevertToSnapshot replaces a volume's live data: only root may revert");
	if (VSS_FAILED(vss_id_parse(id_str, &id)))
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an id", id_str);
	r = catalog_list_snapshots(m->catalog, &(CatalogFilter){ .snapshot_id = &id }, &list, &n);
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-r));
	if (n == 0)
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "no finished snapshot has id %s", id_str);
	s = &list[0];
	r = 0;
	if (context_auto_release(s->context) || !(s->context & VSS_VOLSNAP_ATTR_PERSISTENT))
		r = bus_error_set_hr(error, VSS_E_UNSUPPORTED_CONTEXT,
				     "snapshot %s is not persistent (its context is auto-release): only a persistent "
				     "snapshot can be reverted to",
				     id_str);
	else if (!(ops = provider_find_by_id(&s->prop.provider_id)))
		r = bus_error_set_hr(error, VSS_E_PROVIDER_NOT_REGISTERED, "snapshot %s was made by provider %s, which is "
				     "not registered", id_str, s->provider_name);
	else if (!ops->revert)
		r = bus_error_set_hr(error, VSS_E_VOLUME_NOT_SUPPORTED, "the %s provider cannot revert a volume",
				     ops->name);
	else if ((rv = find_volume(m, s->prop.original_volume_name)) &&
		 !(rv->unfinished && vss_id_equal(&rv->rec.snapshot_id, &id) && !rv->running))
		r = revert_check_volume(m, s->prop.original_volume_name, error);
	else if (manager_slot_busy(m))
		r = bus_error_set_hr(error, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
				     "a snapshot set is being created; revert once it is done");
	else if (s->prop.exposed_name)
		r = bus_error_set_hr(error, VSS_E_VOLUME_IN_USE,
				     "snapshot %s is exposed at %s; unexpose it first", id_str, s->prop.exposed_name);
	if (r < 0) {
		catalog_snapshot_clear(s);
		return r;
	}
	if (rv) {
		/* The unfinished revert of this snapshot, done again from its
		 * recorded plan. */
		rv->unfinished = false;
		rv->rec.force_unmount = rv->pr.force_unmount = force || rv->rec.force_unmount;
		r = phase_start(rv, PHASE_REVERT);
		if (r < 0) {
			rv->unfinished = true;
			catalog_snapshot_clear(s);
			return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot start the revert: %s", strerror(-r));
		}
		log_notice("finishing the revert of %s to snapshot %s", rv->rec.volume, id_str);
	} else {
		r = revert_new(m, s, ops, force, &rv);
		if (r >= 0)
			r = phase_start(rv, PHASE_PLAN);
		if (r < 0) {
			if (rv)
				revert_free(rv);
			catalog_snapshot_clear(s);
			return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot start the revert: %s", strerror(-r));
		}
	}
	catalog_snapshot_clear(s);
	rv->owner = b;
	rv->call = sd_bus_message_ref(msg);
	/* Answered when it ends. */
	return 1;
}

int method_query_revert_status(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	Manager *m = b->manager;
	_cleanup_free_ char *canonical = NULL;
	const char *volume;
	AsyncOp *a, **grown;
	Revert *rv;
	int r;

	r = sd_bus_message_read(msg, "s", &volume);
	if (r < 0)
		return r;
	if (b->state == BS_NEW)
		return bus_error_set_hr(error, VSS_E_BAD_STATE, "QueryRevertStatus: InitializeForBackup comes first");
	if (volume[0] != '/')
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an absolute path", volume);
	rv = find_volume(m, volume);
	/* The volume is not mounted while it is reverted: its name is what it
	 * was, canonical or not. */
	if (!rv && (canonical = realpath(volume, NULL)))
		rv = find_volume(m, canonical);
	if (!rv)
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "no revert of %s is running or unfinished", volume);
	r = connection_check_objects(b->conn, error);
	if (r < 0)
		return r;
	grown = realloc(rv->asyncs, sizeof(*grown) * (rv->n_asyncs + 1));
	if (!grown)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	rv->asyncs = grown;
	r = backup_reply_with_async(msg, b, rv->unfinished ? rv->hr : VSS_S_ASYNC_PENDING, &a, error);
	if (r < 0)
		return r;
	if (rv->unfinished)
		async_op_set_message(a, rv->message);
	else
		rv->asyncs[rv->n_asyncs++] = a;
	return r;
}

void revert_abandon(BackupObject *b)
{
	for (Revert *rv = b->manager->reverts; rv; rv = rv->reverts_next)
		if (rv->owner == b) {
			/* It goes on: a revert half done helps nobody. */
			rv->owner = NULL;
			rv->call = sd_bus_message_unref(rv->call);
			log_info("%s: gone while %s is being reverted; the revert goes on", b->path, rv->rec.volume);
		}
}

void revert_async_gone(Manager *m, AsyncOp *a)
{
	for (Revert *rv = m->reverts; rv; rv = rv->reverts_next)
		for (size_t i = 0; i < rv->n_asyncs; i++)
			if (rv->asyncs[i] == a) {
				rv->asyncs[i] = rv->asyncs[--rv->n_asyncs];
				return;
			}
}

/* Resume one recorded revert, here and now. */
static void resume_one(Manager *m, CatalogRevert *rec)
{
	const provider_ops *ops = provider_find_by_id(&rec->provider_id);
	Revert *rv;
	int r;

	rv = calloc(1, sizeof(*rv));
	if (!rv) {
		log_error("out of memory: the revert of %s is left unfinished", rec->volume);
		return;
	}
	rv->manager = m;
	rv->done_fd = -1;
	rv->rec = *rec;
	*rec = (CatalogRevert){ 0 };
	rv->recorded = true;
	rv->ops = ops;
	LIST_PREPEND(reverts, m->reverts, rv);
	revert_point_pr(rv);
	if (!ops || !ops->revert) {
		revert_left_unfinished(rv, VSS_E_REVERT_IN_PROGRESS, "its provider is not registered, or cannot revert");
		return;
	}
	if (strlen(rv->rec.plan) >= sizeof(rv->pr.plan)) {
		revert_left_unfinished(rv, VSS_E_REVERT_IN_PROGRESS, "its recorded plan is too long");
		return;
	}
	strcpy(rv->pr.plan, rv->rec.plan);
	r = sd_event_add_io(m->event, &rv->source, rv->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), EPOLLIN,
			    on_phase_done, rv);
	if (r < 0 || rv->done_fd < 0) {
		revert_left_unfinished(rv, VSS_E_REVERT_IN_PROGRESS, "vssd cannot wait for it");
		return;
	}
	log_warning("the revert of %s to snapshot %s was cut short when vssd stopped; finishing it", rv->rec.volume,
		    ID_TO_STRING(&rv->rec.snapshot_id));
	/* Before anything else touches the volume: the loop does not run yet. */
	rv->phase = PHASE_REVERT;
	rv->result = ops->revert(&rv->pr);
	rv->pr.message[sizeof(rv->pr.message) - 1] = '\0';
	/* In use again before it was unmounted: nothing was done, but the
	 * revert was asked for and nobody heard it refused; it waits for
	 * whoever holds the volume to let go. */
	if (rv->result == -EBUSY) {
		revert_left_unfinished(rv, VSS_E_VOLUME_IN_USE, rv->pr.message[0] ? rv->pr.message : "in use");
		return;
	}
	(void)revert_ended(rv);
}

int revert_resume_all(Manager *m)
{
	CatalogRevert *recs = NULL;
	size_t n = 0;
	int r;

	r = catalog_list_reverts(m->catalog, &recs, &n);
	if (r < 0)
		return log_error_errno(r, "cannot read the reverts in the catalog: %m");
	for (size_t i = 0; i < n; i++)
		resume_one(m, &recs[i]);
	catalog_reverts_free(recs, n);
	return 0;
}

void revert_stop(Manager *m)
{
	for (Revert *rv = m->reverts, *next; rv; rv = next) {
		next = rv->reverts_next;
		if (rv->running) {
			log_info("waiting for the revert of %s to end", rv->rec.volume);
			pthread_join(rv->thread, NULL);
			rv->running = false;
			/* Ended well, it is gone; otherwise it is recorded. */
			if (rv->phase == PHASE_REVERT && revert_ended(rv))
				continue;
		}
		revert_free(rv);
	}
}
