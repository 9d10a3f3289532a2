/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/fault.h"
#include "vssd/catalog.h"

#define SCHEMA_VERSION 3

struct Catalog {
	sqlite3 *db;
	/* Snapshots deleted from disk whose rows could not be deleted: hidden
	 * from every listing, their rows' deletion tried again at every later
	 * listing or deletion. Should vssd stop first, reconciliation drops
	 * the rows, their snapshots being gone. */
	pthread_mutex_t lock;
	vss_id *forgotten;
	size_t n_forgotten;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS sets ("
	"  id TEXT PRIMARY KEY,"
	"  context INTEGER NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('creating', 'created')),"
	"  snapshots_count INTEGER NOT NULL,"
	"  started_us INTEGER NOT NULL,"
	"  created_us INTEGER NOT NULL DEFAULT 0,"
	"  prepare_us INTEGER NOT NULL DEFAULT 0,"
	"  flush_us INTEGER NOT NULL DEFAULT 0,"
	"  hold_window_us INTEGER NOT NULL DEFAULT 0,"
	"  total_us INTEGER NOT NULL DEFAULT 0,"
	"  consistency TEXT,"
	"  requestor_uid INTEGER NOT NULL,"
	"  requestor_pid INTEGER NOT NULL"
	");"
	"CREATE TABLE IF NOT EXISTS snapshots ("
	"  id TEXT PRIMARY KEY,"
	"  set_id TEXT NOT NULL REFERENCES sets(id) ON DELETE CASCADE,"
	"  volume TEXT NOT NULL,"
	"  snapshot_path TEXT NOT NULL,"
	"  provider_id TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  provider_data TEXT,"
	"  attributes INTEGER NOT NULL,"
	"  state INTEGER NOT NULL,"
	"  originating_machine TEXT NOT NULL,"
	"  service_machine TEXT NOT NULL,"
	"  exposed_name TEXT,"
	"  exposed_path TEXT"
	");"
	"CREATE INDEX IF NOT EXISTS snapshots_volume ON snapshots(volume);"
	"CREATE INDEX IF NOT EXISTS snapshots_set ON snapshots(set_id);"
	/* Listings go in this order; without the index every listing sorted
	 * the whole catalog. Older catalogs gain it when opened. */
	"CREATE INDEX IF NOT EXISTS sets_started ON sets(started_us, id);"
	/* Version 2: the maximum shadow storage of a volume; no row: unbounded. */
	"CREATE TABLE IF NOT EXISTS storage ("
	"  volume TEXT PRIMARY KEY,"
	"  maximum INTEGER NOT NULL"
	");"
	/* Version 3: a revert's intent, recorded before the volume is touched
	 * and dropped when it is done, so that one cut short by a crash is
	 * finished at the next start (docs/RELIABILITY.md). */
	"CREATE TABLE IF NOT EXISTS reverts ("
	"  snapshot_id TEXT PRIMARY KEY,"
	"  volume TEXT NOT NULL UNIQUE,"
	"  provider_id TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  snapshot_path TEXT NOT NULL,"
	"  provider_data TEXT,"
	"  force_unmount INTEGER NOT NULL,"
	"  plan TEXT NOT NULL,"
	"  snapshot_created_us INTEGER NOT NULL,"
	"  started_us INTEGER NOT NULL"
	");";


static int sqlite_to_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

static int fail(Catalog *c, int rc, const char *what)
{
	log_error("catalog: %s: %s", what, sqlite3_errmsg(c->db));
	return sqlite_to_errno(rc);
}

/* A row vssd cannot have written: the catalog was changed by someone else,
 * and what it says cannot be trusted. */
static int bad_row(const char *row, const char *column)
{
	log_error("catalog: %s has no %s; the catalog was not written by vssd", row, column);
	return -EBADMSG;
}

static int exec(Catalog *c, const char *sql)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(c, rc, sql);
}

/* Version 3: what a snapshot's listing says of it besides its set's
 * consistency ("taken before the volume was reverted to ..."); older
 * catalogs gain the column when opened. */
static int add_note_column(Catalog *c)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM pragma_table_info('snapshots') WHERE name = 'note'", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		return fail(c, rc, "snapshot columns");
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return fail(c, rc, "snapshot columns");
	return exec(c, "ALTER TABLE snapshots ADD COLUMN note TEXT");
}

int catalog_open(const char *path, Catalog **ret)
{
	Catalog *c;
	int rc, r, version = -1;
	sqlite3_stmt *st;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		r = c->db ? fail(c, rc, path) : -ENOMEM;
		catalog_close(c);
		return r;
	}
	sqlite3_busy_timeout(c->db, 5000);
	/* WAL: a set's two transactions (its intent, then its outcome) each
	 * append a few pages and sync once. synchronous=FULL, not NORMAL:
	 * with NORMAL a commit is synced only at the next checkpoint, so a
	 * power cut could lose the intent of a set whose snapshot the
	 * filesystem already committed (a snapshot without its row), or the
	 * outcome of a set DoSnapshotSet reported made (which reconcile would
	 * then delete). Measured, the two syncs are most of what the catalog
	 * costs a set (docs/BENCHMARKS.md). */
	r = exec(c, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;");
	if (r < 0)
		goto fail;

	rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = fail(c, rc, "user_version");
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION) {
		log_error("catalog %s has schema version %d, newer than this vssd (%d)", path, version,
			  SCHEMA_VERSION);
		r = -EPROTO;
		goto fail;
	}
	r = exec(c, schema);
	if (r < 0)
		goto fail;
	r = add_note_column(c);
	if (r < 0)
		goto fail;
	r = exec(c, "PRAGMA user_version=" STRINGIFY(SCHEMA_VERSION));
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	catalog_close(c);
	return r;
}

