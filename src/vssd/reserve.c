/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The host reserve (HostReserve=): free space kept on every filesystem that
 * holds snapshots, so that a snapshot never starves its origin.
 *
 * A clone or a btrfs snapshot costs next to nothing when it is made, but from
 * then on every block overwritten in the live volume (or the snapshot) needs
 * a new block of the filesystem holding both: at worst the whole volume again.
 * When that filesystem fills, the live volume's writes fail (an ext4 in an
 * image aborts its journal). So, as VSS deletes shadow copies when their
 * storage runs out: a set is refused when a filesystem that would hold its
 * snapshots is already at its reserve, and when free space falls under the
 * reserve later, the oldest snapshots on that filesystem are deleted until it
 * is above again or none is left (docs/PROVIDERS.md, "The host reserve").
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "basic/id.h"
#include "basic/log.h"
#include "providers/mounts.h"
#include "vssd/creation/freeze.h"
#include "vssd/creation/creation.h"
#include "vssd/manager.h"

/* What a snapshot takes at once, beyond the reserve: a clone copies its
 * image's extent map (measured on XFS: about 40 bytes an extent, 0.8 MiB for
 * 20,000 extents); a btrfs snapshot a few tree blocks. */
#define SNAPSHOT_MARGIN (1ULL << 20)
/* btrfs gives a deleted snapshot's space back only after its cleaner ran and
 * a transaction committed (measured: ~0.1 s once a commit is started, up to
 * the 30 s commit interval otherwise; over 2 s on a loaded machine). Until
 * then free space says nothing of the deletion, so the next one waits this
 * long. */
#define BTRFS_SETTLE_USEC (5 * USEC_PER_SEC)

typedef struct HostSpace {
	dev_t dev;
	uint64_t avail;         /* bytes an unprivileged writer could still have */
	uint64_t reserve;
	bool btrfs;
} HostSpace;

/* A filesystem that holds snapshots, as the watcher remembers it. */
typedef struct ReserveHost {
	dev_t dev;
	usec_t deleted_usec;    /* the last deletion on it (btrfs settles) */
	bool starved;           /* under its reserve with nothing left to delete: warned */
} ReserveHost;

struct Reserve {
	sd_event_source *timer;
	ReserveHost *hosts;
	size_t n_hosts;
	bool passed_over;       /* a host under its reserve was left alone: the
	                         * set being cut held it */
};

static char *format_mib(uint64_t bytes, char buf[32])
{
	snprintf(buf, 32, "%.1f MiB", (double)bytes / (1 << 20));
	return buf;
}

/* The free space and the reserve of the filesystem holding store (a
 * snapshot's directory). */
static int host_measure(const Config *c, const char *store, HostSpace *ret)
{
	_cleanup_free_ char *mount_point = NULL;
	struct statvfs sv;
	struct statfs sf;
	struct stat st;
	uint64_t size;

	if (stat(store, &st) < 0 || statvfs(store, &sv) < 0 || statfs(store, &sf) < 0)
		return -errno;
	/* Only an override needs the mount point: the mount table is not read
	 * every second otherwise. */
	if (c->n_host_reserves > 0) {
		MountEntry e = { 0 };

		if (mount_lookup(store, &e) >= 0)
			mount_point = TAKE_PTR(e.target);
		mount_entry_clear(&e);
	}
	size = (uint64_t)sv.f_blocks * sv.f_frsize;
	*ret = (HostSpace){
		.dev = st.st_dev,
		.avail = (uint64_t)sv.f_bavail * sv.f_frsize,
		.reserve = config_host_reserve(c, mount_point, size),
		.btrfs = (unsigned long)sf.f_type == BTRFS_SUPER_MAGIC,
	};
	return 0;
}

/* The mount point of the filesystem holding path, for messages. */
static char *host_name_of(const char *path)
{
	MountEntry e = { 0 };
	char *r;

	if (mount_lookup(path, &e) < 0)
		return strdup(path);
	r = TAKE_PTR(e.target);
	mount_entry_clear(&e);
	return r;
}

