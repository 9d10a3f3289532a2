/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/types.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/fault.h"
#include "vssd/catalog.h"
#include "tests.h"

static char tmpdir[] = "/tmp/vss-test-catalog-XXXXXX";
static char db_path[sizeof(tmpdir) + 32];
static bool tmpdir_made;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Also run from a failed assertion, so that a failure leaves no litter. */
static void remove_tmpdir(void)
{
	if (tmpdir_made && nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0)
		tmpdir_made = false;
}

/* Expected failures are logged by the catalog; keep them out of the test
 * log so that what remains there is worth reading. */
static void expect_errors(bool expect)
{
	static int saved = -1;

	if (expect) {
		saved = log_get_max_level();
		log_set_max_level(LOG_CRIT);
	} else if (saved >= 0) {
		log_set_max_level(saved);
	}
}

static vss_id make_id(uint8_t tag, uint8_t n)
{
	vss_id id = VSS_ID_NULL;

	id.bytes[0] = tag;
	id.bytes[15] = n;
	/* Non-trivial bytes in the middle catch a truncated text form. */
	id.bytes[7] = 0xa5;
	return id;
}

static const vss_id provider_id = { { 0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71,
				       0x82, 0x93, 0xa4, 0xb5, 0xc6, 0xd7, 0xe8, 0xf9 } };

/* Set 1: three volumes, begun and then finished. */
#define SET1_STARTED 1700000000000000LL
#define SET1_CREATED 1700000000123456LL
static const char *const set1_volumes[3] = { "/srv/a", "/srv/b", "/srv/c" };

static CatalogSet set1(void)
{
	return (CatalogSet){
		.id = make_id(0x51, 1),
		.context = VSS_CTX_APP_ROLLBACK | VSS_VOLSNAP_ATTR_DIFFERENTIAL,
		.state = SET_CREATING,
		.snapshots_count = 3,
		.started_us = SET1_STARTED,
		/* Values the outcome fills in: begin must not record them
		 * yet, finish must. */
		.created_us = SET1_CREATED,
		.prepare_us = 1111,
		.flush_us = 2222,
		.hold_window_us = 3333,
		.total_us = 4444,
		.consistency = (char *)"crash-consistent set",
		/* Above INT32_MAX: the uid column must not sign-truncate. */
		.requestor_uid = 4000000000u,
		.requestor_pid = 4242,
	};
}

static void fill_snapshot(CatalogSnapshot *s, const vss_id *set_id, int32_t context, unsigned i,
			  const char *volume, bool finished)
{
	static char paths[3][64], data[3][64];

	snprintf(paths[i], sizeof(paths[i]), "%s/.snapshots/%u%s", volume, i, finished ? "-final" : "");
	snprintf(data[i], sizeof(data[i]), "{\"subvol\":%u,\"done\":%s}", 256 + i, finished ? "true" : "false");
	*s = (CatalogSnapshot){
		.prop = {
			.snapshot_id = make_id(0xa0, (uint8_t)(i + 1)),
			.snapshot_set_id = *set_id,
			.snapshots_count = 3,
			.snapshot_device_object = paths[i],
			.original_volume_name = (char *)volume,
			.originating_machine = (char *)"host-a.example",
			.service_machine = (char *)"host-b.example",
			/* Only one member is exposed: NULL must stay NULL. */
			.exposed_name = i == 1 ? (char *)"X:" : NULL,
			.exposed_path = i == 1 ? (char *)"/mnt/exposed" : NULL,
			.provider_id = provider_id,
			.snapshot_attributes = context | (finished ? VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY : 0),
			.status = finished ? VSS_SS_CREATED : VSS_SS_PREPARING,
		},
		.provider_name = (char *)"btrfs",
		.provider_data = data[i],
		.context = context,
	};
}

static void set1_snapshots(CatalogSnapshot snaps[3], bool finished)
{
	CatalogSet s = set1();

	for (unsigned i = 0; i < 3; i++)
		fill_snapshot(&snaps[i], &s.id, s.context, i, set1_volumes[i], finished);
}

/* Compare what the catalog gives back with what was stored, field by field. */
static void check_snapshot(const CatalogSnapshot *want, const CatalogSet *set, const CatalogSnapshot *got,
			   bool finished)
{
	ASSERT_ID_EQ(&want->prop.snapshot_id, &got->prop.snapshot_id);
	ASSERT_ID_EQ(&set->id, &got->prop.snapshot_set_id);
	ASSERT_EQ_INT(set->snapshots_count, got->prop.snapshots_count);
	ASSERT_STREQ(want->prop.snapshot_device_object, got->prop.snapshot_device_object);
	ASSERT_STREQ(want->prop.original_volume_name, got->prop.original_volume_name);
	ASSERT_STREQ(want->prop.originating_machine, got->prop.originating_machine);
	ASSERT_STREQ(want->prop.service_machine, got->prop.service_machine);
	ASSERT_STREQ(want->prop.exposed_name, got->prop.exposed_name);
	ASSERT_STREQ(want->prop.exposed_path, got->prop.exposed_path);
	ASSERT_ID_EQ(&want->prop.provider_id, &got->prop.provider_id);
	ASSERT_EQ_INT(want->prop.snapshot_attributes, got->prop.snapshot_attributes);
	ASSERT_EQ_INT(want->prop.status, got->prop.status);
	/* The set's point in time and timings are the snapshot's. */
	ASSERT_EQ_INT(finished ? set->created_us : 0, got->prop.creation_timestamp);
	ASSERT_EQ_UINT(finished ? set->hold_window_us : 0, got->prop.hold_window_us);
	ASSERT_STREQ(finished ? set->consistency : NULL, got->prop.consistency);
	ASSERT_STREQ(want->provider_name, got->provider_name);
	ASSERT_STREQ(want->provider_data, got->provider_data);
	ASSERT_EQ_INT(set->context, got->context);
	ASSERT_EQ_INT(finished ? SET_CREATED : SET_CREATING, got->set_state);
}