Catalog *catalog_close(Catalog *c)
{
	if (c) {
		sqlite3_close(c->db);
		pthread_mutex_destroy(&c->lock);
		free(c->forgotten);
		free(c);
	}
	return NULL;
}

static int prepare(Catalog *c, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : fail(c, rc, sql);
}

static void bind_id(sqlite3_stmt *st, int i, const vss_id *id)
{
	char buf[VSS_ID_STRING_MAX];

	sqlite3_bind_text(st, i, vss_id_format(id, buf), -1, SQLITE_TRANSIENT);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Run a statement that returns no rows, then finalize it. */
static int step_done(Catalog *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(c, rc, what);
}

static int insert_set(Catalog *c, const CatalogSet *s)
{
	sqlite3_stmt *st;
	int r;

	r = prepare(c,
		    "INSERT INTO sets (id, context, state, snapshots_count, started_us, requestor_uid, requestor_pid)"
		    " VALUES (?, ?, 'creating', ?, ?, ?, ?)",
		    &st);
	if (r < 0)
		return r;
	bind_id(st, 1, &s->id);
	sqlite3_bind_int(st, 2, s->context);
	sqlite3_bind_int(st, 3, s->snapshots_count);
	sqlite3_bind_int64(st, 4, s->started_us);
	sqlite3_bind_int64(st, 5, s->requestor_uid);
	sqlite3_bind_int(st, 6, s->requestor_pid);
	return step_done(c, st, "insert set");
}

static int insert_snapshot(Catalog *c, const CatalogSnapshot *s)
{
	sqlite3_stmt *st;
	int r;

	r = prepare(c,
		    "INSERT INTO snapshots (id, set_id, volume, snapshot_path, provider_id, provider,"
		    " provider_data, attributes, state, originating_machine, service_machine,"
		    " exposed_name, exposed_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		    &st);
	if (r < 0)
		return r;
	bind_id(st, 1, &s->prop.snapshot_id);
	bind_id(st, 2, &s->prop.snapshot_set_id);
	bind_str(st, 3, s->prop.original_volume_name);
	bind_str(st, 4, s->prop.snapshot_device_object);
	bind_id(st, 5, &s->prop.provider_id);
	bind_str(st, 6, s->provider_name);
	bind_str(st, 7, s->provider_data);
	sqlite3_bind_int(st, 8, s->prop.snapshot_attributes);
	sqlite3_bind_int(st, 9, s->prop.status);
	bind_str(st, 10, s->prop.originating_machine);
	bind_str(st, 11, s->prop.service_machine);
	bind_str(st, 12, s->prop.exposed_name);
	bind_str(st, 13, s->prop.exposed_path);
	return step_done(c, st, "insert snapshot");
}

static int transaction(Catalog *c, int r)
{
	if (r < 0) {
		exec(c, "ROLLBACK");
		return r;
	}
	return exec(c, "COMMIT");
}

int catalog_begin_set(Catalog *c, const CatalogSet *set, const CatalogSnapshot *snaps, size_t n)
{
	int r = fault_point(POINT_CATALOG) ?: exec(c, "BEGIN IMMEDIATE");

	if (r < 0)
		return r;
	r = insert_set(c, set);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = insert_snapshot(c, &snaps[i]);
	return transaction(c, r);
}

int catalog_finish_set(Catalog *c, const CatalogSet *set, const CatalogSnapshot *snaps, size_t n)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG) ?: exec(c, "BEGIN IMMEDIATE");

	if (r < 0)
		return r;
	r = prepare(c,
		    "UPDATE sets SET state = 'created', created_us = ?, prepare_us = ?, flush_us = ?,"
		    " hold_window_us = ?, total_us = ?, consistency = ? WHERE id = ?",
		    &st);
	if (r >= 0) {
		sqlite3_bind_int64(st, 1, set->created_us);
		sqlite3_bind_int64(st, 2, (int64_t)set->prepare_us);
		sqlite3_bind_int64(st, 3, (int64_t)set->flush_us);
		sqlite3_bind_int64(st, 4, (int64_t)set->hold_window_us);
		sqlite3_bind_int64(st, 5, (int64_t)set->total_us);
		bind_str(st, 6, set->consistency);
		bind_id(st, 7, &set->id);
		r = step_done(c, st, "finish set");
		if (r >= 0 && sqlite3_changes(c->db) == 0)
			r = -ENOENT;
	}
	for (size_t i = 0; r >= 0 && i < n; i++) {
		r = prepare(c,
			    "UPDATE snapshots SET snapshot_path = ?, provider_data = ?, attributes = ?, state = ?"
			    " WHERE id = ?",
			    &st);
		if (r < 0)
			break;
		bind_str(st, 1, snaps[i].prop.snapshot_device_object);
		bind_str(st, 2, snaps[i].provider_data);
		sqlite3_bind_int(st, 3, snaps[i].prop.snapshot_attributes);
		sqlite3_bind_int(st, 4, snaps[i].prop.status);
		bind_id(st, 5, &snaps[i].prop.snapshot_id);
		r = step_done(c, st, "finish snapshot");
	}
	return transaction(c, r);
}

