/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Previous Versions: for each volume named by PreviousVersions= in
 * vssd.conf, every snapshot of a persistent, client-accessible set is
 * mounted read-only at
 *
 *   <runtime dir>/previous-versions<volume>/@GMT-YYYY.MM.DD-HH.MM.SS
 *
 * named by its creation time in UTC: the layout Samba's vfs_shadow_copy2
 * reads (docs/ADMIN.md has the smb.conf lines), so that Windows users see
 * one previous version per set. The tree follows the catalog: a snapshot is
 * mounted once its set is made and unmounted before it is deleted, and its
 * directory goes with its mount, so no @GMT directory is stale or empty.
 * Two sets made in one second get the next free second.
 *
 * These mounts are the provider's own, apart from any exposure of the same
 * snapshot. The tree lives in the runtime directory: at start vssd detaches
 * what an earlier vssd left there and mounts the catalog's snapshots again.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "vssd/manager.h"

/* "@GMT-2026.12.01-15.04.05" */
#define GMT_NAME_MAX 32

struct Published {
	vss_id id;
	char *volume;
	char name[GMT_NAME_MAX];
	int64_t second;
};

static bool wanted(const CatalogSnapshot *s)
{
	int32_t a = s->prop.snapshot_attributes;

	return s->set_state == SET_CREATED && (a & VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE) &&
	       (a & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE);
}

bool previous_versions_of(const Manager *m, const char *volume)
{
	for (size_t i = 0; i < m->config.n_previous_versions; i++)
		if (streq(m->config.previous_versions[i], volume))
			return true;
	return false;
}

/* The directory of a volume's versions, made if missing (root's, 0755:
 * smbd reads it for its users). */
