/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Exposure (ExposeSnapshot / UnexposeSnapshot): a finished snapshot mounted
 * read-only on a directory, by its provider. The mount is the kernel's, so it
 * outlives vssd; the catalog records where it is (the kernel's name for the
 * directory mounted on, not the path as typed), and reconciliation forgets an
 * exposure whose mount is gone.
 *
 * The directory is a client's path, so it is walked once, one component at
 * a time from an fd, and the mount goes onto the fd the walk ends on: no
 * name is looked up twice, and a symbolic link swapped in meanwhile changes
 * nothing. Whose it is gets checked on that same fd.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "providers/fault.h"
#include "providers/mounts.h"
#include "vssd/manager.h"

/* Where exposures go when the requestor names no place. */
#define EXPOSED_DIR "exposed"

static bool dir_is_empty(int fd)
{
	struct dirent *de;
	bool empty = true;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;

	if (!d) {
		safe_close(dfd);
		return false;
	}
	while (empty && (de = readdir(d)))
		empty = streq(de->d_name, ".") || streq(de->d_name, "..");
	closedir(d);
	return empty;
}

/* The kernel's name of the default place: what the catalog records. */
static char *default_dir(Manager *m, const vss_id *id)
{
	_cleanup_free_ char *runtime = NULL;
	char *dir;

	if (fd_get_path(m->runtime_dir_fd, &runtime) < 0 ||
	    asprintf(&dir, "%s/" EXPOSED_DIR "/%s", runtime, ID_TO_STRING(id)) < 0)
		return NULL;
	return dir;
}

/* Directories a walk made, removed again when the exposure fails. */
typedef struct Made {
	int parent_fd;
	char *name;
} Made;

static void made_undo(Made *made, size_t n)
{
	while (n-- > 0) {
		(void)unlinkat(made[n].parent_fd, made[n].name, AT_REMOVEDIR);
		close(made[n].parent_fd);
		free(made[n].name);
	}
	free(made);
}

static void made_forget(Made *made, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		close(made[i].parent_fd);
		free(made[i].name);
	}
	free(made);
}

/*
 * Walk path from start_fd, component by component; a missing directory is
 * made (fd-relative, never through a link) when may_create says so: the
 * caller is root, or the directory it goes in is the caller's. What the
 * walk made belongs to the caller.
 */
static vss_hr walk(int start_fd, const char *path, uid_t uid, gid_t gid, bool may_create_anywhere, int *ret_fd,
                   Made **made, size_t *n_made, char *msg, size_t size)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int cur = -1;
	char *save = NULL;

	if (!copy)
		return E_OUTOFMEMORY;
	cur = fcntl(start_fd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return E_OUTOFMEMORY;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next;

		if (streq(c, "."))
			continue;
		next = openat(cur, c, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && !streq(c, "..")) {
			struct stat st;
			bool made_it;
			Made *e;

			if (fstat(cur, &st) < 0) {
				snprintf(msg, size, "%s: %s", path, strerror(errno));
				return VSS_E_UNEXPECTED;
			}
			if (!may_create_anywhere && st.st_uid != uid) {
				snprintf(msg, size, "%s does not exist, and vssd makes directories only in yours", path);
				return E_ACCESSDENIED;
			}
			made_it = mkdirat(cur, c, 0755) == 0;
			if (!made_it && errno != EEXIST) {
				snprintf(msg, size, "cannot create %s in %s: %s", c, path, strerror(errno));
				return VSS_E_UNEXPECTED;
			}
			next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (next < 0 || fstat(next, &st) < 0) {
				snprintf(msg, size, "cannot open %s in %s: %s", c, path, strerror(errno));
				safe_close(next);
				return VSS_E_UNEXPECTED;
			}
			/* Made by vssd, for the caller: only what is still the
			 * empty directory of root's it made (one that raced in
			 * under the name is judged as found). */
			if (made_it && uid != 0 && st.st_uid == 0 && dir_is_empty(next) &&
			    fchownat(next, "", uid, gid, AT_EMPTY_PATH) < 0) {
				snprintf(msg, size, "cannot give %s to its caller: %s", c, strerror(errno));
				close(next);
				return VSS_E_UNEXPECTED;
			}
			if (made_it) {
				e = array_grow((void **)made, n_made, sizeof(Made));
				if (!e || !(e->name = strdup(c))) {
					close(next);
					return E_OUTOFMEMORY;
				}
				e->parent_fd = fcntl(cur, F_DUPFD_CLOEXEC, 3);
			}
		}
		if (next < 0) {
			snprintf(msg, size, "%s: %s", path, strerror(errno));
			return errno == ENOENT ? VSS_E_OBJECT_NOT_FOUND : errno == ENOTDIR ? E_INVALIDARG : E_ACCESSDENIED;
		}
		close(cur);
		cur = next;
	}
	*ret_fd = TAKE_FD(cur);
	return S_OK;
}

