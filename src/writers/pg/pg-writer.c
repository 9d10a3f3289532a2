/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-pg-writer: the PostgreSQL writer (docs/man/vss-pg-writer.md).
 *
 *   vss-pg-writer [--freeze-timeout=SEC] [CONNINFO]
 *
 * It tells vssd where one PostgreSQL cluster keeps its files (data
 * directory, WAL, tablespaces), refuses sets that would cut some of them and
 * not the others, and checkpoints before the cut so that recovery from a set
 * replays little WAL. It holds nothing at freeze: a set of image volumes is
 * cut at one instant across all its members, which is a crash of the whole
 * cluster at that instant, and PostgreSQL recovers from a crash by design.
 * A checkpoint only shortens that recovery; it is not needed for it.
 */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <vss/vss.h>
#include <vss/writer.h>

#include "pg-restore.h"
#include "writer-support.h"

/*
 * The writer class: one id for every vss-pg-writer, every run and every
 * version, so that requestors can select or disable PostgreSQL by it.
 */
#define PG_WRITER_CLASS_ID "{5b01533a-e824-4656-9e30-a72729aed85b}"
#define PG_WRITER_NAME "PostgreSQL"

/* vssd waits 60 s for an answer to any event but freeze; the checkpoint
 * must give up before that, so that the writer answers with the server's
 * reason rather than being declared unresponsive. */
#define SET_STATEMENT_TIMEOUT "SET statement_timeout = '45s'"
/* Only when neither CONNINFO nor PGCONNECT_TIMEOUT says otherwise: libpq
 * would otherwise wait for an unreachable TCP host as long as the kernel. */
#define CONNECT_TIMEOUT_SEC "10"

typedef struct Tablespace {
	char *name;
	char *path;
} Tablespace;

typedef struct PgWriter {
	const char *conninfo;
	PGconn *conn;
	char *target;          /* host:port of the last connection attempt */
	char error[1024];      /* why the last helper failed */

	/* Where the cluster's files are, as the last identify found them:
	 * vssd chose whether the writer takes part from these, so
	 * prepare_snapshot checks the same ones. */
	char *data_dir;
	char *wal_dir;
	Tablespace *tablespaces;
	size_t n_tablespaces;
} PgWriter;

/* One line: libpq's messages end in newlines and indent their hints. */
static void collapse_space(char *text)
{
	char *to = text;
	bool space = false;

	for (const char *from = text; *from; from++) {
		if (*from == '\n' || *from == '\t' || *from == ' ') {
			space = to > text;
			continue;
		}
		if (space)
			*to++ = ' ';
		space = false;
		*to++ = *from;
	}
	*to = '\0';
}

static void set_error(PgWriter *pw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(PgWriter *pw, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pw->error, sizeof(pw->error), fmt, ap);
	va_end(ap);
	collapse_space(pw->error);
}

static void tablespaces_free(Tablespace *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].name);
		free(t[i].path);
	}
	free(t);
}

static void layout_clear(PgWriter *pw)
{
	free(pw->data_dir);
	free(pw->wal_dir);
	tablespaces_free(pw->tablespaces, pw->n_tablespaces);
	pw->data_dir = pw->wal_dir = NULL;
	pw->tablespaces = NULL;
	pw->n_tablespaces = 0;
}

/* The server's notices (a shutdown's warning) go to the log, not bare to
 * stderr as libpq's default would print them. */
static void on_notice(void *arg, const char *message)
{
	char line[1024];

	(void)arg;
	snprintf(line, sizeof(line), "%s", message);
	collapse_space(line);
	ws_say(LOG_NOTICE, "server: %s", line);
}

static void pg_disconnect(PgWriter *pw)
{
	PQfinish(pw->conn);
	pw->conn = NULL;
}

/* Connect unless connected. Every event calls this, so a server that was
 * down (or restarted) is found again at the next event. */