static void check_set(const CatalogSet *want, const CatalogSet *got, bool finished)
{
	ASSERT_ID_EQ(&want->id, &got->id);
	ASSERT_EQ_INT(want->context, got->context);
	ASSERT_EQ_INT(finished ? SET_CREATED : SET_CREATING, got->state);
	ASSERT_EQ_INT(want->snapshots_count, got->snapshots_count);
	ASSERT_EQ_INT(want->started_us, got->started_us);
	ASSERT_EQ_INT(finished ? want->created_us : 0, got->created_us);
	ASSERT_EQ_UINT(finished ? want->prepare_us : 0, got->prepare_us);
	ASSERT_EQ_UINT(finished ? want->flush_us : 0, got->flush_us);
	ASSERT_EQ_UINT(finished ? want->hold_window_us : 0, got->hold_window_us);
	ASSERT_EQ_UINT(finished ? want->total_us : 0, got->total_us);
	ASSERT_STREQ(finished ? want->consistency : NULL, got->consistency);
	ASSERT_EQ_UINT(want->requestor_uid, got->requestor_uid);
	ASSERT_EQ_INT(want->requestor_pid, got->requestor_pid);
}

static size_t list(Catalog *c, const CatalogFilter *f, CatalogSnapshot **ret)
{
	size_t n = 12345;

	*ret = NULL;
	ASSERT_OK(catalog_list_snapshots(c, f, ret, &n));
	return n;
}

static size_t count_list(Catalog *c, const CatalogFilter *f)
{
	CatalogSnapshot *l;
	size_t n = list(c, f, &l);

	catalog_snapshots_free(l, n);
	return n;
}

static uint64_t count_volume(Catalog *c, const char *volume)
{
	uint64_t n = 12345;

	ASSERT_OK(catalog_count_volume_snapshots(c, volume, &n));
	return n;
}

static void check_set1(Catalog *c, bool finished)
{
	CatalogSet want = set1(), *sets = NULL;
	CatalogSnapshot snaps[3], *l;
	CatalogFilter all = { .include_creating = true };
	size_t n, n_sets = 0;

	set1_snapshots(snaps, finished);
	n = list(c, &all, &l);
	ASSERT_EQ_UINT(3, n);
	/* In the order they were added. */
	for (size_t i = 0; i < n; i++)
		check_snapshot(&snaps[i], &want, &l[i], finished);
	catalog_snapshots_free(l, n);

	/* A set being made is hidden unless asked for. */
	ASSERT_EQ_UINT(finished ? 3 : 0, count_list(c, NULL));
	ASSERT_EQ_UINT(finished ? 3 : 0, count_list(c, &(CatalogFilter){ 0 }));

	ASSERT_OK(catalog_list_sets(c, &sets, &n_sets));
	ASSERT_EQ_UINT(1, n_sets);
	check_set(&want, &sets[0], finished);
	catalog_sets_free(sets, n_sets);

	for (unsigned i = 0; i < 3; i++)
		ASSERT_EQ_UINT(1, count_volume(c, set1_volumes[i]));
}

static void test_open_errors(void)
{
	char path[sizeof(db_path) + 32];
	Catalog *c = NULL;
	sqlite3 *db;

	/* A directory that does not exist. */
	snprintf(path, sizeof(path), "%s/missing/catalog.db", tmpdir);
	expect_errors(true);
	ASSERT_TRUE(catalog_open(path, &c) < 0);
	ASSERT_NULL(c);

	/* A catalog written by a newer vssd must not be touched. */
	snprintf(path, sizeof(path), "%s/newer.db", tmpdir);
	ASSERT_EQ_INT(SQLITE_OK, sqlite3_open(path, &db));
	ASSERT_EQ_INT(SQLITE_OK, sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL));
	sqlite3_close(db);
	ASSERT_ERRNO(-EPROTO, catalog_open(path, &c));
	expect_errors(false);
	ASSERT_NULL(c);
}

static void test_empty(Catalog *c)
{
	CatalogSnapshot *l = NULL;
	CatalogSet *sets = NULL;
	size_t n = 1;

	ASSERT_EQ_UINT(0, list(c, &(CatalogFilter){ .include_creating = true }, &l));
	ASSERT_OK(catalog_list_sets(c, &sets, &n));
	ASSERT_EQ_UINT(0, n);
	catalog_sets_free(sets, n);
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/a"));
}

static void test_begin_and_finish(Catalog *c)
{
	CatalogSet s = set1();
	CatalogSnapshot snaps[3];

	set1_snapshots(snaps, false);
	ASSERT_OK(catalog_begin_set(c, &s, snaps, 3));
	check_set1(c, false);

	/* The same set again is refused, and the refusal changes nothing. */
	expect_errors(true);
	ASSERT_ERRNO(-EEXIST, catalog_begin_set(c, &s, snaps, 3));
	expect_errors(false);
	check_set1(c, false);

	set1_snapshots(snaps, true);
	ASSERT_OK(catalog_finish_set(c, &s, snaps, 3));
	check_set1(c, true);
}

/* A begin that fails half-way leaves nothing: the catalog must never claim
 * a set whose members it does not list. */
