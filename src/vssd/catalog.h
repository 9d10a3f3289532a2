/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The catalog: snapshot sets and snapshots in SQLite (WAL) under the state
 * directory. A set is recorded as "creating", with every member's snapshot
 * path, before it is cut, and as "created" after; so after a crash the
 * catalog always says what may be on disk (docs/CATALOG.md).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/types.h>

typedef struct Catalog Catalog;

typedef enum SetState {
	SET_CREATING,
	SET_CREATED,
} SetState;

typedef struct CatalogSet {
	vss_id id;
	int32_t context;
	SetState state;
	int32_t snapshots_count;
	int64_t started_us;     /* CLOCK_REALTIME when DoSnapshotSet began */
	int64_t created_us;     /* the point in time */
	uint64_t prepare_us, flush_us, hold_window_us, total_us;
	char *consistency;
	uint32_t requestor_uid;
	int32_t requestor_pid;
} CatalogSet;

/* Where a snapshot stands in the catalog's order (its set's start, its
 * set, its row): a listing resumes after one, so that a long list is read
 * in pages that return every row once. */
typedef struct CatalogPosition {
	int64_t started_us;
	vss_id set_id;
	int64_t row;
} CatalogPosition;

/* A position as text ("STARTED:{SET}:ROW"), for a client to hand back. */
#define CATALOG_POSITION_MAX (2 * 21 + VSS_ID_STRING_MAX + 2)
char *catalog_position_format(const CatalogPosition *p, char buf[static CATALOG_POSITION_MAX]);
/* -EINVAL for text catalog_position_format() cannot have written. */
int catalog_position_parse(const char *s, CatalogPosition *ret);

typedef struct CatalogSnapshot {
	vss_snapshot_prop prop;   /* as requestors see it */
	char *provider_name;
	char *provider_data;
	int32_t context;
	SetState set_state;
	CatalogPosition position;
} CatalogSnapshot;

typedef struct CatalogFilter {
	const vss_id *set_id;     /* NULL: any */
	const vss_id *snapshot_id;/* NULL: any */
	const char *volume;       /* NULL: any */
	bool include_creating;    /* also sets not yet created */
	bool oldest_of_each_volume; /* only each volume's first finished snapshot */
	const CatalogPosition *after; /* NULL: from the first */
	size_t limit;             /* 0: all */
} CatalogFilter;

int catalog_open(const char *path, Catalog **ret);
Catalog *catalog_close(Catalog *c);

/* Record a set about to be cut, with its snapshots. */
int catalog_begin_set(Catalog *c, const CatalogSet *set, const CatalogSnapshot *snaps, size_t n);
/* Record the outcome of a set that was cut. */
int catalog_finish_set(Catalog *c, const CatalogSet *set, const CatalogSnapshot *snaps, size_t n);
/* Forget a set and its snapshots. */
int catalog_delete_set(Catalog *c, const vss_id *set_id);
/* Forget one snapshot, gone from disk; its set too when it was the last one.
 * A row that cannot be deleted is hidden from every listing from then on,
 * and its deletion tried again at every later listing or deletion. */
int catalog_delete_snapshot(Catalog *c, const vss_id *id);

/* The maximum shadow storage of a volume (negative: unbounded). */
int catalog_set_storage_maximum(Catalog *c, const char *volume, int64_t maximum);
/* Every volume with snapshots or a maximum, with its maximum (-1: unbounded). */
int catalog_storage(Catalog *c, char ***ret_volumes, int64_t **ret_maximums, size_t *ret_n);
/* One volume's maximum (-1: unbounded), without reading the others'. */
int catalog_storage_maximum(Catalog *c, const char *volume, int64_t *ret);

/* Record where a snapshot is exposed (NULL: nowhere) and its attributes. */
int catalog_set_exposure(Catalog *c, const vss_id *id, const char *exposed_name, int32_t attributes);

/* Snapshots matching the filter, oldest set first (a set's in the order
 * they were added); with f->after, only those after that position, and
 * with f->limit at most that many. Each filter uses an index. */