int catalog_delete_set(Catalog *c, const vss_id *set_id)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG) ?: prepare(c, "DELETE FROM sets WHERE id = ?", &st);

	if (r != 0)
		return r;
	bind_id(st, 1, set_id);
	return step_done(c, st, "delete set");
}

static int delete_snapshot_row(Catalog *c, const vss_id *id)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG) ?: exec(c, "BEGIN IMMEDIATE");

	if (r < 0)
		return r;
	/* Its own set first, when it is the set's last snapshot (the row goes
	 * with it, ON DELETE CASCADE): asking every set whether it still has
	 * a snapshot took some 8 ms a deletion with 100,000 snapshots. */
	r = prepare(c,
		    "DELETE FROM sets WHERE id = (SELECT set_id FROM snapshots WHERE id = ?1)"
		    " AND NOT EXISTS (SELECT 1 FROM snapshots WHERE set_id = sets.id AND id != ?1)",
		    &st);
	if (r >= 0) {
		bind_id(st, 1, id);
		r = step_done(c, st, "delete the set of a snapshot");
	}
	if (r >= 0)
		r = prepare(c, "DELETE FROM snapshots WHERE id = ?", &st);
	if (r >= 0) {
		bind_id(st, 1, id);
		r = step_done(c, st, "delete snapshot");
	}
	return transaction(c, r);
}

static bool is_forgotten(Catalog *c, const vss_id *id)
{
	for (size_t i = 0; i < c->n_forgotten; i++)
		if (vss_id_equal(&c->forgotten[i], id))
			return true;
	return false;
}

/* Called with c->lock held. */
static void retry_forgotten(Catalog *c)
{
	for (size_t i = 0; i < c->n_forgotten;)
		if (delete_snapshot_row(c, &c->forgotten[i]) == 0)
			c->forgotten[i] = c->forgotten[--c->n_forgotten];
		else
			i++;
}

int catalog_delete_snapshot(Catalog *c, const vss_id *id)
{
	vss_id *slot;
	int r;

	pthread_mutex_lock(&c->lock);
	retry_forgotten(c);
	r = delete_snapshot_row(c, id);
	if (r < 0 && !is_forgotten(c, id)) {
		slot = array_grow((void **)&c->forgotten, &c->n_forgotten, sizeof(*slot));
		if (slot)
			*slot = *id;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int catalog_set_storage_maximum(Catalog *c, const char *volume, int64_t maximum)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG);

	if (r < 0)
		return r;
	if (maximum < 0)
		r = prepare(c, "DELETE FROM storage WHERE volume = ?", &st);
	else
		r = prepare(c, "INSERT OR REPLACE INTO storage (volume, maximum) VALUES (?, ?)", &st);
	if (r < 0)
		return r;
	bind_str(st, 1, volume);
	if (maximum >= 0)
		sqlite3_bind_int64(st, 2, maximum);
	return step_done(c, st, "set storage maximum");
}

int catalog_storage(Catalog *c, char ***ret_volumes, int64_t **ret_maximums, size_t *ret_n)
{
	_cleanup_(strv_freep) char **volumes = NULL;
	_cleanup_free_ int64_t *maximums = NULL;
	size_t n = 0;
	sqlite3_stmt *st;
	int r, rc;

	/* Every volume with snapshots or with a maximum. */
	r = prepare(c,
		    "SELECT v.volume, s.maximum FROM (SELECT volume FROM snapshots UNION SELECT volume FROM storage) v"
		    " LEFT JOIN storage s ON s.volume = v.volume ORDER BY v.volume",
		    &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t *nm;

		/* No row vssd writes lacks its volume (a NULL volume is
		 * legal in SQLite's TEXT PRIMARY KEY, though). */
		if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
			sqlite3_finalize(st);
			return bad_row("a snapshot or storage row", "volume");
		}
		nm = realloc(maximums, sizeof(int64_t) * (n + 1));
		if (!nm || strv_push_dup(&volumes, (const char *)sqlite3_column_text(st, 0)) < 0) {
			if (nm)
				maximums = nm;
			rc = SQLITE_NOMEM;
			break;
		}
		maximums = nm;
		maximums[n++] = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return rc == SQLITE_NOMEM ? -ENOMEM : fail(c, rc, "list storage");
	*ret_volumes = TAKE_PTR(volumes);
	*ret_maximums = TAKE_PTR(maximums);
	*ret_n = n;
	return 0;
}

int catalog_storage_maximum(Catalog *c, const char *volume, int64_t *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(c, "SELECT maximum FROM storage WHERE volume = ?", &st);
	if (r < 0)
		return r;
	bind_str(st, 1, volume);
	rc = sqlite3_step(st);
	*ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(c, rc, "storage maximum");
}