static void test_begin_is_atomic(Catalog *c)
{
	CatalogSet s = set1();
	CatalogSnapshot snaps[2];
	CatalogSet *sets = NULL;
	size_t n_sets = 0;

	s.id = make_id(0x52, 9);
	s.snapshots_count = 2;
	fill_snapshot(&snaps[0], &s.id, s.context, 0, "/srv/z", false);
	snaps[0].prop.snapshot_id = make_id(0xb0, 1);
	/* The second member reuses a snapshot id of set 1. */
	fill_snapshot(&snaps[1], &s.id, s.context, 1, "/srv/z2", false);
	expect_errors(true);
	ASSERT_ERRNO(-EEXIST, catalog_begin_set(c, &s, snaps, 2));
	expect_errors(false);

	ASSERT_OK(catalog_list_sets(c, &sets, &n_sets));
	ASSERT_EQ_UINT(1, n_sets);
	catalog_sets_free(sets, n_sets);
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/z"));
	check_set1(c, true);
}

/* Set 2 is newer than set 1 and stays "creating"; set 3 is older than both
 * though recorded last, to check the order is by time, not by insertion. */
static void add_more_sets(Catalog *c)
{
	CatalogSet s2 = set1(), s3 = set1();
	CatalogSnapshot a, b, d;

	s2.id = make_id(0x52, 2);
	s2.snapshots_count = 2;
	s2.started_us = SET1_STARTED + 1000000;
	s2.context = VSS_CTX_BACKUP;
	fill_snapshot(&a, &s2.id, s2.context, 0, "/srv/a", false);
	a.prop.snapshot_id = make_id(0xa2, 1);
	fill_snapshot(&b, &s2.id, s2.context, 1, "/srv/d", false);
	b.prop.snapshot_id = make_id(0xa2, 2);
	ASSERT_OK(catalog_begin_set(c, &s2, (CatalogSnapshot[]){ a, b }, 2));

	s3.id = make_id(0x53, 3);
	s3.snapshots_count = 1;
	s3.started_us = SET1_STARTED - 1000000;
	s3.created_us = SET1_STARTED - 999000;
	s3.consistency = NULL;
	fill_snapshot(&d, &s3.id, s3.context, 2, "/srv/a", false);
	d.prop.snapshot_id = make_id(0xa3, 1);
	ASSERT_OK(catalog_begin_set(c, &s3, &d, 1));
	fill_snapshot(&d, &s3.id, s3.context, 2, "/srv/a", true);
	d.prop.snapshot_id = make_id(0xa3, 1);
	ASSERT_OK(catalog_finish_set(c, &s3, &d, 1));
}

static void test_order_counts_and_filters(Catalog *c)
{
	vss_id id1 = make_id(0x51, 1), id2 = make_id(0x52, 2), id3 = make_id(0x53, 3);
	vss_id snap_b = make_id(0xa0, 2), snap_s2 = make_id(0xa2, 2), unknown = make_id(0xee, 0xee);
	CatalogSnapshot *l;
	CatalogSet *sets;
	size_t n;

	/* Oldest set first: set 3, set 1 (three members), then set 2. */
	n = list(c, &(CatalogFilter){ .include_creating = true }, &l);
	ASSERT_EQ_UINT(6, n);
	ASSERT_ID_EQ(&id3, &l[0].prop.snapshot_set_id);
	ASSERT_NULL(l[0].prop.consistency);
	ASSERT_EQ_INT(SET1_STARTED - 999000, l[0].prop.creation_timestamp);
	for (size_t i = 1; i < 4; i++)
		ASSERT_ID_EQ(&id1, &l[i].prop.snapshot_set_id);
	ASSERT_ID_EQ(&id2, &l[4].prop.snapshot_set_id);
	ASSERT_ID_EQ(&id2, &l[5].prop.snapshot_set_id);
	ASSERT_EQ_INT(SET_CREATING, l[5].set_state);
	ASSERT_EQ_INT(VSS_CTX_BACKUP, l[5].context);
	ASSERT_EQ_INT(2, l[5].prop.snapshots_count);
	catalog_snapshots_free(l, n);

	ASSERT_OK(catalog_list_sets(c, &sets, &n));
	ASSERT_EQ_UINT(3, n);
	ASSERT_ID_EQ(&id3, &sets[0].id);
	ASSERT_ID_EQ(&id1, &sets[1].id);
	ASSERT_ID_EQ(&id2, &sets[2].id);
	ASSERT_EQ_INT(SET_CREATED, sets[0].state);
	ASSERT_EQ_INT(SET_CREATED, sets[1].state);
	ASSERT_EQ_INT(SET_CREATING, sets[2].state);
	catalog_sets_free(sets, n);

	/* Without creating sets, set 2 is invisible. */
	ASSERT_EQ_UINT(4, count_list(c, NULL));

	/* Counting includes snapshots still being made. */
	ASSERT_EQ_UINT(3, count_volume(c, "/srv/a"));
	ASSERT_EQ_UINT(1, count_volume(c, "/srv/b"));
	ASSERT_EQ_UINT(1, count_volume(c, "/srv/c"));
	ASSERT_EQ_UINT(1, count_volume(c, "/srv/d"));
	ASSERT_EQ_UINT(0, count_volume(c, "/srv"));
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/a/"));

	/* By set. */
	ASSERT_EQ_UINT(3, count_list(c, &(CatalogFilter){ .set_id = &id1 }));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .set_id = &id2 }));
	ASSERT_EQ_UINT(2, count_list(c, &(CatalogFilter){ .set_id = &id2, .include_creating = true }));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .set_id = &unknown, .include_creating = true }));

	/* By snapshot. */
	n = list(c, &(CatalogFilter){ .snapshot_id = &snap_b }, &l);
	ASSERT_EQ_UINT(1, n);
	ASSERT_ID_EQ(&snap_b, &l[0].prop.snapshot_id);
	ASSERT_STREQ("/srv/b", l[0].prop.original_volume_name);
	catalog_snapshots_free(l, n);
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .snapshot_id = &snap_s2 }));
	ASSERT_EQ_UINT(1, count_list(c, &(CatalogFilter){ .snapshot_id = &snap_s2, .include_creating = true }));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .snapshot_id = &unknown, .include_creating = true }));

	/* By volume, exact match only. */
	n = list(c, &(CatalogFilter){ .volume = "/srv/a" }, &l);
	ASSERT_EQ_UINT(2, n);
	ASSERT_ID_EQ(&id3, &l[0].prop.snapshot_set_id);
	ASSERT_ID_EQ(&id1, &l[1].prop.snapshot_set_id);
	for (size_t i = 0; i < n; i++)
		ASSERT_STREQ("/srv/a", l[i].prop.original_volume_name);
	catalog_snapshots_free(l, n);
	ASSERT_EQ_UINT(3, count_list(c, &(CatalogFilter){ .volume = "/srv/a", .include_creating = true }));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .volume = "/srv" }));

	/* Filters combine with AND. */
	ASSERT_EQ_UINT(1, count_list(c, &(CatalogFilter){ .set_id = &id1, .volume = "/srv/a" }));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .set_id = &id1, .volume = "/srv/d",
							   .include_creating = true }));
	ASSERT_EQ_UINT(1, count_list(c, &(CatalogFilter){ .set_id = &id1, .snapshot_id = &snap_b }));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .set_id = &id3, .snapshot_id = &snap_b }));
}

