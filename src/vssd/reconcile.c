/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * At start-up, make the catalog and the disk agree, and say where they did
 * not (docs/CATALOG.md):
 *  - a set still "creating" was being cut when vssd stopped: whatever part of
 *    it exists is removed, with its rows;
 *  - a finished set of an auto-release context has lost its requestor (every
 *    connection ended with the old vssd): it is deleted;
 *  - a persistent snapshot missing on disk loses its row;
 *  - an entry in a snapshot store that the catalog does not know is reported
 *    and left alone, since vss cannot tell what it is.
 */

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "providers/mounts.h"
#include "vssd/manager.h"

static int id_compare(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(vss_id));
}

static int str_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Report store entries named like snapshots that the catalog does not list.
 * One readdir per store, each name looked up in the sorted ids: with
 * 100,000 snapshots a linear search per entry took minutes. */
static unsigned scan_stores(const CatalogSnapshot *snaps, size_t n)
{
	_cleanup_free_ vss_id *ids = NULL;
	char **dirs = NULL;
	size_t n_dirs = 0;
	unsigned found = 0;

	ids = calloc(n ?: 1, sizeof(*ids));
	dirs = calloc(n ?: 1, sizeof(*dirs));
	if (!ids || !dirs) {
		free(dirs);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char *dir;

		ids[i] = snaps[i].prop.snapshot_id;
		dir = strdup(snaps[i].prop.snapshot_device_object);
		if (!dir)
			break;
		if (!strrchr(dir, '/')) {
			free(dir);
			continue;
		}
		*strrchr(dir, '/') = '\0';
		dirs[n_dirs++] = dir;
	}
	qsort(ids, n, sizeof(*ids), id_compare);
	qsort(dirs, n_dirs, sizeof(*dirs), str_compare);
	for (size_t k = 0; k < n_dirs; k++) {
		DIR *d;
		struct dirent *de;

		if (k > 0 && streq(dirs[k - 1], dirs[k]))
			continue;
		d = opendir(dirs[k]);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			vss_id id;

			if (VSS_FAILED(vss_id_parse(de->d_name, &id)) || bsearch(&id, ids, n, sizeof(*ids), id_compare))
				continue;
			log_warning("reconcile: %s/%s is in a snapshot store but not in the catalog; left in place",
				    dirs[k], de->d_name);
			found++;
		}
		closedir(d);
	}
	for (size_t k = 0; k < n_dirs; k++)
		free(dirs[k]);
	free(dirs);
	return found;
}

int reconcile(Manager *m)
{
	CatalogSet *sets = NULL;
	CatalogSnapshot *snaps = NULL;
	size_t n_sets = 0, n_snaps = 0;
	unsigned disagreements = 0;
	int r;

	r = catalog_list_sets(m->catalog, &sets, &n_sets);
	if (r < 0)
		return log_error_errno(r, "cannot read the catalog: %m");

	for (size_t i = 0; i < n_sets; i++) {
		const CatalogSet *s = &sets[i];

		if (s->state == SET_CREATING) {
			log_warning("reconcile: set %s was being created when vssd stopped; removing what exists of it",
				    ID_TO_STRING(&s->id));
			manager_delete_set(m, &s->id, "it was never completed");
			disagreements++;
		} else if (context_auto_release(s->context)) {
			log_warning("reconcile: set %s is auto-release and its requestor is gone; deleting it",
				    ID_TO_STRING(&s->id));
			manager_delete_set(m, &s->id, "its requestor is gone (auto-release context)");
			disagreements++;
		}
	}
	catalog_sets_free(sets, n_sets);

	r = catalog_list_snapshots(m->catalog, &(CatalogFilter){ .include_creating = true }, &snaps, &n_snaps);
	if (r < 0)
		return log_error_errno(r, "cannot read the catalog: %m");
	for (size_t i = 0; i < n_snaps; i++) {
		const CatalogSnapshot *s = &snaps[i];
		const provider_ops *ops = provider_find_by_id(&s->prop.provider_id);

		if (!ops) {
			log_warning("reconcile: snapshot %s was made by provider %s, which is not registered; kept",
				    ID_TO_STRING(&s->prop.snapshot_id), s->provider_name);
			disagreements++;
			continue;
		}
		if (ops->snapshot_exists(s->prop.snapshot_device_object, s->provider_data) > 0) {
			_cleanup_free_ char *now = NULL;
			_cleanup_close_ int fd = -1;

			r = s->prop.exposed_name ? exposure_find(ops, s, &fd) : 0;
			/* Found elsewhere: a directory above it was renamed. */
			if (r == 0 && fd >= 0 && fd_get_path(fd, &now) >= 0 && !streq(now, s->prop.exposed_name)) {
				log_warning("reconcile: snapshot %s was exposed at %s and is now at %s; recording that",
					    ID_TO_STRING(&s->prop.snapshot_id), s->prop.exposed_name, now);
				if (catalog_set_exposure(m->catalog, &s->prop.snapshot_id, now,
							 s->prop.snapshot_attributes) < 0)
					log_error("reconcile: cannot record that");
				disagreements++;
			}
			if (r == -ENOENT) {
				log_warning("reconcile: snapshot %s was exposed at %s, which is no longer mounted; "
					    "forgetting the exposure",
					    ID_TO_STRING(&s->prop.snapshot_id), s->prop.exposed_name);
				if (catalog_set_exposure(m->catalog, &s->prop.snapshot_id, NULL,
							 s->prop.snapshot_attributes & ~VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY) < 0)
					log_error("reconcile: cannot record that");
				disagreements++;
			}
			continue;
		}
		log_warning("reconcile: snapshot %s of %s is missing on disk (%s); removing it from the catalog",
			    ID_TO_STRING(&s->prop.snapshot_id), s->prop.original_volume_name,
			    s->prop.snapshot_device_object);
		r = catalog_delete_snapshot(m->catalog, &s->prop.snapshot_id);
		if (r < 0)
			log_error_errno(r, "reconcile: cannot remove snapshot %s from the catalog: %m",
					ID_TO_STRING(&s->prop.snapshot_id));
		disagreements++;
	}
	disagreements += scan_stores(snaps, n_snaps);
	log_info("reconcile: catalog holds %zu snapshot(s); %u disagreement(s) with the disk", n_snaps,
		 disagreements);
	catalog_snapshots_free(snaps, n_snaps);
	return 0;
}