int catalog_set_exposure(Catalog *c, const vss_id *id, const char *exposed_name, int32_t attributes)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG)
			?: prepare(c, "UPDATE snapshots SET exposed_name = ?, attributes = ? WHERE id = ?", &st);

	if (r != 0)
		return r;
	bind_str(st, 1, exposed_name);
	sqlite3_bind_int(st, 2, attributes);
	bind_id(st, 3, id);
	r = step_done(c, st, "set exposure");
	if (r >= 0 && sqlite3_changes(c->db) == 0)
		r = -ENOENT;
	return r;
}

static char *column_str(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? strdup((const char *)s) : NULL;
}

/* vssd writes every id with bind_id(), so one that does not parse was put
 * there by someone else; reading it as the null id would make the row name
 * another object (or none). */
static int column_id(sqlite3_stmt *st, int i, const char *what, const char *column, vss_id *ret)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	char row[128];

	if (s && VSS_SUCCEEDED(vss_id_parse((const char *)s, ret)))
		return 0;
	*ret = VSS_ID_NULL;
	s = sqlite3_column_text(st, 0);
	snprintf(row, sizeof(row), "%s %.64s", what, s ? (const char *)s : "?");
	return bad_row(row, column);
}

void catalog_snapshot_clear(CatalogSnapshot *s)
{
	vss_free_snapshot_properties(&s->prop);
	free(s->provider_name);
	free(s->provider_data);
	*s = (CatalogSnapshot){ 0 };
}

void catalog_snapshots_free(CatalogSnapshot *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		catalog_snapshot_clear(&s[i]);
	free(s);
}

void catalog_set_clear(CatalogSet *s)
{
	free(s->consistency);
	*s = (CatalogSet){ 0 };
}

void catalog_sets_free(CatalogSet *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		catalog_set_clear(&s[i]);
	free(s);
}

char *catalog_position_format(const CatalogPosition *p, char buf[static CATALOG_POSITION_MAX])
{
	char id[VSS_ID_STRING_MAX];

	snprintf(buf, CATALOG_POSITION_MAX, "%" PRId64 ":%s:%" PRId64, p->started_us, vss_id_format(&p->set_id, id),
		 p->row);
	return buf;
}

int catalog_position_parse(const char *s, CatalogPosition *ret)
{
	char id[VSS_ID_STRING_MAX];
	const char *a, *b;
	uint64_t row;
	char *end;
	long long started;

	a = strchr(s, ':');
	b = a ? strrchr(s, ':') : NULL;
	if (!a || a == b || (size_t)(b - a - 1) >= sizeof(id))
		return -EINVAL;
	errno = 0;
	started = strtoll(s, &end, 10);
	if (errno || end != a || a == s)
		return -EINVAL;
	memcpy(id, a + 1, b - a - 1);
	id[b - a - 1] = '\0';
	if (VSS_FAILED(vss_id_parse(id, &ret->set_id)) || parse_u64(b + 1, &row) < 0 || row > INT64_MAX)
		return -EINVAL;
	ret->started_us = started;
	ret->row = (int64_t)row;
	return 0;
}

/* The snapshot columns of a row, from st at column base on: id, set_id
 * (base + 1, checked only when with_set), snapshot_path, volume,
 * originating_machine, service_machine, exposed_name, exposed_path,
 * provider_id, attributes, state, provider, provider_data, rowid, note. */
#define SNAPSHOT_COLUMNS \
	"s.id, s.set_id, s.snapshot_path, s.volume, s.originating_machine, s.service_machine, s.exposed_name," \
	" s.exposed_path, s.provider_id, s.attributes, s.state, s.provider, s.provider_data, s.rowid, s.note"
#define SNAPSHOT_N_COLUMNS 15
/* And those of its set: id, snapshots_count, created_us, hold_window_us,
 * consistency, context, state, started_us. */
#define SET_COLUMNS "t.id, t.snapshots_count, t.created_us, t.hold_window_us, t.consistency, t.context, t.state, t.started_us"

/* The WHERE clause names only the filter's terms, so that SQLite plans
 * each listing on its index (snapshots_set, the primary key,
 * snapshots_volume, sets_started); "?1 IS NULL OR ..." would read every row each time. */