/* Pages of every size, each resumed after the last row of the one before,
 * give every row once and in the order of the whole list, whatever the
 * filter; a position's text form reads back as itself. */
static void test_pages(Catalog *c)
{
	static const CatalogFilter filters[] = {
		{ .include_creating = true },
		{ 0 },
		{ .volume = "/srv/a", .include_creating = true },
	};
	char text[CATALOG_POSITION_MAX];
	CatalogPosition back;

	for (size_t f = 0; f < ELEMENTSOF(filters); f++) {
		CatalogSnapshot *whole;
		size_t n_whole = list(c, &filters[f], &whole);

		ASSERT_TRUE(n_whole > 1);
		for (size_t limit = 1; limit <= n_whole + 1; limit++) {
			CatalogPosition after;
			size_t seen = 0;
			bool more = true, first = true;

			while (more) {
				CatalogFilter page = filters[f];
				CatalogSnapshot *l = NULL;
				CatalogPosition next;
				size_t n = 0;

				page.after = first ? NULL : &after;
				page.limit = limit;
				ASSERT_OK(catalog_list_page(c, &page, &l, &n, &next, &more));
				ASSERT_TRUE(n <= limit);
				ASSERT_EQ_INT(n == limit, more);
				for (size_t i = 0; i < n; i++, seen++) {
					ASSERT_TRUE(seen < n_whole);
					ASSERT_ID_EQ(&whole[seen].prop.snapshot_id, &l[i].prop.snapshot_id);
				}
				catalog_snapshots_free(l, n);
				/* Through the text form, as a client hands it back. */
				if (more) {
					ASSERT_OK(catalog_position_parse(catalog_position_format(&next, text), &after));
					ASSERT_EQ_INT(next.started_us, after.started_us);
					ASSERT_ID_EQ(&next.set_id, &after.set_id);
					ASSERT_EQ_INT(next.row, after.row);
				}
				first = false;
			}
			ASSERT_EQ_UINT(n_whole, seen);
		}
		catalog_snapshots_free(whole, n_whole);
	}

	/* Negative starts (a clock before 1970) survive the text form. */
	ASSERT_OK(catalog_position_parse(catalog_position_format(&(CatalogPosition){ .started_us = -5, .row = 7 }, text),
					 &back));
	ASSERT_EQ_INT(-5, back.started_us);
	ASSERT_EQ_INT(7, back.row);
	{
		static const char *const bad[] = {
			"", ":", "1::2", "x:{00000000-0000-0000-0000-000000000000}:1",
			"1:{00000000-0000-0000-0000-000000000000}:", "1:{00000000-0000-0000-0000-000000000000}:-1",
			"1:{00000000-0000-0000-0000-000000000000}:1x", "1:nope:1", "1 :{00000000-0000-0000-0000-000000000000}:1",
		};

		for (size_t i = 0; i < ELEMENTSOF(bad); i++)
			ASSERT_ERRNO(-EINVAL, catalog_position_parse(bad[i], &back));
	}
}

/* Each volume's first finished snapshot in insertion order (its row), the
 * volumes in the catalog's order. */
static void test_oldest(Catalog *c)
{
	CatalogSnapshot *whole, *l = NULL;
	size_t n_whole = list(c, NULL, &whole), n = 0, k = 0;

	ASSERT_OK(catalog_list_oldest(c, &l, &n));
	/* In the whole list's order, each volume's row of the smallest rowid. */
	for (size_t i = 0; i < n_whole; i++) {
		bool first = true;

		for (size_t j = 0; j < n_whole; j++)
			if (streq(whole[j].prop.original_volume_name, whole[i].prop.original_volume_name) &&
			    whole[j].position.row < whole[i].position.row)
				first = false;
		if (!first)
			continue;
		ASSERT_TRUE(k < n);
		ASSERT_ID_EQ(&whole[i].prop.snapshot_id, &l[k].prop.snapshot_id);
		ASSERT_STREQ(whole[i].prop.snapshot_device_object, l[k].prop.snapshot_device_object);
		k++;
	}
	ASSERT_EQ_UINT(k, n);
	catalog_snapshots_free(l, n);
	catalog_snapshots_free(whole, n_whole);
}

