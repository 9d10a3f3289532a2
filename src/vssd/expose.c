/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Exposure (ExposeSnapshot / UnexposeSnapshot): a finished snapshot mounted
 * read-only on a directory, by its provider. The mount is the kernel's, so it
 * outlives vssd; the catalog records where it is, and reconciliation forgets
 * an exposure whose mount is gone.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/id.h"
#include "basic/log.h"
#include "providers/mounts.h"
#include "vssd/manager.h"

static bool dir_is_empty(const char *path)
{
	struct dirent *de;
	bool empty = true;
	DIR *d = opendir(path);

	if (!d)
		return false;
	while (empty && (de = readdir(d)))
		empty = streq(de->d_name, ".") || streq(de->d_name, "..");
	closedir(d);
	return empty;
}

/* Where a snapshot is exposed when the requestor names no place. */
static char *default_dir(Manager *m, const vss_id *id)
{
	char *dir;

	if (asprintf(&dir, "%s/exposed/%s", m->runtime_dir, ID_TO_STRING(id)) < 0)
		return NULL;
	return dir;
}

/*
 * Mounting over a directory is a root's power, so a caller who is not root
 * may expose only where it could make files itself: the default place, or an
 * empty directory it owns.
 */
static vss_hr check_target(const char *dir, uid_t caller, bool is_default, char *msg, size_t size)
{
	struct stat st;

	if (dir[0] != '/') {
		snprintf(msg, size, "%s is not an absolute path", dir);
		return E_INVALIDARG;
	}
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT && (caller == 0 || is_default))
			return S_OK;
		snprintf(msg, size, "%s: %s", dir, strerror(errno));
		return errno == ENOENT ? VSS_E_OBJECT_NOT_FOUND : E_ACCESSDENIED;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(msg, size, "%s is not a directory", dir);
		return E_INVALIDARG;
	}
	if (mount_is_target(dir) || !dir_is_empty(dir)) {
		snprintf(msg, size, "%s is not an empty directory", dir);
		return VSS_E_OBJECT_ALREADY_EXISTS;
	}
	if (caller != 0 && !is_default && st.st_uid != caller) {
		snprintf(msg, size, "%s is not yours: expose at the default place or in a directory you own", dir);
		return E_ACCESSDENIED;
	}
	return S_OK;
}

vss_hr snapshot_expose(Manager *m, const CatalogSnapshot *s, const char *dir_or_null, uid_t caller,
                       char **ret_dir, char *msg, size_t size)
{
	_cleanup_free_ char *dir = dir_or_null && *dir_or_null ? strdup(dir_or_null) : default_dir(m, &s->prop.snapshot_id);
	const provider_ops *ops = provider_find_by_id(&s->prop.provider_id);
	vss_hr hr;
	int r;

	if (!dir)
		return E_OUTOFMEMORY;
	if (s->prop.exposed_name) {
		snprintf(msg, size, "snapshot %s is exposed at %s already", ID_TO_STRING(&s->prop.snapshot_id),
			 s->prop.exposed_name);
		return VSS_E_OBJECT_ALREADY_EXISTS;
	}
	if (!ops) {
		snprintf(msg, size, "provider %s is not registered", s->provider_name);
		return VSS_E_PROVIDER_NOT_REGISTERED;
	}
	hr = check_target(dir, caller, !(dir_or_null && *dir_or_null), msg, size);
	if (hr != S_OK)
		return hr;
	r = mkdir_p(dir, 0755);
	if (r < 0) {
		snprintf(msg, size, "cannot create %s: %s", dir, strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	r = ops->expose(s->prop.snapshot_device_object, s->provider_data, dir);
	if (r < 0) {
		snprintf(msg, size, "%s provider cannot mount %s on %s: %s", ops->name, s->prop.snapshot_device_object,
			 dir, provider_result_string(r, (char[128]){ 0 }, 128));
		log_error("%s", msg);
		return provider_result_to_hr(r);
	}
	r = catalog_set_exposure(m->catalog, &s->prop.snapshot_id, dir,
				 s->prop.snapshot_attributes | VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY);
	if (r < 0) {
		/* Not recorded, not kept: the catalog must not lie. */
		umount2(dir, MNT_DETACH);
		snprintf(msg, size, "cannot record the exposure: %s", strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	log_info("snapshot %s of %s exposed at %s", ID_TO_STRING(&s->prop.snapshot_id), s->prop.original_volume_name,
		 dir);
	*ret_dir = TAKE_PTR(dir);
	return S_OK;
}

vss_hr snapshot_unexpose(Manager *m, const CatalogSnapshot *s, char *msg, size_t size)
{
	_cleanup_free_ char *def = default_dir(m, &s->prop.snapshot_id);
	const char *dir = s->prop.exposed_name;
	int r;

	if (!dir) {
		snprintf(msg, size, "snapshot %s is not exposed", ID_TO_STRING(&s->prop.snapshot_id));
		return VSS_E_OBJECT_NOT_FOUND;
	}
	/* Detach rather than fail on a busy mount: the snapshot is gone from
	 * the tree at once, and whatever it needed goes with its last user. */
	if (mount_is_target(dir) && umount2(dir, MNT_DETACH) < 0) {
		snprintf(msg, size, "cannot unmount %s: %s", dir, strerror(errno));
		return VSS_E_UNEXPECTED;
	}
	if (def && streq(def, dir))
		(void)rmdir(dir);
	r = catalog_set_exposure(m->catalog, &s->prop.snapshot_id, NULL,
				 s->prop.snapshot_attributes & ~VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY);
	if (r < 0) {
		snprintf(msg, size, "unmounted %s but cannot record it: %s", dir, strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	log_info("snapshot %s unexposed from %s", ID_TO_STRING(&s->prop.snapshot_id), dir);
	return S_OK;
}
