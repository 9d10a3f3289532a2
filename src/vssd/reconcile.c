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
 *    and left alone, since vss cannot tell what it is;
 *  - a snapshot a provider tagged with vss's ids (list_all_snapshots) that
 *    the catalog does not know is vss's own, made for a set the catalog
 *    lost: it is reported and deleted.
 *
 * Providers that tag their snapshots say what exists by id; for the others
 * the catalog's path says where to look (its directory is the store).
 */

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "basic/util.h"
#include "providers/mounts.h"
#include "vssd/manager.h"
#include "vssd/revert.h"

static int id_compare(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(vss_id));
}

static int str_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One provider's snapshots in one store, as list_snapshots reported them
 * (their names, sorted), read the first time a snapshot of it comes up:
 * one call per store, not one per snapshot. */
typedef struct Store {
	char *dir;
	const provider_ops *ops;
	int result;             /* of list_snapshots */
	char **names;
	size_t n_names, allocated_names;
} Store;

/* A snapshot a provider tagged with vss's ids, as list_all_snapshots
 * reported it. */
typedef struct Tagged {
	vss_id snapshot_id, set_id;
	char *path;
} Tagged;

/* Everything one such provider has, sorted by snapshot id. */
typedef struct Inventory {
	const provider_ops *ops;
	int result;             /* of list_all_snapshots */
	Tagged *snaps;
	size_t n, allocated;
} Inventory;

/* What reconcile gathers, page by page: the ids of every snapshot (sorted
 * before the scans for strangers), the stores they are in, and the
 * inventories of the providers that tag. */
typedef struct Known {
	vss_id *ids;
	size_t n_ids, allocated_ids;
	Store *stores;
	size_t n_stores, allocated_stores;
	size_t last;            /* the store asked for last */
	Inventory *inventories;
	size_t n_inventories;
} Known;

static void known_clear(Known *k)
{
	for (size_t i = 0; i < k->n_stores; i++) {
		for (size_t j = 0; j < k->stores[i].n_names; j++)
			free(k->stores[i].names[j]);
		free(k->stores[i].names);
		free(k->stores[i].dir);
	}
	free(k->stores);
	free(k->ids);
	for (size_t i = 0; i < k->n_inventories; i++) {
		for (size_t j = 0; j < k->inventories[i].n; j++)
			free(k->inventories[i].snaps[j].path);
		free(k->inventories[i].snaps);
	}
	free(k->inventories);
	*k = (Known){ 0 };
}

static int tagged_found(const ProviderSnapshot *ps, void *userdata)
{
	Inventory *inv = userdata;
	Tagged *t;

	if (!ps->path)
		return 0;
	t = array_append((void **)&inv->snaps, &inv->n, &inv->allocated, sizeof(*inv->snaps));
	if (!t)
		return -ENOMEM;
	*t = (Tagged){ .snapshot_id = ps->snapshot_id, .set_id = ps->set_id, .path = strdup(ps->path) };
	if (!t->path) {
		inv->n--;
		return -ENOMEM;
	}
	return 0;
}

/* Ask every provider that tags its snapshots what it has, once. */
static int known_take_inventories(Known *k)
{
	size_t n;
	const provider_ops *const *all = provider_registry(&n);

	k->inventories = calloc(n ?: 1, sizeof(*k->inventories));
	if (!k->inventories)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Inventory *inv;
		char buf[64];

		if (!all[i]->list_all_snapshots)
			continue;
		inv = &k->inventories[k->n_inventories++];
		inv->ops = all[i];
		inv->result = all[i]->list_all_snapshots(tagged_found, inv);
		if (inv->result < 0)
			log_warning("reconcile: %s cannot list its snapshots: %s; its rows are kept and nothing "
				    "of it is deleted",
				    all[i]->name, provider_result_string(inv->result, buf, sizeof(buf)));
		else if (inv->n > 0)
			/* The snapshot id is the struct's first field. */
			qsort(inv->snaps, inv->n, sizeof(*inv->snaps), id_compare);
	}
	return 0;
}

static const Inventory *known_inventory(const Known *k, const provider_ops *ops)
{
	for (size_t i = 0; i < k->n_inventories; i++)
		if (k->inventories[i].ops == ops)
			return &k->inventories[i];
	return NULL;
}

static int known_add(Known *k, const vss_id *snapshot_id)
{
	vss_id *id = array_append((void **)&k->ids, &k->n_ids, &k->allocated_ids, sizeof(*k->ids));

	if (!id)
		return -ENOMEM;
	*id = *snapshot_id;
	return 0;
}

static int store_found(const ProviderSnapshot *ps, void *userdata)
{
	Store *st = userdata;
	char **slot, *name = strdup(ps->name);

	if (!name)
		return -ENOMEM;
	slot = array_append((void **)&st->names, &st->n_names, &st->allocated_names, sizeof(*st->names));
	if (!slot) {
		free(name);
		return -ENOMEM;
	}
	*slot = name;
	return 0;
}