static bool set_exists(Catalog *c, const vss_id *id)
{
	CatalogSet *sets;
	size_t n;
	bool found = false;

	ASSERT_OK(catalog_list_sets(c, &sets, &n));
	for (size_t i = 0; i < n; i++)
		if (vss_id_equal(&sets[i].id, id))
			found = true;
	catalog_sets_free(sets, n);
	return found;
}

static void test_delete(Catalog *c)
{
	vss_id id1 = make_id(0x51, 1), id2 = make_id(0x52, 2), id3 = make_id(0x53, 3);
	vss_id snap_a = make_id(0xa0, 1), snap_s3 = make_id(0xa3, 1), unknown = make_id(0xee, 0xee);
	vss_id snap_s2a = make_id(0xa2, 1), snap_s2b = make_id(0xa2, 2);
	CatalogSnapshot *l;
	size_t n;

	/* One member of a set of three: the set stays with the other two. */
	ASSERT_OK(catalog_delete_snapshot(c, &snap_a));
	ASSERT_TRUE(set_exists(c, &id1));
	n = list(c, &(CatalogFilter){ .set_id = &id1 }, &l);
	ASSERT_EQ_UINT(2, n);
	ASSERT_STREQ("/srv/b", l[0].prop.original_volume_name);
	ASSERT_STREQ("/srv/c", l[1].prop.original_volume_name);
	/* The set keeps the count it was made with. */
	ASSERT_EQ_INT(3, l[0].prop.snapshots_count);
	catalog_snapshots_free(l, n);
	ASSERT_EQ_UINT(2, count_volume(c, "/srv/a"));

	/* The only member of set 3: the set row goes with it. */
	ASSERT_OK(catalog_delete_snapshot(c, &snap_s3));
	ASSERT_FALSE(set_exists(c, &id3));
	ASSERT_EQ_UINT(1, count_volume(c, "/srv/a"));

	/* Deleting what is not there is not an error, and removes nothing. */
	ASSERT_OK(catalog_delete_snapshot(c, &unknown));
	ASSERT_OK(catalog_delete_set(c, &unknown));
	ASSERT_EQ_UINT(4, count_list(c, &(CatalogFilter){ .include_creating = true }));

	/* A whole set takes its snapshots with it. */
	ASSERT_OK(catalog_delete_set(c, &id1));
	ASSERT_FALSE(set_exists(c, &id1));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .set_id = &id1, .include_creating = true }));
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/b"));
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/c"));
	ASSERT_TRUE(set_exists(c, &id2));
	ASSERT_EQ_UINT(2, count_list(c, &(CatalogFilter){ .include_creating = true }));
	ASSERT_EQ_UINT(1, count_volume(c, "/srv/a"));

	/* Set 2, one member at a time: the set stays until its last
	 * snapshot goes, then the row goes too. */
	ASSERT_OK(catalog_delete_snapshot(c, &snap_s2a));
	ASSERT_TRUE(set_exists(c, &id2));
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/a"));
	ASSERT_EQ_UINT(1, count_volume(c, "/srv/d"));
	ASSERT_OK(catalog_delete_snapshot(c, &snap_s2b));
	ASSERT_FALSE(set_exists(c, &id2));
	ASSERT_EQ_UINT(0, count_list(c, &(CatalogFilter){ .include_creating = true }));
	ASSERT_EQ_UINT(0, count_volume(c, "/srv/d"));
}

/* A snapshot gone from disk whose row cannot be deleted is hidden from then
 * on, and its row deleted at a later listing. */
static void test_delete_not_recorded(Catalog *c)
{
	static const CatalogFilter every = { .include_creating = true };
	CatalogSet s = set1();
	CatalogSnapshot snaps[3];
	FaultTable *t = NULL;
	Catalog *other = NULL;

	set1_snapshots(snaps, true);
	ASSERT_OK(catalog_begin_set(c, &s, snaps, 3));
	ASSERT_OK(catalog_finish_set(c, &s, snaps, 3));
	/* The deletion fails, and so does its first retry. */
	ASSERT_OK(fault_table_parse("catalog:1:EIO,catalog:2:EIO", &t));
	fault_table_set_global(t);
	ASSERT_EQ_INT(-EIO, catalog_delete_snapshot(c, &snaps[0].prop.snapshot_id));
	ASSERT_EQ_UINT(2, count_list(c, &every));
	ASSERT_EQ_UINT(2, count_list(c, &every));
	fault_table_set_global(NULL);
	fault_table_free(t);
	/* Gone from the file too, not only from this handle's view. */
	ASSERT_OK(catalog_open(db_path, &other));
	ASSERT_EQ_UINT(2, count_list(other, &every));
	ASSERT_NULL(catalog_close(other));
	ASSERT_OK(catalog_delete_set(c, &s.id));
}

static Catalog *reopen(Catalog *c)
{
	Catalog *n = NULL;

	catalog_close(c);
	ASSERT_OK(catalog_open(db_path, &n));
	ASSERT_NOT_NULL(n);
	return n;
}

/* Make tmpdir/name by hand, as another program could, into path. */
static void db_make(const char *name, const char *sql, char *path, size_t size)
{
	sqlite3 *db;

	snprintf(path, size, "%s/%s", tmpdir, name);
	ASSERT_EQ_INT(SQLITE_OK, sqlite3_open(path, &db));
	ASSERT_EQ_INT(SQLITE_OK, sqlite3_exec(db, sql, NULL, NULL, NULL));
	sqlite3_close(db);
}