static int list_query(const CatalogFilter *f, char *buf, size_t size)
{
	int k = snprintf(buf, size, "%s%s%s%s%s%s%s%s%s",
			 /* A seek per volume, not a pass over every row: the
			  * distinct volumes one index seek after another (SQLite
			  * does not skip-scan by itself), and for each the first
			  * finished row in snapshots_volume, which keeps a
			  * volume's rows in insertion order (rowid), the order
			  * sets are made in. */
			 f->oldest_of_each_volume
				 ? "WITH RECURSIVE v(volume) AS (SELECT (SELECT min(volume) FROM snapshots)"
				   " UNION ALL SELECT (SELECT min(volume) FROM snapshots WHERE volume > v.volume) FROM v"
				   " WHERE v.volume IS NOT NULL),"
				   " o(id) AS (SELECT (SELECT s.id FROM snapshots s JOIN sets t ON s.set_id = t.id"
				   " WHERE s.volume = v.volume AND t.state = 'created' ORDER BY s.rowid LIMIT 1)"
				   " FROM v WHERE v.volume IS NOT NULL) "
				 : "",
			 "SELECT " SNAPSHOT_COLUMNS ", " SET_COLUMNS " FROM snapshots s JOIN sets t ON s.set_id = t.id WHERE 1",
			 f->set_id ? " AND s.set_id = ?1" : "", f->snapshot_id ? " AND s.id = ?2" : "",
			 f->volume ? " AND s.volume = ?3" : "", f->include_creating ? "" : " AND t.state = 'created'",
			 f->oldest_of_each_volume ? " AND s.id IN (SELECT id FROM o)" : "",
			 /* The first term is the range an index can seek; the
			  * second leaves out the rows of the set it starts in
			  * that were already returned. */
			 f->after ? " AND (t.started_us, t.id) >= (?4, ?5) AND (t.started_us, t.id, s.rowid) > (?4, ?5, ?6)"
				  : "",
			 f->limit ? " ORDER BY t.started_us, t.id, s.rowid LIMIT ?7" : " ORDER BY t.started_us, t.id, s.rowid");

	return k > 0 && (size_t)k < size ? 0 : -ENOBUFS;
}

/* Whether a row read is hidden (its deletion failed), and if not, fn's.
 * A snapshot's note travels with its set's consistency: vss_snapshot_prop
 * has no field of its own for it within this soname (docs/ABI.md). */
static int deliver(Catalog *c, bool forgotten, const CatalogRow *row, catalog_row_fn fn, void *userdata)
{
	bool hidden;

	if (forgotten) {
		pthread_mutex_lock(&c->lock);
		hidden = is_forgotten(c, &row->snapshot_id);
		pthread_mutex_unlock(&c->lock);
		if (hidden)
			return 0;
	}
	if (row->note) {
		CatalogRow noted = *row;
		char text[1024];

		snprintf(text, sizeof(text), "%s%s%s", row->strings[6] ?: "", row->strings[6] ? "; " : "", row->note);
		noted.strings[6] = text;
		return fn(&noted, userdata);
	}
	return fn(row, userdata);
}

static int read_snapshot_columns(sqlite3_stmt *st, int base, bool with_set, CatalogRow *row)
{
	static const struct {
		int column;
		const char *name;
	} required[] = { { 2, "snapshot path" }, { 3, "volume" }, { 11, "provider" } };
	int r;

	for (size_t i = 0; i < ELEMENTSOF(required); i++)
		if (sqlite3_column_type(st, base + required[i].column) == SQLITE_NULL) {
			const char *id = (const char *)sqlite3_column_text(st, base);
			char name[128];

			snprintf(name, sizeof(name), "snapshot %.64s", id ?: "?");
			return bad_row(name, required[i].name);
		}
	if ((r = column_id(st, base, "snapshot", "valid id", &row->snapshot_id)) < 0 ||
	    (with_set && (r = column_id(st, base + 1, "snapshot", "valid set id", &row->set_id)) < 0) ||
	    (r = column_id(st, base + 8, "snapshot", "valid provider id", &row->provider_id)) < 0)
		return r;
	for (int i = 0; i < 6; i++)
		row->strings[i] = (const char *)sqlite3_column_text(st, base + 2 + i);
	row->attributes = sqlite3_column_int(st, base + 9);
	row->status = sqlite3_column_int(st, base + 10);
	row->provider_name = (const char *)sqlite3_column_text(st, base + 11);
	row->provider_data = (const char *)sqlite3_column_text(st, base + 12);
	row->position.row = sqlite3_column_int64(st, base + 13);
	row->note = (const char *)sqlite3_column_text(st, base + 14);
	/* sqlite3_column_text() returns NULL for NULL and when out of
	 * memory; the required columns are not NULL. */
	return row->strings[0] && row->strings[1] && row->provider_name ? 0 : -ENOMEM;
}

static int read_set_columns(sqlite3_stmt *st, int base, bool with_id, CatalogRow *row)
{
	const unsigned char *state;
	int r;

	if (with_id && (r = column_id(st, base, "set", "valid id", &row->set_id)) < 0)
		return r;
	row->snapshots_count = sqlite3_column_int(st, base + 1);
	row->created_us = sqlite3_column_int64(st, base + 2);
	row->hold_window_us = (uint64_t)sqlite3_column_int64(st, base + 3);
	row->strings[6] = (const char *)sqlite3_column_text(st, base + 4);
	row->context = sqlite3_column_int(st, base + 5);
	state = sqlite3_column_text(st, base + 6);
	row->set_state = state && streq((const char *)state, "created") ? SET_CREATED : SET_CREATING;
	row->position.started_us = sqlite3_column_int64(st, base + 7);
	row->position.set_id = row->set_id;
	return 0;
}

static void bind_filter(sqlite3_stmt *st, const CatalogFilter *f)
{
	if (f->set_id)
		bind_id(st, 1, f->set_id);
	if (f->snapshot_id)
		bind_id(st, 2, f->snapshot_id);
	if (f->volume)
		bind_str(st, 3, f->volume);
	if (f->after) {
		sqlite3_bind_int64(st, 4, f->after->started_us);
		bind_id(st, 5, &f->after->set_id);
		sqlite3_bind_int64(st, 6, f->after->row);
	}
	if (f->limit)
		sqlite3_bind_int64(st, 7, (int64_t)MIN(f->limit, (size_t)INT64_MAX));
}