/* The store of dir (dir_len bytes) as ops sees it, listed on first use. */
static Store *known_store(Known *k, const char *dir, size_t dir_len, const provider_ops *ops)
{
	Store *st;

	/* Snapshots of one store mostly come one after another. */
	for (size_t n = 0, i = k->last; n < k->n_stores; n++, i = (i + 1) % k->n_stores) {
		st = &k->stores[i];
		if (st->ops == ops && strlen(st->dir) == dir_len && strncmp(st->dir, dir, dir_len) == 0) {
			k->last = i;
			return st;
		}
	}
	st = array_append((void **)&k->stores, &k->n_stores, &k->allocated_stores, sizeof(*k->stores));
	if (!st)
		return NULL;
	st->ops = ops;
	st->dir = strndup(dir, dir_len);
	if (!st->dir) {
		k->n_stores--;
		return NULL;
	}
	k->last = k->n_stores - 1;
	st->result = ops->list_snapshots(st->dir, store_found, st);
	if (st->result < 0) {
		char buf[64];

		if (st->result != -ENOENT)
			log_warning("reconcile: %s cannot list its snapshots in %s: %s", ops->name, st->dir,
				    provider_result_string(st->result, buf, sizeof(buf)));
	} else if (st->n_names > 0)
		qsort(st->names, st->n_names, sizeof(*st->names), str_compare);
	return st;
}

/* 1 when the snapshot is in its store, 0 when not, -ENOMEM. */
static int known_exists_in_store(Known *k, const char *path, const provider_ops *ops)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	Store *st = known_store(k, path, slash ? (size_t)(slash - path) : 0, ops);

	if (!st)
		return -ENOMEM;
	/* Out of memory tells nothing of the disk: keep the row. */
	if (st->result == -ENOMEM)
		return 1;
	if (st->result < 0 || !slash)
		return 0;
	return bsearch(&name, st->names, st->n_names, sizeof(*st->names), str_compare) != NULL;
}

/* 1 when the snapshot is in its store, or among its provider's tagged
 * snapshots, 0 when not, -ENOMEM. */
static int known_exists(Known *k, const vss_id *snapshot_id, const char *path, const provider_ops *ops)
{
	const Inventory *inv = known_inventory(k, ops);

	if (inv)
		/* A provider that cannot tell keeps every row. */
		return inv->result < 0 ||
		       bsearch(snapshot_id, inv->snaps, inv->n, sizeof(*inv->snaps), id_compare) != NULL;
	/* Nor can one that lists no store (a command provider with no list
	 * command): it is taken at its word. */
	if (!ops->list_snapshots)
		return 1;
	return known_exists_in_store(k, path, ops);
}

/* Report store entries named like snapshots that the catalog does not list.
 * One readdir per store, each name looked up in the sorted ids: with
 * 100,000 snapshots a linear search per entry took minutes. */
static unsigned scan_stores(Known *k)
{
	unsigned found = 0;

	/* No snapshot, no store to scan (and qsort() takes no NULL). */
	if (k->n_ids == 0 || k->n_stores == 0)
		return 0;
	for (size_t i = 0; i < k->n_stores; i++) {
		const char *dir = k->stores[i].dir;
		bool seen = false;
		DIR *d;
		struct dirent *de;

		/* A store holding snapshots of two providers is scanned once. */
		for (size_t j = 0; j < i && !seen; j++)
			seen = streq(k->stores[j].dir, dir);
		if (seen || !*dir)
			continue;
		d = opendir(dir);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			vss_id id;

			if (VSS_FAILED(vss_id_parse(de->d_name, &id)) ||
			    bsearch(&id, k->ids, k->n_ids, sizeof(*k->ids), id_compare))
				continue;
			log_warning("reconcile: %s/%s is in a snapshot store but not in the catalog; left in place",
				    dir, de->d_name);
			found++;
		}
		closedir(d);
	}
	return found;
}

/* Delete what providers tagged as vss's but the catalog does not know: the
 * catalog lost its set (restored from an older backup, or a row gone while
 * its snapshot's deletion failed). */
static unsigned remove_orphans(Manager *m, const Known *k)
{
	unsigned found = 0;

	for (size_t i = 0; i < k->n_inventories; i++) {
		const Inventory *inv = &k->inventories[i];

		for (size_t j = 0; inv->result >= 0 && j < inv->n; j++) {
			const Tagged *t = &inv->snaps[j];
			char buf[64];
			int r;

			if (k->n_ids > 0 && bsearch(&t->snapshot_id, k->ids, k->n_ids, sizeof(*k->ids), id_compare))
				continue;
			log_warning("reconcile: %s snapshot %s of set %s at %s is not in the catalog; deleting it",
				    inv->ops->name, ID_TO_STRING(&t->snapshot_id), ID_TO_STRING(&t->set_id), t->path);
			r = provider_invoke_delete(m->faults, inv->ops, t->path, NULL);
			if (r < 0)
				log_error("reconcile: cannot delete %s: %s; it stays", t->path,
					  provider_result_string(r, buf, sizeof(buf)));
			found++;
		}
	}
	return found;
}

