/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Room in shadow storage, made before a set is cut (creation.h): each member
 * volume at its maximum loses its oldest snapshots, as in VSS. A provider's
 * measure can take long (a btrfs transaction commit, an lvm program's run),
 * so each one runs on a thread of its own while the loop serves every other
 * peer; the catalog is read, and snapshots deleted, on the loop between
 * measures. The creation slot stays held (m->room) until the last measure
 * has ended, even when the requestor gave the set up meanwhile.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "protocol/bus.h"
#include "vssd/creation/creation.h"

struct Room {
	Manager *manager;
	BackupObject *owner;    /* NULL once its DoSnapshotSet was answered otherwise */
	sd_bus_message *call;   /* that DoSnapshotSet, until answered */
	RoomDone done;
	/* The member volumes with a maximum, and the one being looked at. */
	char **volumes;
	int64_t *maximums;
	size_t n_volumes, k;
	/* The measure in flight: the thread's alone until it signals done_fd. */
	CatalogSnapshot *snaps;
	size_t n_snaps;
	int result;
	int64_t used, allocated;
	pthread_t thread;
	bool running;
	int done_fd;
	sd_event_source *source;
};

static Room *room_free(Room *r)
{
	if (!r)
		return NULL;
	if (r->running)
		pthread_join(r->thread, NULL);
	sd_event_source_disable_unref(r->source);
	safe_close(r->done_fd);
	sd_bus_message_unref(r->call);
	catalog_snapshots_free(r->snaps, r->n_snaps);
	strv_free(r->volumes);
	free(r->maximums);
	free(r);
	return NULL;
}

static void *measure_thread(void *userdata)
{
	Room *r = userdata;

	r->result = storage_measure(r->snaps, r->n_snaps, &r->used, &r->allocated);
	(void)eventfd_write(r->done_fd, 1);
	return NULL;
}

/* Whether the catalog still lists what was measured: a snapshot deleted or
 * made meanwhile (by another requestor, the host reserve) makes it stale. */
static bool same_snapshots(const CatalogSnapshot *a, size_t na, const CatalogSnapshot *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!vss_id_equal(&a[i].prop.snapshot_id, &b[i].prop.snapshot_id))
			return false;
	return true;
}

/* Measure the first volume from r->k on that has snapshots: 1 when a
 * measure was started, 0 when no volume is left. */
static int room_step(Room *r, sd_bus_error *error)
{
	Manager *m = r->manager;

	for (; r->k < r->n_volumes; r->k++) {
		int e;

		catalog_snapshots_free(r->snaps, r->n_snaps);
		r->snaps = NULL;
		r->n_snaps = 0;
		e = storage_volume_snapshots(m, r->volumes[r->k], &r->snaps, &r->n_snaps);
		if (e < 0)
			return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-e));
		if (r->n_snaps == 0)
			continue;
		e = -pthread_create(&r->thread, NULL, measure_thread, r);
		if (e < 0) {
			log_error_errno(e, "%s: cannot measure its shadow storage: %m", r->volumes[r->k]);
			return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot make room in the shadow storage of %s",
						r->volumes[r->k]);
		}
		r->running = true;
		return 1;
	}
	return 0;
}

/* The room is made (error NULL) or cannot be: the requestor's DoSnapshotSet
 * goes on or fails, and the slot is its object's alone again. */
static void room_finish(Room *r, const sd_bus_error *error)
{
	Manager *m = r->manager;
	BackupObject *b = r->owner;

	m->room = NULL;
	if (b) {
		b->facts.making_room = false;
		r->done(b, r->call, error);
		connection_touched(b->conn);
	} else
		log_info("the measure of shadow storage for a set given up has ended; the creation slot is free");
	room_free(r);
	/* vssd waited for this measure to stop. */
	if (m->stopping && !m->creation)
		(void)manager_exit(m);
}

