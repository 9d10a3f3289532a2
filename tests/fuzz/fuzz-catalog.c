/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The catalog's row decoding against rows vssd never wrote: a catalog
 * edited by hand, restored from elsewhere, or made by another program with
 * the same table names but without the constraints. Every listing must
 * either refuse or return what the types promise; none may crash.
 *
 * The input (tests/fuzz/README.md): a flags byte, the filter strings the
 * flags ask for, then rows: a table byte and, for each column, a type byte
 * and a value (NULL, integer, real, text, blob, or "the id number N").
 */

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include <vss/types.h>

#include "basic/id.h"
#include "basic/log.h"
#include "basic/util.h"
#include "fuzz.h"
#include "vssd/catalog.h"

#define DB_URI "file:fuzz-catalog?mode=memory&cache=shared"
#define MAX_ROWS 64

enum {
	LOOSE_SCHEMA = 1 << 0,     /* tables made without types or constraints */
	INCLUDE_CREATING = 1 << 1,
	FILTER_SET = 1 << 2,
	FILTER_SNAPSHOT = 1 << 3,
	FILTER_VOLUME = 1 << 4,
	NEWER_SCHEMA = 1 << 5,     /* a user_version above what vssd knows */
};

static const char *const insert[] = {
	"INSERT INTO sets (id, context, state, snapshots_count, started_us, created_us, prepare_us, flush_us,"
	" hold_window_us, total_us, consistency, requestor_uid, requestor_pid)"
	" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	"INSERT INTO snapshots (id, set_id, volume, snapshot_path, provider_id, provider, provider_data, attributes,"
	" state, originating_machine, service_machine, exposed_name, exposed_path)"
	" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	"INSERT INTO storage (volume, maximum) VALUES (?, ?)",
};

static const char loose_schema[] =
	"CREATE TABLE sets (id, context, state, snapshots_count, started_us, created_us, prepare_us, flush_us,"
	" hold_window_us, total_us, consistency, requestor_uid, requestor_pid);"
	"CREATE TABLE snapshots (id, set_id, volume, snapshot_path, provider_id, provider, provider_data,"
	" attributes, state, originating_machine, service_machine, exposed_name, exposed_path);"
	"CREATE TABLE storage (volume, maximum);";

/* The n-th id, so that rows of different tables can name each other. */
static vss_id nth_id(uint8_t n)
{
	vss_id id = { .bytes = { [15] = n } };

	return id;
}

static void bind_value(sqlite3_stmt *st, int i, FuzzInput *in)
{
	char buf[VSS_ID_STRING_MAX];
	int64_t v;
	double d;
	size_t n;

	switch (fuzz_u8(in) % 6) {
	case 0:
		sqlite3_bind_null(st, i);
		break;
	case 1:
		fuzz_bytes(in, &v, sizeof(v));
		sqlite3_bind_int64(st, i, v);
		break;
	case 2:
		fuzz_bytes(in, &d, sizeof(d));
		sqlite3_bind_double(st, i, d);
		break;
	case 3:
		sqlite3_bind_text(st, i, fuzz_string(in), -1, SQLITE_TRANSIENT);
		break;
	case 4:
		n = fuzz_u8(in);
		n = MIN(n, in->size - in->pos);
		sqlite3_bind_blob(st, i, in->buf + in->pos, (int)n, SQLITE_TRANSIENT);
		in->pos += n;
		break;
	default: {
		vss_id id = nth_id(fuzz_u8(in));

		sqlite3_bind_text(st, i, vss_id_format(&id, buf), -1, SQLITE_TRANSIENT);
		break;
	}
	}
}

static void fill(sqlite3 *db, FuzzInput *in)
{
	for (unsigned rows = 0; rows < MAX_ROWS && !fuzz_at_end(in); rows++) {
		sqlite3_stmt *st;
		unsigned table = fuzz_u8(in) % ELEMENTSOF(insert);

		if (sqlite3_prepare_v2(db, insert[table], -1, &st, NULL) != SQLITE_OK)
			abort();
		for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++)
			bind_value(st, i, in);
		/* A row the schema refuses is one vssd will never see. */
		(void)sqlite3_step(st);
		sqlite3_finalize(st);
	}
}

static void list(Catalog *c, uint8_t flags, const char *set, const char *snapshot, const char *volume)
{
	CatalogFilter f = { .include_creating = flags & INCLUDE_CREATING };
	CatalogSnapshot *snaps;
	CatalogSet *sets;
	char **volumes;
	int64_t *maximums;
	vss_id set_id, snapshot_id;
	uint64_t count;
	size_t n;

	if ((flags & FILTER_SET) && VSS_SUCCEEDED(vss_id_parse(set, &set_id)))
		f.set_id = &set_id;
	if ((flags & FILTER_SNAPSHOT) && VSS_SUCCEEDED(vss_id_parse(snapshot, &snapshot_id)))
		f.snapshot_id = &snapshot_id;
	if (flags & FILTER_VOLUME)
		f.volume = volume;

	if (catalog_list_snapshots(c, &f, &snaps, &n) >= 0) {
		for (size_t i = 0; i < n; i++)
			/* What catalog.h promises every listed snapshot has. */
			if (!snaps[i].prop.snapshot_device_object || !snaps[i].prop.original_volume_name ||
			    !snaps[i].provider_name)
				abort();
		catalog_snapshots_free(snaps, n);
	}
	if (catalog_list_sets(c, &sets, &n) >= 0)
		catalog_sets_free(sets, n);
	{
		CatalogScheduledSet *ss;

		if (catalog_list_scheduled_sets(c, NULL, &ss, &n) >= 0) {
			for (size_t i = 0; i < n; i++)
				if (!ss[i].schedule)
					abort();
			catalog_scheduled_sets_free(ss, n);
		}
	}
	if (catalog_storage(c, &volumes, &maximums, &n) >= 0) {
		for (size_t i = 0; i < n; i++)
			if (!volumes[i])
				abort();
		strv_free(volumes);
		free(maximums);
	}
	(void)catalog_count_volume_snapshots(c, volume, &count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialized;
	FuzzInput in = fuzz_input(data, size);
	const char *set = NULL, *snapshot = NULL, *volume = "/";
	Catalog *c = NULL;
	sqlite3 *db;
	uint8_t flags;

	if (!initialized) {
		/* catalog_open() takes a path; a URI names a database in
		 * memory, shared by its connections and gone with the last. */
		if (sqlite3_config(SQLITE_CONFIG_URI, 1) != SQLITE_OK)
			abort();
		log_set_max_level(LOG_EMERG - 1);
		initialized = true;
	}

	flags = fuzz_u8(&in);
	if (flags & FILTER_SET)
		set = fuzz_string(&in);
	if (flags & FILTER_SNAPSHOT)
		snapshot = fuzz_string(&in);
	if (flags & FILTER_VOLUME)
		volume = fuzz_string(&in);

	if (sqlite3_open_v2(DB_URI, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL) !=
	    SQLITE_OK)
		abort();
	if ((flags & LOOSE_SCHEMA) && sqlite3_exec(db, loose_schema, NULL, NULL, NULL) != SQLITE_OK)
		abort();
	if ((flags & NEWER_SCHEMA) && sqlite3_exec(db, "PRAGMA user_version=1000", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	if (catalog_open(DB_URI, &c) >= 0) {
		fill(db, &in);
		list(c, flags, set, snapshot, volume);
		catalog_close(c);
	} else if (!(flags & NEWER_SCHEMA)) {
		abort(); /* a catalog vssd could not open */
	}
	sqlite3_close(db);
	fuzz_free(&in);
	return 0;
}