static bool pg_connect(PgWriter *pw)
{
	const char *keys[5], *values[5];
	PGresult *res;
	char buf[512];
	int n = 0;

	if (pw->conn && PQstatus(pw->conn) == CONNECTION_OK)
		return true;
	pg_disconnect(pw);

	/* Our defaults first: a later keyword, such as those the expanded
	 * CONNINFO brings, overrides an earlier one. */
	if (!getenv("PGCONNECT_TIMEOUT")) {
		keys[n] = "connect_timeout";
		values[n++] = CONNECT_TIMEOUT_SEC;
	}
	keys[n] = "fallback_application_name";
	values[n++] = "vss-pg-writer";
	keys[n] = "dbname";
	values[n++] = pw->conninfo;
	keys[n] = NULL;
	values[n] = NULL;

	pw->conn = PQconnectdbParams(keys, values, 1);
	if (!pw->conn) {
		set_error(pw, "cannot connect to PostgreSQL: out of memory");
		return false;
	}
	PQsetNoticeProcessor(pw->conn, on_notice, NULL);
	snprintf(buf, sizeof(buf), "%s:%s", PQhost(pw->conn) ?: "?", PQport(pw->conn) ?: "?");
	free(pw->target);
	pw->target = strdup(buf);
	if (PQstatus(pw->conn) != CONNECTION_OK) {
		set_error(pw, "cannot connect to PostgreSQL at %s: %s", buf, PQerrorMessage(pw->conn));
		pg_disconnect(pw);
		return false;
	}

	res = PQexec(pw->conn, SET_STATEMENT_TIMEOUT);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		set_error(pw, "cannot set statement_timeout: %s", PQerrorMessage(pw->conn));
		PQclear(res);
		pg_disconnect(pw);
		return false;
	}
	PQclear(res);
	ws_say(LOG_INFO, "connected to PostgreSQL %d at %s", PQserverVersion(pw->conn), buf);
	return true;
}

/*
 * Whether a failed statement ended the session. libpq may still say
 * CONNECTION_OK after "server closed the connection unexpectedly": such an
 * error is libpq's own and has no SQLSTATE; the server's own end of a
 * session (shutdown, crash) is FATAL or PANIC.
 */
static bool session_lost(const PGconn *conn, const PGresult *res)
{
	const char *severity;

	if (PQstatus(conn) != CONNECTION_OK || !res || !PQresultErrorField(res, PG_DIAG_SQLSTATE))
		return true;
	severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	return severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
}

/*
 * Run one statement (each is harmless to repeat). A connection that broke
 * since the last event (a restarted server) is made again once, so that a
 * restart of PostgreSQL does not cost the next set.
 */
static PGresult *pg_exec(PgWriter *pw, const char *sql, ExecStatusType want, const char *what)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *res;

		if (!pg_connect(pw))
			return NULL;
		res = PQexec(pw->conn, sql);
		if (PQresultStatus(res) == want)
			return res;
		/* The server's own words, without libpq's "ERROR:  " and
		 * layout; libpq's when the server said nothing. */
		if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
			set_error(pw, "%s: %s", what, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		else
			set_error(pw, "%s: %s", what, PQerrorMessage(pw->conn));
		if (!session_lost(pw->conn, res)) {
			PQclear(res);
			return NULL;
		}
		PQclear(res);
		pg_disconnect(pw);
		if (attempt == 0)
			ws_say(LOG_NOTICE, "%s; connecting again", pw->error);
	}
	return NULL;
}

/* A relative path is the server's: below the data directory. */
static char *resolve(PgWriter *pw, const char *base, const char *path, const char *what)
{
	char *real = ws_resolve(base, path);

	if (!real)
		set_error(pw, "cannot resolve %s %s: %s", what, path, strerror(errno));
	return real;
}

/* Ask the server where the cluster's files are; replace the layout only if
 * every part of it was found. */