/* Sets in order, then each set's snapshots in order, without the join: a
 * set's columns are read once, not once a snapshot, and the snapshots come
 * in rowid order from snapshots_set, so that SQLite sorts nothing. For the
 * listings that are by set or of everything. */
static int list_rows_by_set(Catalog *c, const CatalogFilter *f, bool forgotten, catalog_row_fn fn, void *userdata,
			    CatalogPosition *ret_next, size_t *ret_n)
{
	sqlite3_stmt *sets = NULL, *snaps = NULL;
	char sql[512];
	size_t n = 0;
	int r, rc = SQLITE_DONE;

	snprintf(sql, sizeof(sql), "SELECT " SET_COLUMNS " FROM sets t WHERE 1%s%s%s ORDER BY t.started_us, t.id",
		 f->set_id ? " AND t.id = ?1" : "", f->include_creating ? "" : " AND t.state = 'created'",
		 f->after ? " AND (t.started_us, t.id) >= (?4, ?5)" : "");
	r = prepare(c, sql, &sets);
	if (r >= 0)
		r = prepare(c, "SELECT " SNAPSHOT_COLUMNS " FROM snapshots s WHERE s.set_id = ?1 AND s.rowid > ?2 ORDER BY s.rowid",
			    &snaps);
	if (r < 0) {
		sqlite3_finalize(sets);
		return r;
	}
	bind_filter(sets, f);
	while (r >= 0 && (!f->limit || n < f->limit) && (rc = sqlite3_step(sets)) == SQLITE_ROW) {
		CatalogRow row = { 0 };

		r = read_set_columns(sets, 0, true, &row);
		if (r < 0)
			break;
		sqlite3_reset(snaps);
		sqlite3_bind_value(snaps, 1, sqlite3_column_value(sets, 0));
		/* In the set the listing resumes in, after the row it stopped at. */
		sqlite3_bind_int64(snaps, 2, f->after && vss_id_equal(&row.set_id, &f->after->set_id) &&
						     row.position.started_us == f->after->started_us
					      ? f->after->row
					      : 0);
		while ((!f->limit || n < f->limit) && (rc = sqlite3_step(snaps)) == SQLITE_ROW) {
			r = read_snapshot_columns(snaps, 0, false, &row);
			if (r < 0)
				break;
			*ret_next = row.position;
			n++;
			r = deliver(c, forgotten, &row, fn, userdata);
			if (r < 0)
				break;
		}
		if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
			r = rc == SQLITE_NOMEM ? -ENOMEM : fail(c, rc, "list snapshots");
		rc = SQLITE_ROW;
	}
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = rc == SQLITE_NOMEM ? -ENOMEM : fail(c, rc, "list sets");
	sqlite3_finalize(snaps);
	sqlite3_finalize(sets);
	*ret_n = n;
	return r;
}

int catalog_list_rows(Catalog *c, const CatalogFilter *f, catalog_row_fn fn, void *userdata, CatalogPosition *ret_next,
		      bool *ret_more)
{
	static const CatalogFilter all = { 0 };
	CatalogPosition next = { 0 };
	size_t n = 0;
	char sql[2048];
	sqlite3_stmt *st;
	bool forgotten;
	int r, rc;

	if (!f)
		f = &all;
	pthread_mutex_lock(&c->lock);
	retry_forgotten(c);
	forgotten = c->n_forgotten > 0;
	pthread_mutex_unlock(&c->lock);
	if (!f->snapshot_id && !f->volume && !f->oldest_of_each_volume) {
		r = list_rows_by_set(c, f, forgotten, fn, userdata, &next, &n);
		if (r < 0)
			return r;
		goto done;
	}
	r = list_query(f, sql, sizeof(sql));
	if (r >= 0)
		r = prepare(c, sql, &st);
	if (r < 0)
		return r;
	bind_filter(st, f);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		CatalogRow row = { 0 };

		r = read_snapshot_columns(st, 0, true, &row);
		if (r >= 0)
			r = read_set_columns(st, SNAPSHOT_N_COLUMNS, false, &row);
		if (r < 0)
			break;
		/* The position is the last row read, hidden or not, and it
		 * counts for the page being full. */
		next = row.position;
		n++;
		r = deliver(c, forgotten, &row, fn, userdata);
		if (r < 0)
			break;
	}
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	if (rc != SQLITE_DONE)
		return rc == SQLITE_NOMEM ? -ENOMEM : fail(c, rc, "list snapshots");
done:
	*ret_more = f->limit && n == f->limit;
	if (n > 0)
		*ret_next = next;
	return 0;
}

typedef struct Decoded {
	CatalogSnapshot *list;
	size_t n, allocated;
} Decoded;