int catalog_list_snapshots(Catalog *c, const CatalogFilter *f, CatalogSnapshot **ret, size_t *ret_n);
/* The same, a page at a time: *ret_more says whether the page was full
 * (more may follow), and *ret_next where the next page starts (after the
 * last row read, hidden or not). */
int catalog_list_page(Catalog *c, const CatalogFilter *f, CatalogSnapshot **ret, size_t *ret_n, CatalogPosition *ret_next,
		      bool *ret_more);
/* A snapshot's row as read, its strings SQLite's own (valid during the
 * callback only): what a listing copies straight into its reply, without
 * decoding each row into a CatalogSnapshot first. strings are, in this
 * order, snapshot_device_object, original_volume_name,
 * originating_machine, service_machine, exposed_name, exposed_path and
 * consistency, as in vss_snapshot_prop (NULL for NULL). */
#define CATALOG_ROW_STRINGS 7
typedef struct CatalogRow {
	vss_id snapshot_id, set_id, provider_id;
	int32_t snapshots_count, attributes, status, context;
	int64_t created_us;
	uint64_t hold_window_us;
	const char *strings[CATALOG_ROW_STRINGS];
	const char *provider_name, *provider_data;
	const char *note;       /* the snapshot's note, already in strings[6] */
	SetState set_state;
	CatalogPosition position;
} CatalogRow;
typedef int (*catalog_row_fn)(const CatalogRow *row, void *userdata);
/* catalog_list_page() row by row: fn for each row (but hidden ones); a
 * negative result of fn stops the listing and is returned. */
int catalog_list_rows(Catalog *c, const CatalogFilter *f, catalog_row_fn fn, void *userdata, CatalogPosition *ret_next,
		      bool *ret_more);
/* A row copied into a CatalogSnapshot of its own; -ENOMEM. */
int catalog_row_decode(const CatalogRow *row, CatalogSnapshot *ret);
/* The oldest finished snapshot of each volume (the first inserted), in the
 * catalog's order: what watching free space needs, at a few index seeks a
 * volume instead of a pass over the whole catalog. */
int catalog_list_oldest(Catalog *c, CatalogSnapshot **ret, size_t *ret_n);
int catalog_list_sets(Catalog *c, CatalogSet **ret, size_t *ret_n);
/* Snapshots (finished or being made) of a volume. */
int catalog_count_volume_snapshots(Catalog *c, const char *volume, uint64_t *ret);

/* A revert's intent (docs/RELIABILITY.md): recorded, and synced, before
 * the provider first touches the volume; dropped when the revert is done or
 * refused having changed nothing. One per volume. */
typedef struct CatalogRevert {
	vss_id snapshot_id;
	char *volume;
	vss_id provider_id;
	char *provider_name;
	char *snapshot_path;
	char *provider_data;
	bool force_unmount;
	char *plan;
	int64_t snapshot_created_us; /* the reverted snapshot's point in time */
	int64_t started_us;
} CatalogRevert;

/* -EEXIST when the volume or the snapshot has one already. */
int catalog_begin_revert(Catalog *c, const CatalogRevert *r);
/* The revert is done: its row goes; the volume's snapshots newer than the
 * reverted one get note (unless they have one); and with snapshot_consumed
 * the reverted snapshot's row goes too (its set's with it when it was the
 * last). One transaction. */
int catalog_finish_revert(Catalog *c, const CatalogRevert *r, bool snapshot_consumed, const char *note);
/* The revert changed nothing (refused): its row goes. */
int catalog_drop_revert(Catalog *c, const vss_id *snapshot_id);
int catalog_list_reverts(Catalog *c, CatalogRevert **ret, size_t *ret_n);
void catalog_revert_clear(CatalogRevert *r);
void catalog_reverts_free(CatalogRevert *r, size_t n);

void catalog_snapshot_clear(CatalogSnapshot *s);
void catalog_snapshots_free(CatalogSnapshot *s, size_t n);
void catalog_set_clear(CatalogSet *s);
void catalog_sets_free(CatalogSet *s, size_t n);