static bool layout_refresh(PgWriter *pw)
{
	char *data_dir = NULL, *wal_dir = NULL, *pg_wal = NULL;
	Tablespace *ts = NULL;
	size_t n_ts = 0;
	PGresult *res;
	int rows;

	res = pg_exec(pw, "SELECT current_setting('data_directory')", PGRES_TUPLES_OK,
		      "cannot read data_directory");
	if (!res)
		return false;
	data_dir = resolve(pw, NULL, PQgetvalue(res, 0, 0), "the data directory");
	PQclear(res);
	if (!data_dir)
		return false;

	/* pg_wal may be a symlink to another volume (initdb --waldir): the WAL
	 * is where it points. The writer runs on the server's host, so the
	 * server's paths are its own. */
	if (asprintf(&pg_wal, "%s/pg_wal", data_dir) < 0) {
		set_error(pw, "out of memory");
		goto fail;
	}
	wal_dir = resolve(pw, NULL, pg_wal, "the WAL directory");
	free(pg_wal);
	if (!wal_dir)
		goto fail;

	/* pg_default and pg_global live in the data directory and have no
	 * location of their own. */
	res = pg_exec(pw,
		      "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace "
		      "WHERE pg_tablespace_location(oid) <> '' ORDER BY spcname",
		      PGRES_TUPLES_OK, "cannot list the tablespaces");
	if (!res)
		goto fail;
	rows = PQntuples(res);
	ts = calloc(rows ?: 1, sizeof(*ts));
	if (!ts) {
		PQclear(res);
		set_error(pw, "out of memory");
		goto fail;
	}
	for (int i = 0; i < rows; i++) {
		char what[256];

		snprintf(what, sizeof(what), "tablespace %s", PQgetvalue(res, i, 0));
		ts[n_ts].name = strdup(PQgetvalue(res, i, 0));
		/* An in-place tablespace (allow_in_place_tablespaces) has a
		 * location relative to the data directory. */
		ts[n_ts].path = resolve(pw, data_dir, PQgetvalue(res, i, 1), what);
		n_ts++;
		if (!ts[n_ts - 1].name || !ts[n_ts - 1].path) {
			if (!ts[n_ts - 1].name)
				set_error(pw, "out of memory");
			PQclear(res);
			goto fail;
		}
	}
	PQclear(res);

	if (pw->data_dir && strcmp(pw->data_dir, data_dir) != 0)
		ws_say(LOG_NOTICE, "the server's data directory is now %s (was %s)", data_dir, pw->data_dir);
	layout_clear(pw);
	pw->data_dir = data_dir;
	pw->wal_dir = wal_dir;
	pw->tablespaces = ts;
	pw->n_tablespaces = n_ts;
	return true;

fail:
	free(data_dir);
	free(wal_dir);
	tablespaces_free(ts, n_ts);
	return false;
}

/* Below the data directory, what pg_basebackup leaves out (basebackup.c),
 * but not pg_wal's contents: it sends those separately, a set has them. */
static const char *const excluded_dir_contents[] = {
	/* recreated, or meaningless, after a restart */
	"pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans",
	/* slots belong to the running server, not to a copy of it */
	"pg_replslot",
};
static const char *const excluded_files[] = {
	/* a copy started next to the original would take them for a running
	 * postmaster's */
	"postmaster.pid", "postmaster.opts",
	/* left over from a backup in progress; recovery must not read them */
	"backup_label", "tablespace_map",
	/* half-written files the server removes at start */
	"postgresql.auto.conf.tmp", "current_logfiles.tmp",
};

static bool describe(const PgWriter *pw, vss_metadata_builder *md)
{
	vss_hr hr;

#define TRY(call)                                 \
	do {                                      \
		hr = (call);                      \
		if (VSS_FAILED(hr))               \
			goto failed;              \
	} while (0)

	/* Not selectable: a cluster restored without its WAL or one of its
	 * tablespaces does not start. */
	TRY(vss_metadata_add_component(md, VSS_CT_FILEGROUP, NULL, "cluster", "PostgreSQL data directory", false));
	TRY(vss_metadata_add_files(md, NULL, "cluster", pw->data_dir, "*", true));
	TRY(vss_metadata_add_component(md, VSS_CT_FILEGROUP, NULL, "wal", "PostgreSQL write-ahead log", false));
	TRY(vss_metadata_add_files(md, NULL, "wal", pw->wal_dir, "*", true));
	for (size_t i = 0; i < pw->n_tablespaces; i++) {
		char caption[256];

		snprintf(caption, sizeof(caption), "PostgreSQL tablespace %s", pw->tablespaces[i].name);
		TRY(vss_metadata_add_component(md, VSS_CT_FILEGROUP, "tablespaces", pw->tablespaces[i].name, caption,
					       false));
		TRY(vss_metadata_add_files(md, "tablespaces", pw->tablespaces[i].name, pw->tablespaces[i].path, "*",
					   true));
	}

	for (size_t i = 0; i < sizeof(excluded_dir_contents) / sizeof(excluded_dir_contents[0]); i++) {
		char *dir;

		if (asprintf(&dir, "%s/%s", pw->data_dir, excluded_dir_contents[i]) < 0) {
			hr = E_OUTOFMEMORY;
			goto failed;
		}
		hr = vss_metadata_add_excluded_files(md, dir, "*", true);
		free(dir);
		if (VSS_FAILED(hr))
			goto failed;
	}
	for (size_t i = 0; i < sizeof(excluded_files) / sizeof(excluded_files[0]); i++)
		TRY(vss_metadata_add_excluded_files(md, pw->data_dir, excluded_files[i], false));
	/* Relation cache files (global/, base/OID/): rebuilt at start. */
	TRY(vss_metadata_add_excluded_files(md, pw->data_dir, "pg_internal.init*", true));
	/* Temporary files of running queries, in every tablespace. */
	TRY(vss_metadata_add_excluded_files(md, pw->data_dir, "pgsql_tmp*", true));
	for (size_t i = 0; i < pw->n_tablespaces; i++)
		TRY(vss_metadata_add_excluded_files(md, pw->tablespaces[i].path, "pgsql_tmp*", true));
	return true;

failed:
	ws_say(LOG_ERR, "identify: cannot describe the cluster: %s", vss_hr_name(hr));
	return false;
#undef TRY
}

