/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A set's life on vssd's loop, from DoSnapshotSet to its recorded outcome
 * (creation.h). The job itself runs on its own thread (engine.c); here are
 * what comes before it (after room.c made room: the intent in the catalog)
 * and after it (the outcome in the catalog or the set deleted, the
 * requestor's operation completed, the host reserve checked).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/id.h"
#include "basic/log.h"
#include "protocol/bus.h"
#include "vssd/creation/creation.h"

static void creation_free(Creation *cr)
{
	sd_event_source_disable_unref(cr->source);
	sd_event_source_disable_unref(cr->pause_source);
	job_free(cr->job);
	transactions_free(cr->transactions);
	if (cr->pause_fd >= 0)
		close(cr->pause_fd);
	pthread_mutex_destroy(&cr->pause_lock);
	pthread_cond_destroy(&cr->pause_cond);
	catalog_snapshots_free(cr->snaps, cr->n_snaps);
	catalog_set_clear(&cr->set);
	free(cr);
}

static Creation *creation_new(void)
{
	Creation *cr = calloc(1, sizeof(*cr));

	if (!cr)
		return NULL;
	cr->pause_fd = -1;
	pthread_mutex_init(&cr->pause_lock, NULL);
	pthread_cond_init(&cr->pause_cond, NULL);
	cr->pause_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (cr->pause_fd < 0) {
		creation_free(cr);
		return NULL;
	}
	return cr;
}

static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;

	(void)s, (void)fd, (void)revents;
	creation_finish(m);
	/* The set vssd was waiting for is over. */
	if (m->stopping)
		return manager_exit(m);
	return 0;
}

/* The catalog rows of the set about to be cut: its intent. */
static int creation_record(Creation *cr, BackupObject *b)
{
	int32_t n = (int32_t)b->facts.n_volumes;

	cr->set = (CatalogSet){
		.id = b->set_id,
		.context = b->context,
		.state = SET_CREATING,
		.snapshots_count = n,
		.started_us = (int64_t)now_usec(CLOCK_REALTIME),
		.requestor_uid = (uint32_t)b->conn->cred.uid,
		.requestor_pid = (int32_t)b->conn->cred.pid,
		.schedule = strdup_or_null(b->schedule),
	};
	if (b->schedule && !cr->set.schedule)
		return -ENOMEM;
	cr->snaps = calloc((size_t)n, sizeof(CatalogSnapshot));
	if (!cr->snaps)
		return -ENOMEM;
	cr->n_snaps = (size_t)n;
	for (int32_t i = 0; i < n; i++) {
		const ProviderMember *pm = &b->members[i];
		CatalogSnapshot *s = &cr->snaps[i];

		s->prop.snapshot_id = pm->snapshot_id;
		s->prop.snapshot_set_id = b->set_id;
		s->prop.snapshots_count = n;
		s->prop.provider_id = pm->ops->id;
		s->prop.snapshot_attributes = b->context | pm->attributes;
		s->prop.status = VSS_SS_PREPARING;
		s->prop.snapshot_device_object = strdup(pm->snapshot_path);
		s->prop.original_volume_name = strdup(pm->volume);
		s->prop.originating_machine = strdup(host_name());
		s->prop.service_machine = strdup(host_name());
		s->provider_name = strdup(pm->ops->name);
		s->provider_data = strdup_or_null(pm->provider_data);
		s->context = b->context;
		if (!s->prop.snapshot_device_object || !s->prop.original_volume_name ||
		    !s->prop.originating_machine || !s->prop.service_machine || !s->provider_name)
			return -ENOMEM;
	}
	return 0;
}