vss_hr reserve_admit(const ProviderMember *members, size_t n, void *userdata, char *msg, size_t size)
{
	const Config *c = userdata;
	HostSpace hosts[n ?: 1];
	size_t counts[n ?: 1], firsts[n ?: 1], k = 0;

	/* The members' hosts, each with the snapshots it is to hold. */
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *store = NULL;
		HostSpace h = { 0 };
		size_t j;
		int r;

		/* A snapshot kept elsewhere (a storage array's) takes nothing
		 * here. */
		if (!snapshot_in_store(members[i].snapshot_path))
			continue;
		store = path_parent(members[i].snapshot_path);
		r = store ? host_measure(c, store, &h) : -ENOMEM;
		if (r < 0) {
			snprintf(msg, size, "cannot measure the free space where %s goes: %s", members[i].snapshot_path,
				 strerror(-r));
			return r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED;
		}
		for (j = 0; j < k && hosts[j].dev != h.dev; j++)
			;
		if (j == k) {
			hosts[k] = h;
			counts[k] = 0;
			firsts[k++] = i;
		}
		counts[j]++;
	}
	for (size_t j = 0; j < k; j++) {
		_cleanup_free_ char *store = NULL, *name = NULL;
		char a[32], b[32];

		if (hosts[j].avail >= hosts[j].reserve + counts[j] * SNAPSHOT_MARGIN)
			continue;
		store = path_parent(members[firsts[j]].snapshot_path);
		name = store ? host_name_of(store) : NULL;
		snprintf(msg, size,
			 "%s has %s free; %zu snapshot(s) there need its reserve of %s (HostReserve=) and 1 MiB each, "
			 "so that its live volumes keep room: delete old snapshots or free space there",
			 name ?: members[firsts[j]].snapshot_path, format_mib(hosts[j].avail, a), counts[j],
			 format_mib(hosts[j].reserve, b));
		return VSS_E_INSUFFICIENT_STORAGE;
	}
	return S_OK;
}

static ReserveHost *reserve_host(Reserve *rs, dev_t dev)
{
	ReserveHost *h;

	for (size_t i = 0; i < rs->n_hosts; i++)
		if (rs->hosts[i].dev == dev)
			return &rs->hosts[i];
	h = array_grow((void **)&rs->hosts, &rs->n_hosts, sizeof(*h));
	if (h)
		h->dev = dev;
	return h;
}

/* Whether the set being cut holds (or may soon hold) writes to dev, or to a
 * filesystem dev lies on: nothing may be deleted there, an unlink would hang
 * on the frozen filesystem. Asked of the fds the set holds, not of names
 * (renamed or unmounted since, they would say "not held"). */
static bool held_by_creation(Manager *m, dev_t dev)
{
	Job *j = m->creation ? m->creation->job : NULL;

	for (size_t i = 0; j && i < j->n_members; i++) {
		struct stat st;

		if (j->members[i].hold_fd >= 0 && fstat(j->members[i].hold_fd, &st) == 0 &&
		    device_rests_on(dev, st.st_dev))
			return true;
	}
	return false;
}

/* Start a btrfs commit, without waiting for it, so that the space of a
 * deleted snapshot comes back soon. */
static void btrfs_start_commit(const char *store)
{
	int fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	(void)ioctl(fd, BTRFS_IOC_START_SYNC, NULL);
	close(fd);
}

/* Whether a snapshot other than snaps[i] lives on dev: another of its
 * volume's, or another volume's there. */
static bool others_on(Manager *m, const CatalogSnapshot *snaps, size_t n, size_t i, dev_t dev)
{
	uint64_t count;

	if (catalog_count_volume_snapshots(m->catalog, snaps[i].prop.original_volume_name, &count) < 0 || count > 0)
		return true;
	for (size_t o = 0; o < n; o++) {
		_cleanup_free_ char *store = o == i || !snapshot_in_store(snaps[o].prop.snapshot_device_object)
						     ? NULL
						     : path_parent(snaps[o].prop.snapshot_device_object);
		dev_t d;

		if (store && path_device(store, &d) == 0 && d == dev)
			return true;
	}
	return false;
}

/* Delete the oldest snapshot on a filesystem under its reserve. Returns 1
 * when one went (measure again), 0 when none needs to, < 0 on failure. */