/*
 * Mounting over a directory is a root's power, so a caller who is not root
 * may expose only where it could make files itself: the default place, or an
 * empty directory it owns (made for it below one it owns, if missing).
 */
static vss_hr open_target(Manager *m, const char *dir, const vss_id *id, const struct ucred *caller, int *ret_fd,
                          Made **made, size_t *n_made, char *msg, size_t size)
{
	_cleanup_close_ int fd = -1, root = -1;
	struct stat st;
	bool mount_root;
	vss_hr hr;

	if (dir) {
		if (dir[0] != '/') {
			snprintf(msg, size, "%s is not an absolute path", dir);
			return E_INVALIDARG;
		}
		root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			return E_OUTOFMEMORY;
		hr = walk(root, dir, caller->uid, caller->gid, caller->uid == 0, &fd, made, n_made, msg, size);
	} else {
		char rel[64];

		snprintf(rel, sizeof(rel), EXPOSED_DIR "/%s", ID_TO_STRING(id));
		hr = walk(m->runtime_dir_fd, rel, 0, 0, true, &fd, made, n_made, msg, size);
	}
	if (hr != S_OK)
		return hr;
	if (fstat(fd, &st) < 0 || fd_mount_id(fd, NULL, &mount_root) < 0) {
		snprintf(msg, size, "%s: %s", dir ?: "the default place", strerror(errno));
		return VSS_E_UNEXPECTED;
	}
	/* Reached through /proc/PID/root of someone's mount namespace: none
	 * of vssd's mounts, and no place vssd could record. */
	if (!mount_is_own(fd)) {
		snprintf(msg, size, "%s is not in vssd's mount namespace", dir ?: "the default place");
		return E_INVALIDARG;
	}
	if (mount_root || !dir_is_empty(fd)) {
		snprintf(msg, size, "%s is not an empty directory", dir ?: "the default place");
		return VSS_E_OBJECT_ALREADY_EXISTS;
	}
	if (dir && caller->uid != 0 && st.st_uid != caller->uid) {
		snprintf(msg, size, "%s is not yours: expose at the default place or in a directory you own", dir);
		return E_ACCESSDENIED;
	}
	*ret_fd = TAKE_FD(fd);
	return S_OK;
}