int creation_start(BackupObject *b, Creation **ret, bool *ret_members_gone, sd_bus_error *error)
{
	Manager *m = b->manager;
	bool writers = context_has_writers(b->context);
	Creation *cr;
	int r;

	*ret_members_gone = false;
	cr = creation_new();
	if (!cr)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	r = creation_record(cr, b);
	if (r < 0) {
		creation_free(cr);
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	}
	r = catalog_begin_set(m->catalog, &cr->set, cr->snaps, cr->n_snaps);
	if (r < 0) {
		creation_free(cr);
		log_error_errno(r, "cannot record set %s in the catalog: %m", ID_TO_STRING(&b->set_id));
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot record the set in the catalog: %s",
					strerror(-r));
	}

	/* The set's volumes, for the writers once the job has the members. */
	strv_free(b->set_volumes);
	b->set_volumes = NULL;
	for (size_t i = 0; r >= 0 && i < b->facts.n_volumes; i++)
		r = strv_push_dup(&b->set_volumes, b->members[i].volume);
	if (r >= 0 && writers) {
		char **volumes = b->set_volumes;

		participants_select(b, volumes, strv_length(volumes));
	}
	if (r >= 0)
		r = job_new(&b->members, b->facts.n_volumes,
			    &(JobLimits){
				    .flush_timeout = m->config.flush_timeout,
				    .hold_timeout = m->config.hold_timeout,
				    .hold_settle = m->config.hold_settle,
				    .freeze_dir_fd = m->runtime_dir_fd,
				    .faults = m->faults,
				    /* Writer contexts stop for writers and
				     * transaction managers; the others never. */
				    .pause = writers ? creation_pause : NULL,
				    .pause_userdata = cr,
				    /* Without a writer (none was registered at
				     * GatherWriterMetadata), the rounds before the
				     * providers prepare and after the set is
				     * made talk to nobody; the freeze and thaw
				     * still hold the transaction managers. */
				    .no_pause = b->n_participants == 0
							? 1u << PHASE_PREPARE_SNAPSHOT | 1u << PHASE_POST_SNAPSHOT
							: 0,
				    .admit = reserve_admit,
				    .admit_userdata = &m->config,
			    },
			    &cr->job);
	if (r >= 0)
		r = sd_event_add_io(m->event, &cr->source, cr->job->done_fd, EPOLLIN, on_job_done, m);
	if (r >= 0)
		r = sd_event_add_io(m->event, &cr->pause_source, cr->pause_fd, EPOLLIN, creation_on_pause, cr);
	if (r >= 0)
		r = job_start(cr->job);
	if (r < 0) {
		catalog_delete_set(m->catalog, &b->set_id);
		creation_free(cr);
		/* The job took the members with it: this set cannot be retried. */
		*ret_members_gone = true;
		log_error_errno(r, "cannot start the engine: %m");
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot start the engine: %s", strerror(-r));
	}
	cr->owner = b;
	m->creation = cr;
	log_info("set %s: cutting %zu volume(s) for pid %d", ID_TO_STRING(&b->set_id), b->facts.n_volumes,
		 (int)b->conn->cred.pid);
	*ret = cr;
	return 0;
}