static int reserve_step(Manager *m)
{
	_cleanup_(strv_freep) char **seen = NULL;
	CatalogSnapshot *snaps = NULL;
	size_t n = 0;
	int r;

	/* Each volume's oldest, not the whole catalog: this runs every
	 * HostReserveCheckMSec and after every set, and a listing of 100,000
	 * snapshots held vssd's event loop for a good part of a second. */
	r = catalog_list_oldest(m->catalog, &snaps, &n);
	if (r < 0)
		return log_error_errno(r, "cannot read the catalog to watch the host reserve: %m");
	/* Oldest first: the first snapshot met in each store decides for all
	 * of that store's, so each filesystem is measured once. */
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *store = path_parent(snaps[i].prop.snapshot_device_object), *host = NULL;
		bool known = false;
		HostSpace h = { 0 };
		ReserveHost *rh;
		int32_t gone;
		vss_id failed;
		char msg[512], a[32], b[32];

		if (!snapshot_in_store(snaps[i].prop.snapshot_device_object))
			continue;
		if (!store) {
			r = -ENOMEM;
			break;
		}
		for (size_t k = 0; seen && seen[k] && !known; k++)
			known = streq(seen[k], store);
		if (known)
			continue;
		r = strv_push_dup(&seen, store);
		if (r < 0)
			break;
		if (host_measure(&m->config, store, &h) < 0)
			continue; /* its store is gone: reconcile's business */
		rh = reserve_host(m->reserve, h.dev);
		if (!rh) {
			r = -ENOMEM;
			break;
		}
		if (h.avail >= h.reserve) {
			rh->starved = false;
			continue;
		}
		if (held_by_creation(m, h.dev)) {
			m->reserve->passed_over = true;
			continue;
		}
		if (h.btrfs && rh->deleted_usec + BTRFS_SETTLE_USEC > now_usec(CLOCK_MONOTONIC)) {
			btrfs_start_commit(store);
			continue;
		}
		host = host_name_of(store);
		log_notice("%s: %s free, under its reserve of %s (HostReserve=): deleting the oldest snapshot there, "
			   "%s of %s (set %s), so that its live volumes keep room",
			   host ?: store, format_mib(h.avail, a), format_mib(h.reserve, b),
			   ID_TO_STRING(&snaps[i].prop.snapshot_id), snaps[i].prop.original_volume_name,
			   ID_TO_STRING(&snaps[i].prop.snapshot_set_id));
		if (VSS_FAILED(manager_delete_snapshots(m, &snaps[i], 1, &gone, &failed, msg, sizeof(msg)))) {
			log_error("%s: cannot delete snapshot %s to keep the reserve: %s", host ?: store,
				  ID_TO_STRING(&snaps[i].prop.snapshot_id), msg);
			r = -EIO;
			break;
		}
		rh->deleted_usec = now_usec(CLOCK_MONOTONIC);
		if (h.btrfs)
			btrfs_start_commit(store);
		else if (!rh->starved && !others_on(m, snaps, n, i, h.dev) && host_measure(&m->config, store, &h) == 0 &&
			 h.avail < h.reserve) {
			log_warning("%s: %s free, still under its reserve of %s, and no snapshot is left there to delete",
				    host ?: store, format_mib(h.avail, a), format_mib(h.reserve, b));
			rh->starved = true;
		}
		r = 1;
		break;
	}
	catalog_snapshots_free(snaps, n);
	return r;
}

void reserve_enforce(Manager *m)
{
	/* Each step deletes one snapshot and measures again: XFS gives the
	 * space back at once (measured: within 5 ms of the unlink), and a
	 * snapshot still sharing its blocks with newer ones frees little, so
	 * several may have to go. Bounded by the snapshots there are. */
	while (m->reserve && reserve_step(m) > 0)
		;
}

void reserve_enforce_after_set(Manager *m, char *const *snapshot_paths, size_t n)
{
	bool under = false;

	if (!m->reserve)
		return;
	/* Each member's host, not the oldest snapshot of every volume: that
	 * read of the catalog took some 5 ms a set with 100,000 snapshots, and
	 * only these hosts lost space at once (the others are the timer's). */
	for (size_t i = 0; i < n && !under; i++) {
		_cleanup_free_ char *store = NULL;
		HostSpace h = { 0 };

		if (!snapshot_in_store(snapshot_paths[i]))
			continue;
		store = path_parent(snapshot_paths[i]);
		under = !store || host_measure(&m->config, store, &h) < 0 || h.avail < h.reserve;
	}
	if (under || m->reserve->passed_over) {
		m->reserve->passed_over = false;
		reserve_enforce(m);
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;

	reserve_enforce(m);
	(void)sd_event_source_set_time(s, usec + m->config.host_reserve_interval);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int reserve_watch_start(Manager *m)
{
	usec_t now;
	int r;

	m->reserve = calloc(1, sizeof(*m->reserve));
	if (!m->reserve)
		return -ENOMEM;
	r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
	if (r >= 0)
		r = sd_event_add_time(m->event, &m->reserve->timer, CLOCK_MONOTONIC, now + m->config.host_reserve_interval,
				      0, on_timer, m);
	if (r < 0)
		return log_error_errno(r, "cannot start watching the host reserve: %m");
	return 0;
}

Reserve *reserve_free(Reserve *rs)
{
	if (!rs)
		return NULL;
	sd_event_source_disable_unref(rs->timer);
	free(rs->hosts);
	free(rs);
	return NULL;
}