/* The root of a mount of s at path, or -ENOENT. */
static int exposure_at(const provider_ops *ops, const CatalogSnapshot *s, const char *path, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	bool mount_root;
	int r;

	/* Recorded as the kernel named it: a symbolic link on the way now is
	 * someone else's doing. */
	fd = open_no_symlinks(AT_FDCWD, path, O_PATH | O_DIRECTORY, 0);
	if (fd < 0)
		return fd == -ELOOP || fd == -ENOTDIR ? -ENOENT : fd;
	r = fd_mount_id(fd, NULL, &mount_root);
	if (r < 0)
		return r;
	if (!mount_root || ops->is_exposed_at(s->prop.snapshot_device_object, s->provider_data, fd) <= 0)
		return -ENOENT;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int exposure_find(Manager *m, const provider_ops *ops, const CatalogSnapshot *s, int *ret_fd)
{
	_cleanup_(strv_freep) char **targets = NULL;
	_cleanup_free_ char *runtime = NULL, *versions = NULL;
	int r;

	if (!ops->is_exposed_at)
		return -ENOENT;
	if (s->prop.exposed_name) {
		r = exposure_at(ops, s, s->prop.exposed_name, ret_fd);
		if (r != -ENOENT)
			return r;
	}
	/* Not where it was recorded (a directory above it renamed): look at
	 * every mount for this snapshot's. */
	r = mount_targets(&targets);
	if (r < 0)
		return r;
	/* The snapshot's previous version is a mount of it too, not this
	 * exposure. */
	if (fd_get_path(m->runtime_dir_fd, &runtime) < 0 || asprintf(&versions, "%s/" PV_DIR, runtime) < 0)
		return -ENOMEM;
	for (size_t i = 0; targets && targets[i]; i++)
		if (!path_is_below(targets[i], versions) && exposure_at(ops, s, targets[i], ret_fd) == 0)
			return 0;
	return -ENOENT;
}

/* Detach the mount whose root fd is (not whatever a name leads to). */
static int unmount_fd(int fd)
{
	char proc[64];
	int r = fault_point(POINT_UMOUNT);

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (r == 0 && umount2(proc, MNT_DETACH) < 0)
		r = -errno;
	return r;
}

vss_hr snapshot_expose(Manager *m, const CatalogSnapshot *s, const char *dir_or_null, const struct ucred *caller,
                       char **ret_dir, char *msg, size_t size)
{
	const char *dir = dir_or_null && *dir_or_null ? dir_or_null : NULL;
	const provider_ops *ops = provider_find_by_id(&s->prop.provider_id);
	_cleanup_free_ char *canonical = NULL;
	_cleanup_close_ int fd = -1, mounted = -1;
	Made *made = NULL;
	size_t n_made = 0;
	vss_hr hr;
	int r;

	if (s->prop.exposed_name) {
		snprintf(msg, size, "snapshot %s is exposed at %s already", ID_TO_STRING(&s->prop.snapshot_id),
			 s->prop.exposed_name);
		return VSS_E_OBJECT_ALREADY_EXISTS;
	}
	if (!ops) {
		snprintf(msg, size, "provider %s is not registered", s->provider_name);
		return VSS_E_PROVIDER_NOT_REGISTERED;
	}
	hr = open_target(m, dir, &s->prop.snapshot_id, caller, &fd, &made, &n_made, msg, size);
	if (hr != S_OK) {
		made_undo(made, n_made);
		return hr;
	}
	r = ops->expose(s->prop.snapshot_device_object, s->provider_data, fd);
	if (r < 0) {
		snprintf(msg, size, "%s provider cannot mount %s on %s: %s", ops->name, s->prop.snapshot_device_object,
			 dir ?: "the default place", provider_result_string(r, (char[128]){ 0 }, 128));
		log_error("%s", msg);
		made_undo(made, n_made);
		return provider_result_to_hr(r);
	}
	/* Named once mounted on, by the kernel: the directory actually
	 * mounted on, ".." and links resolved. Should it move later (a
	 * directory above renamed), exposure_find() finds the mount by what it
	 * is. */
	r = fd_get_path(fd, &canonical);
	if (r >= 0)
		r = catalog_set_exposure(m->catalog, &s->prop.snapshot_id, canonical,
					 s->prop.snapshot_attributes | VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY);
	if (r < 0) {
		/* Not recorded, not kept: the catalog must not lie. */
		if (exposure_find(m, ops, s, &mounted) == 0)
			(void)unmount_fd(mounted);
		made_undo(made, n_made);
		snprintf(msg, size, "cannot record the exposure: %s", strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	made_forget(made, n_made);
	log_info("snapshot %s of %s exposed at %s", ID_TO_STRING(&s->prop.snapshot_id), s->prop.original_volume_name,
		 canonical);
	*ret_dir = TAKE_PTR(canonical);
	return S_OK;
}

vss_hr snapshot_unexpose(Manager *m, const CatalogSnapshot *s, char *msg, size_t size)
{
	_cleanup_free_ char *def = default_dir(m, &s->prop.snapshot_id);
	const provider_ops *ops = provider_find_by_id(&s->prop.provider_id);
	const char *dir = s->prop.exposed_name;
	_cleanup_close_ int fd = -1;
	int r;

	if (!dir) {
		snprintf(msg, size, "snapshot %s is not exposed", ID_TO_STRING(&s->prop.snapshot_id));
		return VSS_E_OBJECT_NOT_FOUND;
	}
	if (!ops) {
		snprintf(msg, size, "provider %s is not registered", s->provider_name);
		return VSS_E_PROVIDER_NOT_REGISTERED;
	}
	/* Only the mount of this snapshot is undone, found by what it is
	 * rather than by a name that may lead elsewhere by now. */
	r = exposure_find(m, ops, s, &fd);
	if (r < 0 && r != -ENOENT) {
		snprintf(msg, size, "cannot open %s: %s", dir, strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	/* Detach rather than fail on a busy mount: the snapshot is gone from
	 * the tree at once, and whatever it needed goes with its last user. */
	if (r == 0 && (r = unmount_fd(fd)) < 0) {
		snprintf(msg, size, "cannot unmount %s: %s", dir, strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	r = catalog_set_exposure(m->catalog, &s->prop.snapshot_id, NULL,
				 s->prop.snapshot_attributes & ~VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY);
	if (r < 0) {
		_cleanup_close_ int again = open_no_symlinks(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
		int k = again < 0 ? again : ops->expose(s->prop.snapshot_device_object, s->provider_data, again);

		/* Not recorded, not done: mounted again where the catalog says
		 * it is, so that the catalog does not lie. */
		if (k < 0)
			log_error("snapshot %s: cannot mount it again on %s (%s); the catalog says it is exposed "
				  "there until vssd restarts",
				  ID_TO_STRING(&s->prop.snapshot_id), dir, provider_result_string(k, (char[128]){ 0 }, 128));
		snprintf(msg, size, "cannot record that %s is unexposed: %s; left exposed", dir, strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	if (def && streq(def, dir)) {
		_cleanup_close_ int exposed = openat(m->runtime_dir_fd, EXPOSED_DIR,
						     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (exposed >= 0)
			(void)unlinkat(exposed, ID_TO_STRING(&s->prop.snapshot_id), AT_REMOVEDIR);
	}
	log_info("snapshot %s unexposed from %s", ID_TO_STRING(&s->prop.snapshot_id), dir);
	return S_OK;
}