void creation_finish(Manager *m)
{
	Creation *cr = m->creation;
	Job *j = cr->job;
	BackupObject *owner = cr->owner;
	const char *reason = NULL;
	vss_hr result;
	int r;

	job_join(j);
	result = j->result;

	if (result == VSS_S_ASYNC_FINISHED) {
		cr->set.state = SET_CREATED;
		cr->set.created_us = j->created_us;
		cr->set.prepare_us = j->prepare_us;
		cr->set.flush_us = j->flush_us;
		cr->set.hold_window_us = j->hold_window_us;
		cr->set.total_us = j->total_us;
		/* Writers that all froze and thawed make the set consistent
		 * for their applications, whatever the members' instants. */
		cr->set.consistency = strdup(owner && participants_all_succeeded(owner)
						     ? "application-consistent"
						     : consistency_to_string(j->consistency));
		for (size_t i = 0; i < cr->n_snaps; i++) {
			CatalogSnapshot *cs = &cr->snaps[i];
			const ProviderMember *pm = &j->members[i];

			cs->prop.status = VSS_SS_CREATED;
			cs->prop.snapshot_attributes = cr->set.context | pm->attributes;
			/* A provider may learn where the snapshot is only when
			 * it is made (a storage array names its device). */
			if (!streq(cs->prop.snapshot_device_object, pm->snapshot_path)) {
				char *p = strdup(pm->snapshot_path);

				if (p) {
					free(cs->prop.snapshot_device_object);
					cs->prop.snapshot_device_object = p;
				}
			}
			if (!streq(cs->provider_data ?: "", pm->provider_data ?: "")) {
				char *d = strdup_or_null(pm->provider_data);

				if (d || !pm->provider_data) {
					free(cs->provider_data);
					cs->provider_data = d;
				}
			}
		}
		r = catalog_finish_set(m->catalog, &cr->set, cr->snaps, cr->n_snaps);
		if (r < 0) {
			/* A set the catalog cannot vouch for must not stay. */
			log_error_errno(r, "set %s: cannot record its completion: %m; deleting it",
					ID_TO_STRING(&cr->set.id));
			manager_delete_set(m, &cr->set.id, "its completion could not be recorded");
			result = VSS_E_UNEXPECTED;
			reason = "the set was made but its completion could not be recorded; it was deleted";
		} else if (cr->abandoned) {
			manager_delete_set(m, &cr->set.id, cr->stopping ? "vssd stopped before it was done"
								       : "its requestor gave it up before it was done");
		} else {
			log_info("set %s: created, %zu snapshot(s), hold window %llu us, %s",
				 ID_TO_STRING(&cr->set.id), cr->n_snaps, (unsigned long long)j->hold_window_us,
				 cr->set.consistency);
			for (size_t i = 0; i < cr->n_snaps; i++)
				if (previous_versions_of(m, cr->snaps[i].prop.original_volume_name)) {
					previous_versions_sync(m);
					break;
				}
		}
	} else {
		if (cr->stopping)
			log_info("set %s: given up, vssd is stopping; every member aborted", ID_TO_STRING(&cr->set.id));
		else if (result == VSS_S_ASYNC_CANCELLED)
			log_info("set %s: cancelled; every member aborted", ID_TO_STRING(&cr->set.id));
		else {
			log_error("set %s: %s (0x%08x): %s; every member aborted", ID_TO_STRING(&cr->set.id),
				  vss_hr_name(result), (unsigned)result, j->message);
			reason = j->message;
		}
		r = catalog_delete_set(m->catalog, &cr->set.id);
		if (r < 0)
			log_error_errno(r, "set %s: cannot remove it from the catalog: %m; "
					   "it will be cleaned up at the next start",
					ID_TO_STRING(&cr->set.id));
	}

	if (cr->stopping) {
		/* Made, but deleted: PostSnapshot was cut short, so the writers
		 * hear of the end of this set as of any failed one. */
		if (result == VSS_S_ASYNC_FINISHED && owner)
			writers_abort(owner);
		result = VSS_E_UNEXPECTED;
		reason = "vssd stopped before the set was done; it was deleted";
	}
	m->creation = NULL;
	if (m->slot_owner == owner)
		m->slot_owner = NULL;
	if (owner) {
		owner->set_created = result == VSS_S_ASYNC_FINISHED;
		if (owner->state == BS_CREATING)
			owner->state = result == VSS_S_ASYNC_FINISHED ? BS_CREATED : BS_FAILED;
	}
	if (cr->async) {
		async_op_set_message(cr->async, VSS_FAILED(result) ? reason : NULL);
		async_op_complete(cr->async, result);
	}
	/* The set's snapshots and its flush may have taken the hosts under
	 * their reserve; the watcher could not delete there while it held.
	 * (m->creation is gone: nothing is held now.) */
	{
		char *paths[cr->n_snaps ?: 1];

		for (size_t i = 0; i < cr->n_snaps; i++)
			paths[i] = cr->snaps[i].prop.snapshot_device_object;
		reserve_enforce_after_set(m, paths, cr->n_snaps);
	}
	creation_free(cr);
}

void creation_stop(Manager *m)
{
	Creation *cr = m->creation;

	if (!cr || cr->stopping)
		return;
	cr->stopping = true;
	cr->abandoned = true;
	if (!job_cancel(cr->job))
		log_info("set %s: past its point of no return; it is let end, then deleted", ID_TO_STRING(&cr->set.id));
	creation_end_phase(cr, VSS_E_UNEXPECTED);
}

void creation_abandon(BackupObject *b)
{
	Creation *cr = b->manager->creation;

	if (!cr || cr->owner != b)
		return;
	cr->abandoned = true;
	job_cancel(cr->job);
}