int catalog_row_decode(const CatalogRow *row, CatalogSnapshot *s)
{
	char **const strings[CATALOG_ROW_STRINGS] = {
		&s->prop.snapshot_device_object, &s->prop.original_volume_name, &s->prop.originating_machine,
		&s->prop.service_machine, &s->prop.exposed_name, &s->prop.exposed_path, &s->prop.consistency,
	};

	*s = (CatalogSnapshot){
		.prop = {
			.snapshot_id = row->snapshot_id,
			.snapshot_set_id = row->set_id,
			.provider_id = row->provider_id,
			.snapshots_count = row->snapshots_count,
			.snapshot_attributes = row->attributes,
			.creation_timestamp = row->created_us,
			.status = (vss_snapshot_state)row->status,
			.hold_window_us = row->hold_window_us,
		},
		.context = row->context,
		.set_state = row->set_state,
		.position = row->position,
	};
	for (size_t i = 0; i < CATALOG_ROW_STRINGS; i++)
		if (row->strings[i] && !(*strings[i] = strdup(row->strings[i])))
			goto oom;
	s->provider_name = strdup(row->provider_name);
	if (!s->provider_name || (row->provider_data && !(s->provider_data = strdup(row->provider_data))))
		goto oom;
	return 0;
oom:
	catalog_snapshot_clear(s);
	return -ENOMEM;
}

static int decode_row(const CatalogRow *row, void *userdata)
{
	Decoded *d = userdata;
	CatalogSnapshot *s = array_append((void **)&d->list, &d->n, &d->allocated, sizeof(*d->list));
	int r;

	if (!s)
		return -ENOMEM;
	r = catalog_row_decode(row, s);
	if (r < 0)
		d->n--;
	return r;
}

int catalog_list_page(Catalog *c, const CatalogFilter *f, CatalogSnapshot **ret, size_t *ret_n, CatalogPosition *ret_next,
		      bool *ret_more)
{
	Decoded d = { 0 };
	int r;

	r = catalog_list_rows(c, f, decode_row, &d, ret_next, ret_more);
	if (r < 0) {
		catalog_snapshots_free(d.list, d.n);
		return r;
	}
	*ret = d.list;
	*ret_n = d.n;
	return 0;
}

int catalog_list_snapshots(Catalog *c, const CatalogFilter *f, CatalogSnapshot **ret, size_t *ret_n)
{
	CatalogPosition next;
	bool more;

	return catalog_list_page(c, f, ret, ret_n, &next, &more);
}

int catalog_list_oldest(Catalog *c, CatalogSnapshot **ret, size_t *ret_n)
{
	return catalog_list_snapshots(c, &(CatalogFilter){ .oldest_of_each_volume = true }, ret, ret_n);
}

int catalog_list_sets(Catalog *c, CatalogSet **ret, size_t *ret_n)
{
	CatalogSet *list = NULL;
	size_t n = 0;
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(c,
		    "SELECT id, context, state, snapshots_count, started_us, created_us, prepare_us,"
		    " flush_us, hold_window_us, total_us, consistency, requestor_uid, requestor_pid"
		    " FROM sets ORDER BY started_us, id",
		    &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		CatalogSet *s = array_grow((void **)&list, &n, sizeof(*list));
		const unsigned char *state;

		if (!s) {
			rc = SQLITE_NOMEM;
			break;
		}
		if ((r = column_id(st, 0, "set", "valid id", &s->id)) < 0)
			break;
		s->context = sqlite3_column_int(st, 1);
		state = sqlite3_column_text(st, 2);
		s->state = state && streq((const char *)state, "created") ? SET_CREATED : SET_CREATING;
		s->snapshots_count = sqlite3_column_int(st, 3);
		s->started_us = sqlite3_column_int64(st, 4);
		s->created_us = sqlite3_column_int64(st, 5);
		s->prepare_us = (uint64_t)sqlite3_column_int64(st, 6);
		s->flush_us = (uint64_t)sqlite3_column_int64(st, 7);
		s->hold_window_us = (uint64_t)sqlite3_column_int64(st, 8);
		s->total_us = (uint64_t)sqlite3_column_int64(st, 9);
		s->consistency = column_str(st, 10);
		s->requestor_uid = (uint32_t)sqlite3_column_int64(st, 11);
		s->requestor_pid = sqlite3_column_int(st, 12);
	}
	sqlite3_finalize(st);
	if (r < 0 || rc != SQLITE_DONE) {
		catalog_sets_free(list, n);
		return r < 0 ? r : rc == SQLITE_NOMEM ? -ENOMEM : fail(c, rc, "list sets");
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

int catalog_count_volume_snapshots(Catalog *c, const char *volume, uint64_t *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	pthread_mutex_lock(&c->lock);
	retry_forgotten(c);
	pthread_mutex_unlock(&c->lock);
	r = prepare(c, "SELECT COUNT(*) FROM snapshots WHERE volume = ?", &st);
	if (r < 0)
		return r;
	bind_str(st, 1, volume);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : fail(c, rc, "count snapshots");
}

int catalog_begin_revert(Catalog *c, const CatalogRevert *rv)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG)
			?: prepare(c,
				   "INSERT INTO reverts (snapshot_id, volume, provider_id, provider, snapshot_path,"
				   " provider_data, force_unmount, plan, snapshot_created_us, started_us)"
				   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				   &st);

	if (r != 0)
		return r;
	bind_id(st, 1, &rv->snapshot_id);
	bind_str(st, 2, rv->volume);
	bind_id(st, 3, &rv->provider_id);
	bind_str(st, 4, rv->provider_name);
	bind_str(st, 5, rv->snapshot_path);
	bind_str(st, 6, rv->provider_data);
	sqlite3_bind_int(st, 7, rv->force_unmount);
	bind_str(st, 8, rv->plan);
	sqlite3_bind_int64(st, 9, rv->snapshot_created_us);
	sqlite3_bind_int64(st, 10, rv->started_us);
	/* synchronous=FULL: committed is on disk, before the volume is touched. */
	return step_done(c, st, "record revert");
}