/* The sets table as the first schema had it. */
#define SETS_V1                                                                                   \
	"CREATE TABLE sets (id TEXT PRIMARY KEY, context INTEGER NOT NULL, state TEXT NOT NULL,"   \
	" snapshots_count INTEGER NOT NULL, started_us INTEGER NOT NULL,"                          \
	" created_us INTEGER NOT NULL DEFAULT 0, prepare_us INTEGER NOT NULL DEFAULT 0,"           \
	" flush_us INTEGER NOT NULL DEFAULT 0, hold_window_us INTEGER NOT NULL DEFAULT 0,"         \
	" total_us INTEGER NOT NULL DEFAULT 0, consistency TEXT,"                                  \
	" requestor_uid INTEGER NOT NULL, requestor_pid INTEGER NOT NULL);"

/* A catalog of the first schema gains the storage table and keeps its rows. */
static void test_upgrade_from_version_1(void)
{
	char path[sizeof(db_path) + 32];
	Catalog *c = NULL;
	char **volumes = NULL;
	int64_t *maximums = NULL;
	size_t n = 99;

	db_make("v1.db",
		SETS_V1
		"PRAGMA user_version=1",
		path, sizeof(path));
	ASSERT_OK(catalog_open(path, &c));
	ASSERT_OK(catalog_storage(c, &volumes, &maximums, &n));
	ASSERT_EQ_UINT(0, n);
	strv_free(volumes);
	free(maximums);
	ASSERT_NULL(catalog_close(c));
}

/* A catalog of version 2 gains the reverts table and the snapshots' note,
 * and its rows list as before. */
static void test_upgrade_from_version_2(void)
{
	char path[sizeof(tmpdir) + 32];
	CatalogSnapshot *snaps = NULL;
	CatalogRevert *reverts = NULL;
	Catalog *c = NULL;
	size_t n = 99;

	db_make("v2.db",
		SETS_V1
		"CREATE TABLE snapshots (id TEXT PRIMARY KEY, set_id TEXT NOT NULL REFERENCES sets(id) ON DELETE CASCADE,"
		" volume TEXT NOT NULL, snapshot_path TEXT NOT NULL, provider_id TEXT NOT NULL, provider TEXT NOT NULL,"
		" provider_data TEXT, attributes INTEGER NOT NULL, state INTEGER NOT NULL,"
		" originating_machine TEXT NOT NULL, service_machine TEXT NOT NULL, exposed_name TEXT, exposed_path TEXT);"
		"INSERT INTO sets VALUES ('{51000000-0000-00a5-0000-000000000001}', 1, 'created', 1, 1, 2, 0, 0, 0, 0,"
		" 'crash-consistent per volume', 0, 1);"
		"INSERT INTO snapshots VALUES ('{a0000000-0000-00a5-0000-000000000001}',"
		" '{51000000-0000-00a5-0000-000000000001}', '/srv/v2', '/srv/v2/.vss/x',"
		" '{9a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}', 'btrfs', NULL, 0, 12, 'h', 'h', NULL, NULL);"
		"PRAGMA user_version=2",
		path, sizeof(path));
	ASSERT_OK(catalog_open(path, &c));
	ASSERT_OK(catalog_list_snapshots(c, NULL, &snaps, &n));
	ASSERT_EQ_UINT(1, n);
	ASSERT_STREQ("crash-consistent per volume", snaps[0].prop.consistency);
	catalog_snapshots_free(snaps, n);
	ASSERT_OK(catalog_list_reverts(c, &reverts, &n));
	ASSERT_EQ_UINT(0, n);
	free(reverts);
	ASSERT_NULL(catalog_close(c));
	/* Opened again: nothing to add. */
	ASSERT_OK(catalog_open(path, &c));
	ASSERT_NULL(catalog_close(c));
}

/* The maximum of a volume: set, replaced, listed with the volumes that have
 * snapshots, and removed by a negative value. */
static void test_storage(Catalog *c)
{
	char **volumes = NULL;
	int64_t *maximums = NULL, one = 0;
	size_t n = 0;

	ASSERT_OK(catalog_set_storage_maximum(c, "/srv/quota", 1000));
	ASSERT_OK(catalog_set_storage_maximum(c, "/srv/quota", 2000));
	ASSERT_OK(catalog_storage_maximum(c, "/srv/quota", &one));
	ASSERT_EQ_INT(2000, one);
	ASSERT_OK(catalog_storage_maximum(c, "/srv/a", &one));
	ASSERT_EQ_INT(-1, one);
	ASSERT_OK(catalog_storage(c, &volumes, &maximums, &n));
	ASSERT_TRUE(n >= 1);
	for (size_t i = 0; i < n; i++) {
		if (streq(volumes[i], "/srv/quota"))
			ASSERT_EQ_INT(2000, maximums[i]);
		else
			ASSERT_EQ_INT(-1, maximums[i]);
	}
	strv_free(volumes);
	free(maximums);

	ASSERT_OK(catalog_set_storage_maximum(c, "/srv/quota", -1));
	ASSERT_OK(catalog_storage_maximum(c, "/srv/quota", &one));
	ASSERT_EQ_INT(-1, one);
	ASSERT_OK(catalog_storage(c, &volumes, &maximums, &n));
	for (size_t i = 0; i < n; i++)
		ASSERT_FALSE(streq(volumes[i], "/srv/quota"));
	strv_free(volumes);
	free(maximums);
}