static int on_measured(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	Room *r = userdata;
	Manager *m = r->manager;
	const char *volume = r->volumes[r->k];
	CatalogSnapshot *now = NULL;
	size_t n_now = 0;
	eventfd_t v;
	int e;

	(void)s, (void)revents;
	(void)eventfd_read(fd, &v);
	pthread_join(r->thread, NULL);
	r->running = false;

	/* Given up, or vssd stopping: nothing more is deleted for this set. */
	if (!r->owner || m->stopping) {
		room_finish(r, NULL);
		return 0;
	}
	e = storage_volume_snapshots(m, volume, &now, &n_now);
	if (e < 0) {
		bus_error_set_hr(&error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-e));
		room_finish(r, &error);
		return 0;
	}
	if (!same_snapshots(r->snaps, r->n_snaps, now, n_now)) {
		/* Measured again, from what is there now. */
		catalog_snapshots_free(now, n_now);
	} else {
		catalog_snapshots_free(now, n_now);
		e = r->result;
		if (e < 0)
			log_error_errno(e, "%s: cannot measure its shadow storage: %m", volume);
		else if (storage_over_maximum(volume, r->n_snaps, r->used, r->maximums[r->k], true))
			e = storage_delete_oldest(m, volume, r->snaps, r->used, r->maximums[r->k]);
		else
			r->k++;
		if (e < 0) {
			bus_error_set_hr(&error, VSS_E_UNEXPECTED, "cannot make room in the shadow storage of %s",
					 volume);
			room_finish(r, &error);
			return 0;
		}
	}
	e = room_step(r, &error);
	if (e <= 0)
		room_finish(r, e < 0 ? &error : NULL);
	return 0;
}

int room_make(BackupObject *b, sd_bus_message *call, RoomDone done, sd_bus_error *error)
{
	Manager *m = b->manager;
	Room *r;
	int e;

	r = calloc(1, sizeof(*r));
	if (!r)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	r->manager = m;
	r->done = done;
	r->done_fd = -1;
	r->maximums = calloc(b->facts.n_volumes ?: 1, sizeof(*r->maximums));
	if (!r->maximums) {
		room_free(r);
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	}
	/* Each member's own row: the whole storage list would read every
	 * snapshot's volume in the catalog. */
	for (size_t k = 0; k < b->facts.n_volumes; k++) {
		const char *volume = b->members[k].volume;
		int64_t maximum;

		e = catalog_storage_maximum(m->catalog, volume, &maximum);
		if (e < 0) {
			room_free(r);
			return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-e));
		}
		if (maximum < 0)
			continue;
		e = strv_push_dup(&r->volumes, volume);
		if (e < 0) {
			room_free(r);
			return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
		}
		r->maximums[r->n_volumes++] = maximum;
	}
	if (r->n_volumes == 0) {
		room_free(r);
		return 0;
	}
	r->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	e = r->done_fd < 0 ? -errno : sd_event_add_io(m->event, &r->source, r->done_fd, EPOLLIN, on_measured, r);
	if (e < 0) {
		room_free(r);
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot make room in shadow storage: %s",
					strerror(-e));
	}
	e = room_step(r, error);
	if (e <= 0) {
		room_free(r);
		return e;
	}
	r->owner = b;
	r->call = sd_bus_message_ref(call);
	b->facts.making_room = true;
	m->room = r;
	return 1;
}

void room_abandon(BackupObject *b, vss_hr hr, const char *why)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	Room *r = b->manager->room;
	int e;

	if (!r || r->owner != b)
		return;
	r->owner = NULL;
	b->facts.making_room = false;
	log_info("%s: set %s given up while room was made in shadow storage: %s", b->path,
		 ID_TO_STRING(&b->set_id), why);
	/* A cancel is an operation that has ended cancelled, as after the cut
	 * began; anything else fails the call itself. */
	if (VSS_SUCCEEDED(hr))
		e = backup_reply_with_async(r->call, b, hr, NULL, &error);
	else
		e = bus_error_set_hr(&error, hr, "%s", why);
	if (e < 0)
		(void)sd_bus_reply_method_error(r->call, &error);
	r->call = sd_bus_message_unref(r->call);
	connection_touched(b->conn);
}

void room_stop(Manager *m)
{
	m->room = room_free(m->room);
}
