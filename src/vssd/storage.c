/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Shadow storage ("diff areas"): how much space each volume's snapshots take,
 * and the maximum an administrator allows. As in VSS, when a volume's
 * snapshots reach its maximum the oldest of them are deleted to make room,
 * before a new set is cut, and when the maximum is lowered.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/log.h"
#include "providers/fault.h"
#include "providers/mounts.h"
#include "vssd/manager.h"

void diff_areas_free(DiffArea *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++) {
		free(d[i].volume);
		free(d[i].storage_volume);
	}
	free(d);
}

int storage_volume_snapshots(Manager *m, const char *volume, CatalogSnapshot **ret, size_t *ret_n)
{
	return catalog_list_snapshots(m->catalog, &(CatalogFilter){ .volume = volume }, ret, ret_n);
}

int storage_measure(const CatalogSnapshot *snaps, size_t n, int64_t *ret_used, int64_t *ret_allocated)
{
	const provider_ops *ops;
	char *paths[n ?: 1];
	int r;

	*ret_used = *ret_allocated = 0;
	if (n == 0)
		return 0;
	ops = provider_find_by_id(&snaps[0].prop.provider_id);
	if (!ops || !ops->space) {
		*ret_used = *ret_allocated = -1;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		paths[i] = snaps[i].prop.snapshot_device_object;
	r = fault_point(POINT_SPACE);
	return r < 0 ? r : ops->space(paths, n, snaps[0].provider_data, ret_used, ret_allocated);
}

int storage_query(Manager *m, const char *volume, DiffArea **ret, size_t *ret_n)
{
	_cleanup_(strv_freep) char **volumes = NULL;
	_cleanup_free_ int64_t *maximums = NULL;
	DiffArea *list = NULL;
	size_t n = 0, k = 0;
	int r;

	r = catalog_storage(m->catalog, &volumes, &maximums, &n);
	if (r < 0)
		return r;
	list = calloc(n ?: 1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		CatalogSnapshot *snaps = NULL;
		size_t ns = 0;
		DiffArea *d;

		if (volume && !streq(volume, volumes[i]))
			continue;
		d = &list[k++];
		d->volume = strdup(volumes[i]);
		d->maximum = maximums[i];
		r = d->volume ? storage_volume_snapshots(m, volumes[i], &snaps, &ns) : -ENOMEM;
		if (r >= 0)
			r = storage_measure(snaps, ns, &d->used, &d->allocated);
		/* Where the snapshots live: the filesystem of their store, or,
		 * for snapshots kept outside a store on a host, what holds them
		 * (an LVM volume group, /dev/VG). */
		if (r >= 0 && ns > 0) {
			MountEntry e = { 0 };

			if (!snapshot_in_store(snaps[0].prop.snapshot_device_object))
				d->storage_volume = path_parent(snaps[0].prop.snapshot_device_object);
			else if (mount_lookup(snaps[0].prop.snapshot_device_object, &e) >= 0)
				d->storage_volume = TAKE_PTR(e.target);
			mount_entry_clear(&e);
		}
		catalog_snapshots_free(snaps, ns);
		if (r < 0) {
			diff_areas_free(list, k);
			return r;
		}
	}
	*ret = list;
	*ret_n = k;
	return 0;
}

bool storage_over_maximum(const char *volume, size_t n, int64_t used, int64_t maximum, bool before_new_set)
{
	if (used < 0 && n > 0)
		log_warning("%s: the space its snapshots take is unknown (btrfs without quotas); "
			    "its maximum shadow storage cannot be enforced", volume);
	/* A new snapshot will grow from nothing: it needs the room below
	 * the maximum; otherwise the maximum itself is the limit. */
	return !(maximum < 0 || n == 0 || used < 0 || (before_new_set ? used < maximum : used <= maximum));
}

int storage_delete_oldest(Manager *m, const char *volume, const CatalogSnapshot *snaps, int64_t used, int64_t maximum)
{
	int32_t gone;
	vss_id failed;
	char msg[512];

	log_notice("%s: its snapshots use %lld bytes, its maximum is %lld: deleting the oldest, %s", volume,
		   (long long)used, (long long)maximum, ID_TO_STRING(&snaps[0].prop.snapshot_id));
	if (VSS_FAILED(manager_delete_snapshots(m, snaps, 1, &gone, &failed, msg, sizeof(msg)))) {
		log_error("%s: cannot make room: %s", volume, msg);
		return -EIO;
	}
	return 0;
}

int storage_enforce(Manager *m, const char *volume, int64_t maximum, bool before_new_set)
{
	int deleted = 0;

	if (maximum < 0)
		return 0;
	for (;;) {
		CatalogSnapshot *snaps = NULL;
		size_t n = 0;
		int64_t used, allocated;
		int r;

		r = storage_volume_snapshots(m, volume, &snaps, &n);
		if (r >= 0)
			r = storage_measure(snaps, n, &used, &allocated);
		if (r < 0) {
			catalog_snapshots_free(snaps, n);
			return log_error_errno(r, "%s: cannot measure its shadow storage: %m", volume);
		}
		if (!storage_over_maximum(volume, n, used, maximum, before_new_set)) {
			catalog_snapshots_free(snaps, n);
			return deleted;
		}
		r = storage_delete_oldest(m, volume, snaps, used, maximum);
		catalog_snapshots_free(snaps, n);
		if (r < 0)
			return r;
		deleted++;
	}
}

vss_hr storage_set_maximum(Manager *m, const char *volume, int64_t maximum, char *msg, size_t size)
{
	int r;

	r = catalog_set_storage_maximum(m->catalog, volume, maximum);
	if (r < 0) {
		snprintf(msg, size, "cannot record the maximum: %s", strerror(-r));
		return VSS_E_UNEXPECTED;
	}
	if (maximum < 0)
		log_info("%s: shadow storage unbounded", volume);
	else
		log_info("%s: shadow storage at most %lld bytes", volume, (long long)maximum);
	r = storage_enforce(m, volume, maximum, false);
	if (r < 0) {
		snprintf(msg, size, "the maximum is recorded, but snapshots above it could not be deleted");
		return VSS_E_UNEXPECTED;
	}
	return S_OK;
}