/* Rows vssd never writes, as a catalog edited by hand or by another program
 * may hold: each listing refuses them with -EBADMSG (found by fuzz-catalog:
 * a storage row without a volume crashed catalog_storage()). */
static void test_garbage_rows(void)
{
	char path[sizeof(db_path) + 32];
	CatalogSnapshot *snaps = NULL;
	CatalogSet *sets = NULL;
	char **volumes = NULL;
	int64_t *maximums = NULL;
	Catalog *c = NULL;
	size_t n = 0;

	/* SQLite lets a TEXT PRIMARY KEY be NULL. */
	snprintf(path, sizeof(path), "%s/null-volume.db", tmpdir);
	ASSERT_OK(catalog_open(path, &c));
	db_make("null-volume.db", "INSERT INTO storage (volume, maximum) VALUES (NULL, 1)", path, sizeof(path));
	expect_errors(true);
	ASSERT_ERRNO(-EBADMSG, catalog_storage(c, &volumes, &maximums, &n));
	expect_errors(false);
	ASSERT_NULL(volumes);
	ASSERT_NULL(maximums);
	ASSERT_NULL(catalog_close(c));

	/* Tables of the same names without vssd's constraints. */
	db_make("loose.db",
		"CREATE TABLE sets (id, context, state, snapshots_count, started_us, created_us, prepare_us, flush_us,"
		" hold_window_us, total_us, consistency, requestor_uid, requestor_pid);"
		"CREATE TABLE snapshots (id, set_id, volume, snapshot_path, provider_id, provider, provider_data,"
		" attributes, state, originating_machine, service_machine, exposed_name, exposed_path);"
		"INSERT INTO sets (id, state) VALUES ('s', 'created');"
		"INSERT INTO snapshots (id, set_id, volume, provider) VALUES ('x', 's', '/srv', 'btrfs');",
		path, sizeof(path));
	ASSERT_OK(catalog_open(path, &c));
	expect_errors(true);
	ASSERT_ERRNO(-EBADMSG, catalog_list_snapshots(c, NULL, &snaps, &n));
	expect_errors(false);
	ASSERT_NULL(snaps);
	ASSERT_NULL(catalog_close(c));

	/* An id that does not parse is refused, not read as the null id. */
	snprintf(path, sizeof(path), "%s/bad-id.db", tmpdir);
	ASSERT_OK(catalog_open(path, &c));
	ASSERT_NULL(catalog_close(c));
	db_make("bad-id.db",
		"INSERT INTO sets (id, context, state, snapshots_count, started_us, requestor_uid, requestor_pid)"
		" VALUES ('not-an-id', 0, 'created', 1, 1, 0, 1);"
		"INSERT INTO snapshots (id, set_id, volume, snapshot_path, provider_id, provider, attributes, state,"
		" originating_machine, service_machine) VALUES ('{11111111-1111-1111-1111-111111111111}',"
		" 'not-an-id', '/srv', '/srv/.vss/x', '{22222222-2222-2222-2222-222222222222}', 'btrfs', 0, 12, 'm', 'm')",
		path, sizeof(path));
	ASSERT_OK(catalog_open(path, &c));
	expect_errors(true);
	ASSERT_ERRNO(-EBADMSG, catalog_list_sets(c, &sets, &n));
	ASSERT_ERRNO(-EBADMSG, catalog_list_snapshots(c, NULL, &snaps, &n));
	expect_errors(false);
	ASSERT_NULL(sets);
	ASSERT_NULL(snaps);
	ASSERT_NULL(catalog_close(c));

	/* Likewise a provider id. */
	db_make("bad-id.db",
		"UPDATE sets SET id = '{33333333-3333-3333-3333-333333333333}';"
		"UPDATE snapshots SET set_id = '{33333333-3333-3333-3333-333333333333}', provider_id = 'btrfs'",
		path, sizeof(path));
	ASSERT_OK(catalog_open(path, &c));
	ASSERT_OK(catalog_list_sets(c, &sets, &n));
	ASSERT_EQ_UINT(1, n);
	catalog_sets_free(sets, n);
	sets = NULL;
	expect_errors(true);
	ASSERT_ERRNO(-EBADMSG, catalog_list_snapshots(c, NULL, &snaps, &n));
	expect_errors(false);
	ASSERT_NULL(snaps);
	ASSERT_NULL(catalog_close(c));
}

/* One set of one snapshot of volume, made at created_us. */
static void revert_set(Catalog *c, uint8_t n, const char *volume, int64_t created_us)
{
	char path[64];
	CatalogSet set = {
		.id = make_id(0x71, n),
		.context = VSS_CTX_APP_ROLLBACK,
		.snapshots_count = 1,
		.started_us = created_us - 10,
		.created_us = created_us,
		.consistency = (char *)"crash-consistent per volume",
	};
	CatalogSnapshot snap = {
		.prop = {
			.snapshot_id = make_id(0x72, n),
			.snapshot_set_id = set.id,
			.snapshots_count = 1,
			.snapshot_device_object = path,
			.original_volume_name = (char *)volume,
			.originating_machine = (char *)"h",
			.service_machine = (char *)"h",
			.provider_id = provider_id,
			.status = VSS_SS_CREATED,
		},
		.provider_name = (char *)"btrfs",
	};

	snprintf(path, sizeof(path), "%s/.vss/%u", volume, n);
	ASSERT_OK(catalog_begin_set(c, &set, &snap, 1));
	ASSERT_OK(catalog_finish_set(c, &set, &snap, 1));
}

static const char *consistency_of(Catalog *c, uint8_t n, CatalogSnapshot **keep)
{
	vss_id id = make_id(0x72, n);
	size_t k = list(c, &(CatalogFilter){ .snapshot_id = &id }, keep);

	return k == 1 ? (*keep)->prop.consistency : NULL;
}

