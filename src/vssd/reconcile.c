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

/* What the store scan needs of the snapshots, gathered page by page: their
 * ids (sorted before the scan) and the directories of their stores. */
typedef struct Known {
	vss_id *ids;
	size_t n_ids, allocated_ids;
	char **dirs;
	size_t n_dirs, allocated_dirs;
} Known;

static void known_clear(Known *k)
{
	for (size_t i = 0; i < k->n_dirs; i++)
		free(k->dirs[i]);
	free(k->dirs);
	free(k->ids);
	*k = (Known){ 0 };
}

static int grow(void **array, size_t n, size_t *allocated, size_t size)
{
	size_t want;
	void *na;

	if (n < *allocated)
		return 0;
	want = *allocated ? *allocated * 2 : 256;
	na = reallocarray(*array, want, size);
	if (!na)
		return -ENOMEM;
	*array = na;
	*allocated = want;
	return 0;
}

static int known_add(Known *k, const CatalogSnapshot *s)
{
	const char *path = s->prop.snapshot_device_object, *slash = strrchr(path, '/');
	char *dir;

	if (grow((void **)&k->ids, k->n_ids, &k->allocated_ids, sizeof(*k->ids)) < 0)
		return -ENOMEM;
	k->ids[k->n_ids++] = s->prop.snapshot_id;
	if (!slash)
		return 0;
	/* Snapshots of one store mostly come one after another. */
	if (k->n_dirs > 0 && strlen(k->dirs[k->n_dirs - 1]) == (size_t)(slash - path) &&
	    strncmp(k->dirs[k->n_dirs - 1], path, slash - path) == 0)
		return 0;
	if (grow((void **)&k->dirs, k->n_dirs, &k->allocated_dirs, sizeof(*k->dirs)) < 0)
		return -ENOMEM;
	dir = strndup(path, slash - path);
	if (!dir)
		return -ENOMEM;
	k->dirs[k->n_dirs++] = dir;
	return 0;
}

/* Report store entries named like snapshots that the catalog does not list.
 * One readdir per store, each name looked up in the sorted ids: with
 * 100,000 snapshots a linear search per entry took minutes. */
static unsigned scan_stores(Known *k)
{
	unsigned found = 0;

	/* No snapshot, no store to scan (and qsort() takes no NULL). */
	if (k->n_ids == 0 || k->n_dirs == 0)
		return 0;
	qsort(k->ids, k->n_ids, sizeof(*k->ids), id_compare);
	qsort(k->dirs, k->n_dirs, sizeof(*k->dirs), str_compare);
	for (size_t i = 0; i < k->n_dirs; i++) {
		DIR *d;
		struct dirent *de;

		if (i > 0 && streq(k->dirs[i - 1], k->dirs[i]))
			continue;
		d = opendir(k->dirs[i]);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			vss_id id;

			if (VSS_FAILED(vss_id_parse(de->d_name, &id)) ||
			    bsearch(&id, k->ids, k->n_ids, sizeof(*k->ids), id_compare))
				continue;
			log_warning("reconcile: %s/%s is in a snapshot store but not in the catalog; left in place",
				    k->dirs[i], de->d_name);
			found++;
		}
		closedir(d);
	}
	return found;
}

/* One snapshot against the disk; how many disagreements it showed. */
static unsigned check_snapshot(Manager *m, const CatalogSnapshot *s)
{
	const provider_ops *ops = provider_find_by_id(&s->prop.provider_id);
	unsigned disagreements = 0;
	int r;

	if (!ops) {
		log_warning("reconcile: snapshot %s was made by provider %s, which is not registered; kept",
			    ID_TO_STRING(&s->prop.snapshot_id), s->provider_name);
		return 1;
	}
	if (ops->snapshot_exists(s->prop.snapshot_device_object, s->provider_data) > 0) {
		_cleanup_free_ char *now = NULL;
		_cleanup_close_ int fd = -1;

		r = s->prop.exposed_name ? exposure_find(m, ops, s, &fd) : 0;
		/* Found elsewhere: a directory above it was renamed. */
		if (r == 0 && fd >= 0 && fd_get_path(fd, &now) >= 0 && !streq(now, s->prop.exposed_name)) {
			log_warning("reconcile: snapshot %s was exposed at %s and is now at %s; recording that",
				    ID_TO_STRING(&s->prop.snapshot_id), s->prop.exposed_name, now);
			if (catalog_set_exposure(m->catalog, &s->prop.snapshot_id, now, s->prop.snapshot_attributes) < 0)
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
		return disagreements;
	}
	log_warning("reconcile: snapshot %s of %s is missing on disk (%s); removing it from the catalog",
		    ID_TO_STRING(&s->prop.snapshot_id), s->prop.original_volume_name, s->prop.snapshot_device_object);
	r = catalog_delete_snapshot(m->catalog, &s->prop.snapshot_id);
	if (r < 0)
		log_error_errno(r, "reconcile: cannot remove snapshot %s from the catalog: %m",
				ID_TO_STRING(&s->prop.snapshot_id));
	return 1;
}

/* Snapshots are read a page at a time, so that vssd does not hold the
 * whole catalog at start: 100,000 snapshots would be some 50 MB. */
#define RECONCILE_PAGE 1000

int reconcile(Manager *m)
{
	CatalogSet *sets = NULL;
	CatalogPosition after;
	Known known = { 0 };
	size_t n_sets = 0;
	unsigned disagreements = 0;
	int r, oom = 0;

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

	for (bool first = true, more = true; more; first = false) {
		CatalogSnapshot *snaps = NULL;
		size_t n = 0;

		r = catalog_list_page(m->catalog,
				      &(CatalogFilter){ .include_creating = true, .after = first ? NULL : &after,
							.limit = RECONCILE_PAGE },
				      &snaps, &n, &after, &more);
		if (r < 0) {
			known_clear(&known);
			return log_error_errno(r, "cannot read the catalog: %m");
		}
		for (size_t i = 0; i < n; i++) {
			disagreements += check_snapshot(m, &snaps[i]);
			if (oom >= 0)
				oom = known_add(&known, &snaps[i]);
		}
		catalog_snapshots_free(snaps, n);
	}
	/* Without every id, the scan would call known snapshots strangers. */
	if (oom >= 0)
		disagreements += scan_stores(&known);
	else
		log_error("reconcile: out of memory; snapshot stores not scanned");
	log_info("reconcile: catalog holds %zu snapshot(s); %u disagreement(s) with the disk", known.n_ids,
		 disagreements);
	known_clear(&known);
	return 0;
}