static int delete_revert_row(Catalog *c, const vss_id *snapshot_id)
{
	sqlite3_stmt *st;
	int r = prepare(c, "DELETE FROM reverts WHERE snapshot_id = ?", &st);

	if (r < 0)
		return r;
	bind_id(st, 1, snapshot_id);
	return step_done(c, st, "delete revert");
}

int catalog_drop_revert(Catalog *c, const vss_id *snapshot_id)
{
	return fault_point(POINT_CATALOG) ?: delete_revert_row(c, snapshot_id);
}

int catalog_finish_revert(Catalog *c, const CatalogRevert *rv, bool snapshot_consumed, const char *note)
{
	sqlite3_stmt *st;
	int r = fault_point(POINT_CATALOG) ?: exec(c, "BEGIN IMMEDIATE");

	if (r < 0)
		return r;
	r = delete_revert_row(c, &rv->snapshot_id);
	/* The volume's later snapshots hold what it held after the point
	 * reverted to; each says so once, for the first revert that passed it. */
	if (r >= 0 && note)
		r = prepare(c,
			    "UPDATE snapshots SET note = ?1 WHERE volume = ?2 AND note IS NULL AND id != ?3"
			    " AND set_id IN (SELECT id FROM sets WHERE state = 'created' AND created_us > ?4)",
			    &st);
	if (r >= 0 && note) {
		bind_str(st, 1, note);
		bind_str(st, 2, rv->volume);
		bind_id(st, 3, &rv->snapshot_id);
		sqlite3_bind_int64(st, 4, rv->snapshot_created_us);
		r = step_done(c, st, "note the later snapshots");
	}
	if (r >= 0 && snapshot_consumed)
		r = prepare(c,
			    "DELETE FROM sets WHERE id = (SELECT set_id FROM snapshots WHERE id = ?1)"
			    " AND NOT EXISTS (SELECT 1 FROM snapshots WHERE set_id = sets.id AND id != ?1)",
			    &st);
	if (r >= 0 && snapshot_consumed) {
		bind_id(st, 1, &rv->snapshot_id);
		r = step_done(c, st, "delete the set of a consumed snapshot");
	}
	if (r >= 0 && snapshot_consumed)
		r = prepare(c, "DELETE FROM snapshots WHERE id = ?", &st);
	if (r >= 0 && snapshot_consumed) {
		bind_id(st, 1, &rv->snapshot_id);
		r = step_done(c, st, "delete a consumed snapshot");
	}
	return transaction(c, r);
}

void catalog_revert_clear(CatalogRevert *rv)
{
	free(rv->volume);
	free(rv->provider_name);
	free(rv->snapshot_path);
	free(rv->provider_data);
	free(rv->plan);
	*rv = (CatalogRevert){ 0 };
}

void catalog_reverts_free(CatalogRevert *rv, size_t n)
{
	for (size_t i = 0; rv && i < n; i++)
		catalog_revert_clear(&rv[i]);
	free(rv);
}

int catalog_list_reverts(Catalog *c, CatalogRevert **ret, size_t *ret_n)
{
	CatalogRevert *list = NULL;
	size_t n = 0;
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(c,
		    "SELECT snapshot_id, volume, provider_id, provider, snapshot_path, provider_data, force_unmount,"
		    " plan, snapshot_created_us, started_us FROM reverts ORDER BY started_us",
		    &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		CatalogRevert *rv = array_grow((void **)&list, &n, sizeof(*list));

		if (!rv) {
			rc = SQLITE_NOMEM;
			break;
		}
		if ((r = column_id(st, 0, "revert", "valid snapshot id", &rv->snapshot_id)) < 0 ||
		    (r = column_id(st, 2, "revert", "valid provider id", &rv->provider_id)) < 0)
			break;
		rv->volume = column_str(st, 1);
		rv->provider_name = column_str(st, 3);
		rv->snapshot_path = column_str(st, 4);
		rv->provider_data = column_str(st, 5);
		rv->force_unmount = sqlite3_column_int(st, 6) != 0;
		rv->plan = column_str(st, 7);
		rv->snapshot_created_us = sqlite3_column_int64(st, 8);
		rv->started_us = sqlite3_column_int64(st, 9);
		if (!rv->volume || !rv->provider_name || !rv->snapshot_path || !rv->plan) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (r < 0 || rc != SQLITE_DONE) {
		catalog_reverts_free(list, n);
		return r < 0 ? r : rc == SQLITE_NOMEM ? -ENOMEM : fail(c, rc, "list reverts");
	}
	*ret = list;
	*ret_n = n;
	return 0;
}