static bool on_identify(vss_writer *w, vss_metadata_builder *md, void *userdata)
{
	PgWriter *pw = userdata;

	/* A server that is down now may be up for the next set. */
	if (!layout_refresh(pw)) {
		ws_say(LOG_WARNING, "identify: %s", pw->error);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE, pw->error);
		return false;
	}
	return describe(pw, md);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first of the cluster's places that the set leaves out, or NULL. */
static const char *unaffected(const PgWriter *pw, const vss_writer *w, const char **ret_what)
{
	if (!vss_writer_is_path_affected(w, pw->data_dir)) {
		*ret_what = "the data directory";
		return pw->data_dir;
	}
	if (!vss_writer_is_path_affected(w, pw->wal_dir)) {
		*ret_what = "the WAL directory";
		return pw->wal_dir;
	}
	for (size_t i = 0; i < pw->n_tablespaces; i++)
		if (!vss_writer_is_path_affected(w, pw->tablespaces[i].path)) {
			*ret_what = "a tablespace";
			return pw->tablespaces[i].path;
		}
	return NULL;
}

/*
 * A volume of the set holding part of the cluster that the set does not cut
 * at the same instant as the others, or NULL. Mounted image volumes are
 * frozen together and cloned inside the freeze: one instant. With data and
 * WAL on two btrfs volumes, what recovery would find is not a crash but two.
 */
static const char *cut_apart(const PgWriter *pw, const vss_writer *w, size_t *ret_n)
{
	const char *paths[2 + pw->n_tablespaces];

	paths[0] = pw->data_dir;
	paths[1] = pw->wal_dir;
	for (size_t i = 0; i < pw->n_tablespaces; i++)
		paths[2 + i] = pw->tablespaces[i].path;
	return ws_btrfs_cut_apart(w, paths, 2 + pw->n_tablespaces, ret_n);
}

static bool on_prepare_snapshot(vss_writer *w, void *userdata)
{
	PgWriter *pw = userdata;
	char buf[VSS_ID_STRING_MAX], msg[1536];
	const char *path, *what = NULL;
	size_t n_volumes;
	PGresult *res;
	int64_t start;

	if (!pw->data_dir && !layout_refresh(pw)) {
		vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE, pw->error);
		return false;
	}
	/* Data, WAL and tablespaces recover together only if they were cut at
	 * one instant: a set without one of them cannot be restored. */
	path = unaffected(pw, w, &what);
	if (path) {
		snprintf(msg, sizeof(msg), "%s %s is on a volume that is not in the set; "
			 "PostgreSQL needs its data directory, WAL and tablespaces in one set", what, path);
		ws_say(LOG_WARNING, "prepare_snapshot of set %s: %s", ws_set_id_text(w, buf), msg);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
		return false;
	}
	/* Nothing is held at freeze because the set is one instant: where it
	 * is not, say so rather than call a set consistent that is not. */
	path = cut_apart(pw, w, &n_volumes);
	if (path) {
		snprintf(msg, sizeof(msg), "the cluster lies on %zu volumes of the set and %s is btrfs, which a set "
			 "cuts at its own instant; keep the data directory, WAL and tablespaces on one btrfs volume, "
			 "or on image volumes", n_volumes, path);
		ws_say(LOG_WARNING, "prepare_snapshot of set %s: %s", ws_set_id_text(w, buf), msg);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
		return false;
	}

	/* Not for consistency: so that a server started on the set replays
	 * only the WAL written since this checkpoint. */
	start = now_ms();
	res = pg_exec(pw, "CHECKPOINT", PGRES_COMMAND_OK, "CHECKPOINT failed");
	if (!res) {
		ws_say(LOG_WARNING, "prepare_snapshot of set %s: %s", ws_set_id_text(w, buf), pw->error);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE, pw->error);
		return false;
	}
	PQclear(res);
	ws_say(LOG_INFO, "prepare_snapshot of set %s: checkpoint done in %lld ms", ws_set_id_text(w, buf),
	       (long long)(now_ms() - start));
	return true;
}