/* A revert's intent: one per volume, listed with its plan until it is done;
 * done, the volume's later snapshots (only those) are noted, and a consumed
 * snapshot loses its row and its set. */
static void test_reverts(Catalog *c)
{
	CatalogRevert rv = {
		.snapshot_id = make_id(0x72, 2),
		.volume = (char *)"/srv/r",
		.provider_id = provider_id,
		.provider_name = (char *)"btrfs",
		.snapshot_path = (char *)"/srv/r/.vss/2",
		.force_unmount = true,
		.plan = (char *)"mount.target=/srv/r\nx=a\\nb\n",
		.snapshot_created_us = 2000,
		.started_us = 5000,
	};
	CatalogRevert other = rv, *got = NULL;
	CatalogSnapshot *snap = NULL;
	const char *text;
	size_t n = 99;

	revert_set(c, 1, "/srv/r", 1000);
	revert_set(c, 2, "/srv/r", 2000);
	revert_set(c, 3, "/srv/r", 3000);
	revert_set(c, 4, "/srv/r2", 4000);

	ASSERT_OK(catalog_begin_revert(c, &rv));
	other.snapshot_id = make_id(0x72, 3);
	expect_errors(true);
	ASSERT_ERRNO(-EEXIST, catalog_begin_revert(c, &other));
	expect_errors(false);
	c = reopen(c);
	ASSERT_OK(catalog_list_reverts(c, &got, &n));
	ASSERT_EQ_UINT(1, n);
	ASSERT_ID_EQ(&rv.snapshot_id, &got[0].snapshot_id);
	ASSERT_ID_EQ(&provider_id, &got[0].provider_id);
	ASSERT_STREQ("/srv/r", got[0].volume);
	ASSERT_STREQ(rv.plan, got[0].plan);
	ASSERT_NULL(got[0].provider_data);
	ASSERT_TRUE(got[0].force_unmount);
	ASSERT_EQ_INT(2000, got[0].snapshot_created_us);
	ASSERT_EQ_INT(5000, got[0].started_us);
	catalog_reverts_free(got, n);

	ASSERT_OK(catalog_finish_revert(c, &rv, false, "taken before the revert"));
	ASSERT_OK(catalog_list_reverts(c, &got, &n));
	ASSERT_EQ_UINT(0, n);
	free(got);
	ASSERT_STREQ("crash-consistent per volume", consistency_of(c, 1, &snap));
	catalog_snapshots_free(snap, 1);
	ASSERT_STREQ("crash-consistent per volume", consistency_of(c, 2, &snap));
	catalog_snapshots_free(snap, 1);
	text = consistency_of(c, 3, &snap);
	ASSERT_STREQ("crash-consistent per volume; taken before the revert", text);
	catalog_snapshots_free(snap, 1);
	ASSERT_STREQ("crash-consistent per volume", consistency_of(c, 4, &snap));
	catalog_snapshots_free(snap, 1);

	/* The first note stays. */
	rv.snapshot_id = make_id(0x72, 1);
	rv.snapshot_created_us = 1000;
	ASSERT_OK(catalog_begin_revert(c, &rv));
	ASSERT_OK(catalog_finish_revert(c, &rv, true, "second"));
	ASSERT_NULL(consistency_of(c, 1, &snap));
	free(snap);
	ASSERT_STREQ("crash-consistent per volume; second", consistency_of(c, 2, &snap));
	catalog_snapshots_free(snap, 1);
	ASSERT_STREQ("crash-consistent per volume; taken before the revert", consistency_of(c, 3, &snap));
	catalog_snapshots_free(snap, 1);
	for (uint8_t i = 1; i <= 4; i++) {
		vss_id set_id = make_id(0x71, i);

		ASSERT_TRUE(set_exists(c, &set_id) == (i != 1));
		if (i != 1)
			ASSERT_OK(catalog_delete_set(c, &set_id));
	}
	ASSERT_NULL(catalog_close(c));
}

int main(void)
{
	Catalog *c = NULL;

	ASSERT_NOT_NULL(mkdtemp(tmpdir));
	tmpdir_made = true;
	test_on_failure = remove_tmpdir;
	snprintf(db_path, sizeof(db_path), "%s/catalog.db", tmpdir);

	RUN_TEST(test_open_errors);
	RUN_TEST(test_upgrade_from_version_1);
	RUN_TEST(test_upgrade_from_version_2);
	RUN_TEST(test_garbage_rows);

	ASSERT_OK(catalog_open(db_path, &c));
	ASSERT_NOT_NULL(c);
	test_empty(c);
	RUN_TEST(test_begin_and_finish, c);

	/* Persistence: a new handle on the same file sees the same. */
	c = reopen(c);
	RUN_TEST(test_begin_is_atomic, c);
	check_set1(c, true);

	add_more_sets(c);
	RUN_TEST(test_order_counts_and_filters, c);
	c = reopen(c);
	RUN_TEST(test_order_counts_and_filters, c);
	RUN_TEST(test_pages, c);
	RUN_TEST(test_oldest, c);
	RUN_TEST(test_storage, c);

	RUN_TEST(test_delete, c);
	RUN_TEST(test_delete_not_recorded, c);
	c = reopen(c);
	test_empty(c);
	RUN_TEST(test_reverts, c);
	ASSERT_OK(catalog_open(db_path, &c));
	test_empty(c);
	ASSERT_NULL(catalog_close(c));

	remove_tmpdir();
	ASSERT_FALSE(tmpdir_made);
	TEST_SUMMARY();
	return 0;
}