/* One snapshot that needs more than a look-up (Pending), against the disk;
 * how many disagreements it showed. */
static unsigned check_snapshot(Manager *m, const CatalogSnapshot *s, const provider_ops *ops, bool exists)
{
	unsigned disagreements = 0;
	int r;

	if (!ops) {
		log_warning("reconcile: snapshot %s was made by provider %s, which is not registered; kept",
			    ID_TO_STRING(&s->prop.snapshot_id), s->provider_name);
		return 1;
	}
	if (exists) {
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
	/* What is left of a lost snapshot (an LVM snapshot that overflowed,
	 * no longer valid, still takes its space) goes with its row; a
	 * snapshot that is gone is deleted at once. */
	{
		char buf[128];

		r = provider_invoke_delete(m->faults, ops, s->prop.snapshot_device_object, s->provider_data);
		if (r < 0)
			log_error("reconcile: cannot remove what is left of snapshot %s: %s",
				  ID_TO_STRING(&s->prop.snapshot_id), provider_result_string(r, buf, sizeof(buf)));
	}
	r = catalog_delete_snapshot(m->catalog, &s->prop.snapshot_id);
	if (r < 0)
		log_error_errno(r, "reconcile: cannot remove snapshot %s from the catalog: %m",
				ID_TO_STRING(&s->prop.snapshot_id));
	return 1;
}

/* Snapshots are read a page at a time, so that vssd does not hold the
 * whole catalog at start: 100,000 snapshots would be some 50 MB. */
#define RECONCILE_PAGE 1000

/* The snapshots of a page that need more than a look-up: missing, exposed
 * (is the mount still there?) or of an unknown provider. The others, nearly
 * all, are never copied out of SQLite's row. */
typedef struct Pending {
	CatalogSnapshot snap;
	const provider_ops *ops;
	bool exists;
} Pending;

typedef struct PageCheck {
	Manager *manager;
	Known *known;
	Pending *pending;
	size_t n_pending, allocated_pending;
} PageCheck;

static int check_row(const CatalogRow *row, void *userdata)
{
	PageCheck *pc = userdata;
	const provider_ops *ops = provider_find_by_id(&row->provider_id);
	Pending *p;
	int r = 0;

	if (known_add(pc->known, &row->snapshot_id) < 0)
		return -ENOMEM;
	/* A volume whose revert is unfinished is not mounted, or not as it
	 * was: its snapshots are not looked for until it is done. */
	if (row->strings[1] && revert_holds_volume(pc->manager, row->strings[1]))
		return 0;
	if (ops) {
		r = known_exists(pc->known, &row->snapshot_id, row->strings[0], ops);
		if (r < 0)
			return r;
		/* Where it should be, and not exposed: nothing to do. */
		if (r > 0 && !row->strings[4])
			return 0;
	}
	p = array_append((void **)&pc->pending, &pc->n_pending, &pc->allocated_pending, sizeof(*pc->pending));
	if (!p)
		return -ENOMEM;
	p->ops = ops;
	p->exists = r > 0;
	if (catalog_row_decode(row, &p->snap) < 0) {
		pc->n_pending--;
		return -ENOMEM;
	}
	return 0;
}

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
	/* After the unfinished sets are gone, so that their snapshots do not
	 * come up as orphans. */
	if (known_take_inventories(&known) < 0)
		oom = -ENOMEM;

	for (bool first = true, more = true; more && oom >= 0; first = false) {
		PageCheck pc = { .manager = m, .known = &known };

		r = catalog_list_rows(m->catalog,
				      &(CatalogFilter){ .include_creating = true, .after = first ? NULL : &after,
							.limit = RECONCILE_PAGE },
				      check_row, &pc, &after, &more);
		if (r < 0 && r != -ENOMEM) {
			for (size_t i = 0; i < pc.n_pending; i++)
				catalog_snapshot_clear(&pc.pending[i].snap);
			free(pc.pending);
			known_clear(&known);
			return log_error_errno(r, "cannot read the catalog: %m");
		}
		oom = r;
		/* After the page is read: these write to the catalog. */
		for (size_t i = 0; i < pc.n_pending; i++) {
			if (oom >= 0)
				disagreements += check_snapshot(m, &pc.pending[i].snap, pc.pending[i].ops,
								pc.pending[i].exists);
			catalog_snapshot_clear(&pc.pending[i].snap);
		}
		free(pc.pending);
	}
	/* Without every id, the scans would call known snapshots strangers. */
	if (oom >= 0) {
		if (known.n_ids > 0)
			qsort(known.ids, known.n_ids, sizeof(*known.ids), id_compare);
		disagreements += scan_stores(&known);
		disagreements += remove_orphans(m, &known);
	} else
		log_error("reconcile: out of memory; the catalog was not all checked, nor the stores scanned");
	log_info("reconcile: catalog holds %zu snapshot(s); %u disagreement(s) with the disk", known.n_ids,
		 disagreements);
	known_clear(&known);
	return 0;
}