static bool on_freeze(vss_writer *w, void *userdata)
{
	char buf[VSS_ID_STRING_MAX];

	(void)userdata;
	/* Holding writes here would add nothing: the set freezes every volume
	 * at once, so data and WAL are cut at one instant, which is what a
	 * crash leaves, and PostgreSQL recovers from a crash. */
	ws_say(LOG_INFO, "freeze of set %s: nothing to hold; the set cuts data and WAL at one instant",
	       ws_set_id_text(w, buf));
	return true;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
	char buf[VSS_ID_STRING_MAX];

	(void)userdata;
	ws_say(LOG_INFO, "thaw of set %s: nothing to release", ws_set_id_text(w, buf));
	return true;
}

static bool on_abort(vss_writer *w, void *userdata)
{
	char buf[VSS_ID_STRING_MAX];

	(void)userdata;
	ws_say(LOG_INFO, "abort of set %s: nothing to undo", ws_set_id_text(w, buf));
	return true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vss-pg-writer [--freeze-timeout=SEC] [--bindir=DIR] [CONNINFO]\n"
		"\n"
		"The vss writer of a PostgreSQL cluster: reports its data directory, WAL and\n"
		"tablespaces to vssd and checkpoints before each snapshot set.\n"
		"\n"
		"  CONNINFO              a libpq connection string or URI (PG* variables apply)\n"
		"  --freeze-timeout=SEC  the longest freeze-to-thaw window (default %u)\n"
		"  --bindir=DIR          where pg_ctl and pg_controldata are, for restores\n"
		"  -h, --help            show this help\n"
		"      --version         show the version\n",
		VSS_WRITER_DEFAULT_FREEZE_TIMEOUT_MS / 1000);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "freeze-timeout", required_argument, NULL, 't' },
		{ "bindir", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	vss_writer_callbacks cb = {
		.version = VSS_WRITER_CALLBACKS_VERSION,
		.identify = on_identify,
		.prepare_snapshot = on_prepare_snapshot,
		.freeze = on_freeze,
		.thaw = on_thaw,
		.abort = on_abort,
		.backup_complete = ws_on_backup_complete,
		.pre_restore = pg_on_pre_restore,
		.post_restore = pg_on_post_restore,
	};
	PgWriter pw = { .conninfo = "" };
	uint32_t freeze_timeout_ms = 0;
	const char *instance;
	vss_writer *w = NULL;
	int c, sfd, ret = EXIT_FAILURE;

	ws_set_program("vss-pg-writer");
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 't':
			if (!ws_parse_freeze_timeout(optarg, &freeze_timeout_ms)) {
				fprintf(stderr, "vss-pg-writer: --freeze-timeout: \"%s\" is not a number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case 'b':
			pg_restore_bindir = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("vss-pg-writer %s\n", VSS_VERSION);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return 2;
	}
	if (optind < argc)
		pw.conninfo = argv[optind];

	sfd = ws_signals();
	if (sfd < 0)
		return EXIT_FAILURE;

	/* The instance is the cluster, named by its data directory; a server
	 * that is down at start is named by its address until the next start
	 * of the writer, as the name cannot change while subscribed. */
	if (layout_refresh(&pw)) {
		instance = pw.data_dir;
	} else {
		ws_say(LOG_WARNING, "%s; the writer starts anyway and connects again at the next event", pw.error);
		instance = pw.target;
	}

	w = ws_subscribe(PG_WRITER_CLASS_ID, PG_WRITER_NAME, instance, freeze_timeout_ms, &cb, &pw);
	if (!w)
		goto out;
	ret = ws_serve(w, sfd);

out:
	vss_writer_free(w);
	close(sfd);
	pg_disconnect(&pw);
	layout_clear(&pw);
	free(pw.target);
	return ret;
}