static int volume_dir(Manager *m, const char *volume, bool make)
{
	_cleanup_free_ char *rel = NULL;
	int fd;

	if (asprintf(&rel, PV_DIR "%s", volume) < 0)
		return -ENOMEM;
	if (make) {
		int dfd = openat(m->runtime_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		char *save = NULL;

		if (dfd < 0)
			return -errno;
		for (char *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
			int next;

			if (mkdirat(dfd, c, 0755) < 0 && errno != EEXIST) {
				safe_close(dfd);
				return -errno;
			}
			next = openat(dfd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			safe_close(dfd);
			if (next < 0)
				return -errno;
			dfd = next;
		}
		return dfd;
	}
	fd = openat(m->runtime_dir_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void format_name(int64_t second, char buf[GMT_NAME_MAX])
{
	time_t t = (time_t)second;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, GMT_NAME_MAX, "@GMT-%Y.%m.%d-%H.%M.%S", &tm);
}

static bool second_taken(const Manager *m, const char *volume, int64_t second)
{
	for (size_t i = 0; m->published && i < m->n_published; i++)
		if (m->published[i].second == second && streq(m->published[i].volume, volume))
			return true;
	return false;
}

/* A new last entry, zeroed; NULL when out of memory. (Not array_grow():
 * the analyzer cannot see across it that the array is there once n is not
 * 0.) */
static Published *published_add(Manager *m)
{
	Published *a = reallocarray(m->published, m->n_published + 1, sizeof(*a));

	if (!a)
		return NULL;
	m->published = a;
	a[m->n_published] = (Published){ 0 };
	return &a[m->n_published++];
}

static Published *find(Manager *m, const vss_id *id)
{
	for (size_t i = 0; m->published && i < m->n_published; i++)
		if (vss_id_equal(&m->published[i].id, id))
			return &m->published[i];
	return NULL;
}

/* Detach the mount on dir/name and remove the directory. */
static int unmount_at(int dir_fd, const char *name)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char proc[64];
	bool root;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fd_mount_id(fd, NULL, &root) < 0)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (root && umount2(proc, MNT_DETACH) < 0)
		return -errno;
	return unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

static void publish(Manager *m, const CatalogSnapshot *s)
{
	const provider_ops *ops = provider_find_by_id(&s->prop.provider_id);
	_cleanup_close_ int dir = -1, fd = -1;
	int64_t second = s->prop.creation_timestamp / (int64_t)USEC_PER_SEC;
	Published *p;
	char name[GMT_NAME_MAX];
	int r;

	if (!ops || !ops->expose)
		return;
	while (second_taken(m, s->prop.original_volume_name, second))
		second++;
	format_name(second, name);
	dir = volume_dir(m, s->prop.original_volume_name, true);
	if (dir < 0) {
		log_error_errno(dir, "previous versions of %s: cannot make their directory: %m",
				s->prop.original_volume_name);
		return;
	}
	if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST) {
		log_error_errno(errno, "previous versions of %s: cannot make %s: %m", s->prop.original_volume_name, name);
		return;
	}
	fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	r = fd < 0 ? -errno : ops->expose(s->prop.snapshot_device_object, s->provider_data, fd);
	if (r >= 0) {
		p = published_add(m);
		r = p ? 0 : -ENOMEM;
	}
	if (r >= 0 && !(p->volume = strdup(s->prop.original_volume_name))) {
		m->n_published--;
		r = -ENOMEM;
	}
	if (r < 0) {
		log_error("previous versions of %s: cannot mount snapshot %s on %s: %s", s->prop.original_volume_name,
			  ID_TO_STRING(&s->prop.snapshot_id), name, provider_result_string(r, (char[128]){ 0 }, 128));
		(void)unmount_at(dir, name);
		return;
	}
	p->id = s->prop.snapshot_id;
	p->second = second;
	memcpy(p->name, name, sizeof(name));
	log_info("previous versions of %s: snapshot %s at %s", p->volume, ID_TO_STRING(&p->id), p->name);
}

static void unpublish(Manager *m, Published *p)
{
	_cleanup_close_ int dir = volume_dir(m, p->volume, false);
	int r = dir < 0 ? dir : unmount_at(dir, p->name);

	if (r < 0)
		log_error_errno(r, "previous versions of %s: cannot unmount %s: %m", p->volume, p->name);
	free(p->volume);
	*p = m->published[--m->n_published];
}

void previous_versions_drop(Manager *m, const vss_id *snapshot_id)
{
	Published *p = find(m, snapshot_id);

	if (p)
		unpublish(m, p);
}

void previous_versions_sync(Manager *m)
{
	for (size_t v = 0; v < m->config.n_previous_versions; v++) {
		const char *volume = m->config.previous_versions[v];
		CatalogSnapshot *snaps = NULL;
		size_t n = 0;
		int r;

		r = catalog_list_snapshots(m->catalog, &(CatalogFilter){ .volume = volume }, &snaps, &n);
		if (r < 0) {
			log_error_errno(r, "previous versions of %s: cannot read the catalog: %m", volume);
			continue;
		}
		/* Oldest first, so that a set keeps its second and the one
		 * after it in the same second gets the next. */
		for (size_t i = 0; i < n; i++)
			if (wanted(&snaps[i]) && !find(m, &snaps[i].prop.snapshot_id))
				publish(m, &snaps[i]);
		/* A version whose snapshot is no longer listed goes. */
		for (size_t i = m->published ? m->n_published : 0; i-- > 0;) {
			Published *p = &m->published[i];
			bool listed = false;

			if (!streq(p->volume, volume))
				continue;
			for (size_t k = 0; k < n && !listed; k++)
				listed = vss_id_equal(&snaps[k].prop.snapshot_id, &p->id) && wanted(&snaps[k]);
			if (!listed)
				unpublish(m, p);
		}
		catalog_snapshots_free(snaps, n);
	}
}

/* Depth first: inner mounts and directories before those holding them. */
static void clear_tree(int dir_fd)
{
	DIR *d = fdopendir(dir_fd);
	struct dirent *de;

	if (!d) {
		safe_close(dir_fd);
		return;
	}
	while ((de = readdir(d))) {
		int sub;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (strncmp(de->d_name, "@GMT-", 5) == 0) {
			(void)unmount_at(dirfd(d), de->d_name);
			continue;
		}
		sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			clear_tree(sub);
		(void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void previous_versions_start(Manager *m)
{
	int fd = openat(m->runtime_dir_fd, PV_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	/* What an earlier vssd left: the catalog may have changed since. */
	if (fd >= 0)
		clear_tree(fd);
	previous_versions_sync(m);
}

void previous_versions_done(Manager *m)
{
	for (size_t i = 0; i < m->n_published; i++)
		free(m->published[i].volume);
	free(m->published);
	m->published = NULL;
	m->n_published = 0;
}
