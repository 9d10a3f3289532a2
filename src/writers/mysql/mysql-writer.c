/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-mysql-writer: the MariaDB and MySQL writer (docs/man/vss-mysql-writer.md).
 *
 *   vss-mysql-writer [--freeze-timeout=SEC] [--lock=auto|backup-stage|ftwrl]
 *                    [--defaults-file=FILE] [--socket=PATH] [--host=HOST]
 *                    [--port=PORT] [--user=USER]
 *
 * It tells vssd where one server keeps its files (data directory, InnoDB
 * system tablespace, redo log, undo tablespaces, binary log, Aria log,
 * tablespaces outside the data directory), refuses sets that would cut some
 * of them and not the others, and holds the server still across the cut:
 * BACKUP STAGE up to BLOCK_COMMIT on MariaDB, FLUSH TABLES WITH READ LOCK
 * elsewhere. InnoDB alone would recover from the set as from a crash; the
 * lock is for what does not: MyISAM and other non-transactional tables,
 * which are flushed and closed under it, and the binary log, which then
 * ends at a commit that InnoDB holds too.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include <vss/vss.h>
#include <vss/writer.h>

#include "writer-support.h"

/* One id for every vss-mysql-writer, every run and every version, so that
 * requestors can select or disable MariaDB/MySQL by it. */
#define MYSQL_WRITER_CLASS_ID "{0f7f3b3e-6a41-4c55-9d57-2b9b8f1c4e21}"
#define MYSQL_WRITER_NAME "MySQL"

/* libmariadb would otherwise wait for an unreachable TCP host as long as
 * the kernel does. */
#define CONNECT_TIMEOUT_SEC 10u
/* The longest wait for a server's answer outside the freeze: a hung
 * server must not keep the writer from answering within vssd's 60 s. */
#define READ_TIMEOUT_SEC 50u

typedef enum LockKind {
	LOCK_AUTO,
	LOCK_BACKUP_STAGE,
	LOCK_FTWRL,
} LockKind;

/* One place of the server's files, as a component describes it. */
typedef struct Place {
	char *component;
	char *caption;
	char *path;            /* a directory */
	char *filespec;
	bool recursive;
} Place;

typedef struct MyWriter {
	/* How to connect; NULL: the option files' and libmariadb's defaults. */
	const char *defaults_file, *socket, *host, *user;
	unsigned port;
	LockKind want_lock;
	uint32_t freeze_timeout_ms;

	MYSQL *conn;
	char target[512];      /* where the last connection attempt went */
	char error[1024];      /* why the last helper failed */
	unsigned error_code;   /* the server's (or libmariadb's) error number, 0 if none */

	/* The lock of the current set: held on conn, whose thread id it was
	 * taken by; a connection made again since does not hold it. */
	LockKind locked;       /* LOCK_AUTO: nothing held */
	unsigned long lock_thread;

	/* Where the server's files are, as the last identify found them:
	 * vssd chose whether the writer takes part from these, so
	 * prepare_snapshot checks the same ones. */
	char *data_dir;
	char *pid_file;
	Place *places;
	size_t n_places;
} MyWriter;

static void set_error(MyWriter *mw, unsigned code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_error(MyWriter *mw, unsigned code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mw->error, sizeof(mw->error), fmt, ap);
	va_end(ap);
	mw->error_code = code;
}

/* Errors that another attempt will not mend: the account may not log in or
 * lacks the RELOAD privilege that both locks need. */
static vss_hr failure_code(const MyWriter *mw)
{
	switch (mw->error_code) {
	case ER_ACCESS_DENIED_ERROR:
	case ER_DBACCESS_DENIED_ERROR:
	case ER_SPECIFIC_ACCESS_DENIED_ERROR:
	case ER_TABLEACCESS_DENIED_ERROR:
		return VSS_E_WRITERERROR_NONRETRYABLE;
	default:
		return VSS_E_WRITERERROR_RETRYABLE;
	}
}

static void places_free(Place *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].component);
		free(p[i].caption);
		free(p[i].path);
		free(p[i].filespec);
	}
	free(p);
}

static void layout_clear(MyWriter *mw)
{
	free(mw->data_dir);
	free(mw->pid_file);
	places_free(mw->places, mw->n_places);
	mw->data_dir = mw->pid_file = NULL;
	mw->places = NULL;
	mw->n_places = 0;
}

static void my_disconnect(MyWriter *mw)
{
	/* Closing the session is what releases a lock for certain: the
	 * server drops a session's locks when it ends. */
	mysql_close(mw->conn);
	mw->conn = NULL;
	if (mw->locked != LOCK_AUTO)
		ws_say(LOG_NOTICE, "disconnected: the server released the lock with the session");
	mw->locked = LOCK_AUTO;
}

/* How long a lock may wait: less than the freeze window, so that the
 * writer answers Freeze with the server's reason before vssd gives up. */
static unsigned lock_wait_sec(uint32_t freeze_timeout_ms)
{
	unsigned sec = freeze_timeout_ms / 1000;

	return sec > 10 ? sec - 5 : sec / 2 ?: 1;
}

/* Connect unless connected. Every event calls this, so a server that was
 * down (or restarted) is found again at the next event. */
static bool my_connect(MyWriter *mw)
{
	unsigned timeout = CONNECT_TIMEOUT_SEC, rw_timeout;
	my_bool no = 0;
	char sql[128];
	int fd;

	if (mw->conn)
		return true;

	snprintf(mw->target, sizeof(mw->target), "%s", mw->host ?: mw->socket ?: "the default socket");
	if (mw->host && mw->port)
		snprintf(mw->target, sizeof(mw->target), "%s:%u", mw->host, mw->port);
	mw->conn = mysql_init(NULL);
	if (!mw->conn) {
		set_error(mw, 0, "cannot connect to MySQL: out of memory");
		return false;
	}
	/* Never reconnect behind the writer's back: a new session does not
	 * hold the old one's lock. */
	mysql_options(mw->conn, MYSQL_OPT_RECONNECT, &no);
	mysql_options(mw->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	/* A lock may wait lock_wait_timeout, inside the freeze window: the
	 * read waits a little longer, for the server's answer. */
	rw_timeout = mw->freeze_timeout_ms / 1000 + 5;
	if (rw_timeout < READ_TIMEOUT_SEC)
		rw_timeout = READ_TIMEOUT_SEC;
	mysql_options(mw->conn, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
	mysql_options(mw->conn, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
	mysql_options(mw->conn, MYSQL_READ_DEFAULT_GROUP, "vss-mysql-writer");
	if (mw->defaults_file)
		mysql_options(mw->conn, MYSQL_READ_DEFAULT_FILE, mw->defaults_file);
	mysql_optionsv(mw->conn, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "vss-mysql-writer");

	if (!mysql_real_connect(mw->conn, mw->host, mw->user, NULL, NULL, mw->port, mw->socket, 0)) {
		set_error(mw, mysql_errno(mw->conn), "cannot connect to MySQL at %s: %s", mw->target,
			  mysql_error(mw->conn));
		my_disconnect(mw);
		return false;
	}
	/* The session, and with it any lock, must end with this process: a
	 * child (none today) must not inherit the socket and keep it open. */
	fd = mysql_get_socket(mw->conn);
	if (fd >= 0)
		(void)fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);

	/* Both locks wait for metadata locks at most lock_wait_timeout: make
	 * them give up inside the freeze window rather than after it. */
	snprintf(sql, sizeof(sql), "SET SESSION lock_wait_timeout = %u", lock_wait_sec(mw->freeze_timeout_ms));
	if (mysql_query(mw->conn, sql) != 0) {
		set_error(mw, mysql_errno(mw->conn), "cannot set lock_wait_timeout: %s", mysql_error(mw->conn));
		my_disconnect(mw);
		return false;
	}
	ws_say(LOG_INFO, "connected to %s at %s", mysql_get_server_info(mw->conn), mw->target);
	return true;
}

/* Errors of libmariadb's own, rather than the server's: the session is gone. */
static bool session_lost(unsigned code)
{
	return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST || code == CR_CONNECTION_ERROR ||
	       code == CR_CONN_HOST_ERROR || code == ER_CONNECTION_KILLED;
}

/*
 * Run one statement and return its result (NULL for one without rows, as
 * *ok says). A session lost since the last event (a restarted server) is
 * made again once, but only when allowed: never while a lock is held, as
 * the new session would not hold it.
 */
static MYSQL_RES *my_exec(MyWriter *mw, const char *sql, bool retry, bool *ok, const char *what)
{
	*ok = false;
	for (int attempt = 0; attempt < 2; attempt++) {
		MYSQL_RES *res;
		unsigned code;

		if (!my_connect(mw))
			return NULL;
		if (mysql_query(mw->conn, sql) == 0) {
			res = mysql_store_result(mw->conn);
			if (res || mysql_field_count(mw->conn) == 0) {
				*ok = true;
				return res;
			}
		}
		code = mysql_errno(mw->conn);
		set_error(mw, code, "%s: %s", what, mysql_error(mw->conn));
		if (!session_lost(code))
			return NULL;
		my_disconnect(mw);
		if (!retry)
			return NULL;
		if (attempt == 0)
			ws_say(LOG_NOTICE, "%s; connecting again", mw->error);
	}
	return NULL;
}

static bool my_do(MyWriter *mw, const char *sql, bool retry, const char *what)
{
	bool ok;

	mysql_free_result(my_exec(mw, sql, retry, &ok, what));
	return ok;
}

/* A relative path is the server's: below the data directory. */
static char *resolve(MyWriter *mw, const char *base, const char *path, const char *what)
{
	char *real = ws_resolve(base, path);

	if (!real)
		set_error(mw, 0, "cannot resolve %s %s: %s", what, path, strerror(errno));
	return real;
}

static bool add_place(Place **places, size_t *n, const char *component, const char *caption, const char *path,
		      const char *filespec, bool recursive)
{
	Place *p = realloc(*places, (*n + 1) * sizeof(**places));

	if (!p)
		return false;
	*places = p;
	p = &p[*n];
	*p = (Place) {
		.component = strdup(component),
		.caption = strdup(caption),
		.path = strdup(path),
		.filespec = strdup(filespec),
		.recursive = recursive,
	};
	(*n)++;
	return p->component && p->caption && p->path && p->filespec;
}

enum {
	V_DATADIR,
	V_DATA_HOME,
	V_LOG_HOME,
	V_UNDO_DIR,
	V_BINLOG_BASE,
	V_BINLOG_INDEX,
	V_ARIA_LOG_DIR,
	V_PID_FILE,
	_V_MAX,
};

static const char *const variable_names[_V_MAX] = {
	[V_DATADIR] = "datadir",
	[V_DATA_HOME] = "innodb_data_home_dir",
	[V_LOG_HOME] = "innodb_log_group_home_dir",
	[V_UNDO_DIR] = "innodb_undo_directory",
	[V_BINLOG_BASE] = "log_bin_basename",
	[V_BINLOG_INDEX] = "log_bin_index",
	[V_ARIA_LOG_DIR] = "aria_log_dir_path",
	[V_PID_FILE] = "pid_file",
};

/*
 * InnoDB tablespaces with a file of their own, by server: MariaDB 10.5 and
 * later name the file in INNODB_SYS_TABLESPACES, MySQL 8 in FILES, older
 * servers in INNODB_SYS_DATAFILES. A server without the table or column
 * says so and the next is tried; any other error (no PROCESS privilege)
 * fails, as a tablespace left unnamed would be left out of sets.
 */
static const char *const tablespace_queries[] = {
	"SELECT FILENAME FROM information_schema.INNODB_SYS_TABLESPACES",
	"SELECT FILE_NAME FROM information_schema.FILES WHERE ENGINE = 'InnoDB'",
	"SELECT PATH FROM information_schema.INNODB_SYS_DATAFILES",
};

/* Add the directories of InnoDB tablespaces that lie outside the places
 * found so far (those made with DATA DIRECTORY), one component each. */
static bool add_remote_tablespaces(MyWriter *mw, const char *data_dir, Place **places, size_t *n)
{
	for (size_t q = 0; q < sizeof(tablespace_queries) / sizeof(tablespace_queries[0]); q++) {
		MYSQL_RES *res;
		MYSQL_ROW row;
		bool ok;

		res = my_exec(mw, tablespace_queries[q], true, &ok, "cannot list the InnoDB tablespaces");
		if (!ok) {
			if (mw->error_code == ER_UNKNOWN_TABLE || mw->error_code == ER_NO_SUCH_TABLE ||
			    mw->error_code == ER_BAD_FIELD_ERROR)
				continue;
			return false;
		}
		if (!res || mysql_num_rows(res) == 0) {
			/* MariaDB's FILES is empty for InnoDB: try the next. */
			mysql_free_result(res);
			continue;
		}
		while ((row = mysql_fetch_row(res))) {
			char *file, *slash, caption[PATH_MAX + 64];
			bool known = false;

			if (!row[0] || !row[0][0])
				continue;
			file = resolve(mw, data_dir, row[0], "the tablespace");
			if (!file) {
				/* Being created or dropped right now. */
				ws_say(LOG_NOTICE, "%s; left out", mw->error);
				continue;
			}
			slash = strrchr(file, '/');
			*(slash == file ? slash + 1 : slash) = '\0';
			for (size_t i = 0; i < *n && !known; i++)
				known = strcmp((*places)[i].path, file) == 0 ||
					((*places)[i].recursive && ws_path_is_below(file, (*places)[i].path));
			snprintf(caption, sizeof(caption), "InnoDB tablespaces in %s", file);
			if (!known && !add_place(places, n, file, caption, file, "*.ibd", false)) {
				free(file);
				mysql_free_result(res);
				set_error(mw, 0, "out of memory");
				return false;
			}
			free(file);
		}
		mysql_free_result(res);
		return true;
	}
	return true;
}

/* Ask the server where its files are; replace the layout only if every
 * part of it was found. */
static bool layout_refresh(MyWriter *mw)
{
	char *value[_V_MAX] = {}, *dir[_V_MAX] = {}, sql[512];
	Place *places = NULL;
	size_t n = 0, len;
	MYSQL_RES *res;
	MYSQL_ROW row;
	bool ok = false, done;

	len = (size_t)snprintf(sql, sizeof(sql), "SHOW GLOBAL VARIABLES WHERE Variable_name IN (");
	for (int i = 0; i < _V_MAX; i++)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s'%s'", i ? ", " : "", variable_names[i]);
	snprintf(sql + len, sizeof(sql) - len, ")");
	res = my_exec(mw, sql, true, &done, "cannot read the server's variables");
	if (!done)
		return false;
	while (res && (row = mysql_fetch_row(res)))
		for (int i = 0; i < _V_MAX; i++)
			if (row[0] && row[1] && row[1][0] && strcasecmp(row[0], variable_names[i]) == 0) {
				free(value[i]);
				value[i] = strdup(row[1]);
			}
	mysql_free_result(res);
	if (!value[V_DATADIR]) {
		set_error(mw, 0, "the server does not say where its data directory is");
		goto out;
	}

	dir[V_DATADIR] = resolve(mw, NULL, value[V_DATADIR], "the data directory");
	if (!dir[V_DATADIR])
		goto out;
	/* Empty or relative: below the data directory. */
	for (int i = V_DATA_HOME; i <= V_ARIA_LOG_DIR; i++) {
		char *p;

		if (i == V_BINLOG_BASE || i == V_BINLOG_INDEX) {
			if (!value[i])
				continue;   /* no binary log */
			p = strrchr(value[i], '/');
			/* The files are BASE.000001...: their directory. */
			dir[i] = p ? strndup(value[i], (size_t)(p - value[i]) ?: 1) : strdup(".");
			if (!dir[i])
				goto oom;
			p = resolve(mw, dir[V_DATADIR], dir[i], variable_names[i]);
			free(dir[i]);
			dir[i] = p;
		} else
			dir[i] = resolve(mw, dir[V_DATADIR], value[i] ?: ".", variable_names[i]);
		if (!dir[i])
			goto out;
	}

	/* Not selectable: a server restored without its redo log, undo or
	 * binary log, or a tablespace, does not start or loses commits. */
	if (!add_place(&places, &n, "data", "MySQL data directory", dir[V_DATADIR], "*", true))
		goto oom;
	if (!ws_path_is_below(dir[V_DATA_HOME], dir[V_DATADIR]) &&
	    !add_place(&places, &n, "innodb-system", "InnoDB system tablespace", dir[V_DATA_HOME], "ibdata*", false))
		goto oom;
	if (!ws_path_is_below(dir[V_LOG_HOME], dir[V_DATADIR]) &&
	    !add_place(&places, &n, "redo", "InnoDB redo log", dir[V_LOG_HOME], "ib_logfile*", false))
		goto oom;
	if (!ws_path_is_below(dir[V_UNDO_DIR], dir[V_DATADIR]) &&
	    !add_place(&places, &n, "undo", "InnoDB undo tablespaces", dir[V_UNDO_DIR], "undo*", false))
		goto oom;
	if (dir[V_BINLOG_BASE] && !ws_path_is_below(dir[V_BINLOG_BASE], dir[V_DATADIR])) {
		const char *base = strrchr(value[V_BINLOG_BASE], '/');
		char spec[NAME_MAX + 3];

		snprintf(spec, sizeof(spec), "%s.*", base ? base + 1 : value[V_BINLOG_BASE]);
		if (!add_place(&places, &n, "binlog", "binary log", dir[V_BINLOG_BASE], spec, false))
			goto oom;
	}
	if (dir[V_BINLOG_INDEX] && !ws_path_is_below(dir[V_BINLOG_INDEX], dir[V_DATADIR]) &&
	    (!dir[V_BINLOG_BASE] || strcmp(dir[V_BINLOG_INDEX], dir[V_BINLOG_BASE]) != 0)) {
		const char *base = strrchr(value[V_BINLOG_INDEX], '/');

		if (!add_place(&places, &n, "binlog-index", "binary log index", dir[V_BINLOG_INDEX],
			       base ? base + 1 : value[V_BINLOG_INDEX], false))
			goto oom;
	}
	if (value[V_ARIA_LOG_DIR] && !ws_path_is_below(dir[V_ARIA_LOG_DIR], dir[V_DATADIR]) &&
	    !add_place(&places, &n, "aria-log", "Aria log", dir[V_ARIA_LOG_DIR], "aria_log*", false))
		goto oom;
	if (!add_remote_tablespaces(mw, dir[V_DATADIR], &places, &n))
		goto out;

	if (mw->data_dir && strcmp(mw->data_dir, dir[V_DATADIR]) != 0)
		ws_say(LOG_NOTICE, "the server's data directory is now %s (was %s)", dir[V_DATADIR], mw->data_dir);
	layout_clear(mw);
	mw->data_dir = dir[V_DATADIR];
	dir[V_DATADIR] = NULL;
	mw->pid_file = value[V_PID_FILE] ? resolve(mw, mw->data_dir, value[V_PID_FILE], "the pid file") : NULL;
	mw->places = places;
	mw->n_places = n;
	places = NULL;
	n = 0;
	ok = true;
	goto out;

oom:
	set_error(mw, 0, "out of memory");
out:
	places_free(places, n);
	for (int i = 0; i < _V_MAX; i++) {
		free(value[i]);
		free(dir[i]);
	}
	return ok;
}

static bool describe(const MyWriter *mw, vss_metadata_builder *md)
{
	vss_hr hr;

	for (size_t i = 0; i < mw->n_places; i++) {
		const Place *p = &mw->places[i];

		hr = vss_metadata_add_component(md, VSS_CT_FILEGROUP, NULL, p->component, p->caption, false);
		if (VSS_SUCCEEDED(hr))
			hr = vss_metadata_add_files(md, NULL, p->component, p->path, p->filespec, p->recursive);
		if (VSS_FAILED(hr))
			goto failed;
	}
	/* A copy started next to the original would take the pid file for a
	 * running server's; the temporary tablespace is made anew at start. */
	if (mw->pid_file) {
		char *slash = strrchr(mw->pid_file, '/');

		*slash = '\0';
		hr = vss_metadata_add_excluded_files(md, slash == mw->pid_file ? "/" : mw->pid_file, slash + 1, false);
		*slash = '/';
		if (VSS_FAILED(hr))
			goto failed;
	}
	hr = vss_metadata_add_excluded_files(md, mw->data_dir, "ibtmp*", false);
	if (VSS_FAILED(hr))
		goto failed;
	return true;

failed:
	ws_say(LOG_ERR, "identify: cannot describe the server: %s", vss_hr_name(hr));
	return false;
}

static bool on_identify(vss_writer *w, vss_metadata_builder *md, void *userdata)
{
	MyWriter *mw = userdata;

	/* A server that is down now may be up for the next set. */
	if (!layout_refresh(mw)) {
		ws_say(LOG_WARNING, "identify: %s", mw->error);
		vss_writer_set_failure(w, failure_code(mw), mw->error);
		return false;
	}
	return describe(mw, md);
}

/* A btrfs volume of the set when the server's files lie on more than one
 * volume, or NULL. The lock stops commits but not InnoDB's page flushing and
 * checkpoints, so data files cut later than the redo log may hold pages the
 * log does not know. */
static const char *cut_apart(const MyWriter *mw, const vss_writer *w, size_t *ret_n)
{
	const char *paths[mw->n_places + 1];

	for (size_t i = 0; i < mw->n_places; i++)
		paths[i] = mw->places[i].path;
	return ws_btrfs_cut_apart(w, paths, mw->n_places, ret_n);
}

static bool on_prepare_snapshot(vss_writer *w, void *userdata)
{
	MyWriter *mw = userdata;
	char buf[VSS_ID_STRING_MAX], msg[2048];
	size_t n_volumes;
	const char *path;

	if (!mw->data_dir && !layout_refresh(mw)) {
		vss_writer_set_failure(w, failure_code(mw), mw->error);
		return false;
	}
	/* Data, redo, undo and binary log recover together only if they
	 * were cut at one instant: a set without one of them cannot be
	 * restored. */
	for (size_t i = 0; i < mw->n_places; i++)
		if (!vss_writer_is_path_affected(w, mw->places[i].path)) {
			snprintf(msg, sizeof(msg), "%s %s is on a volume that is not in the set; the server needs its "
				 "data directory, redo and undo logs, binary log and tablespaces in one set",
				 mw->places[i].caption, mw->places[i].path);
			ws_say(LOG_WARNING, "prepare_snapshot of set %s: %s", ws_set_id_text(w, buf), msg);
			vss_writer_set_failure(w, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
			return false;
		}
	path = cut_apart(mw, w, &n_volumes);
	if (path) {
		snprintf(msg, sizeof(msg), "the server's files lie on %zu volumes of the set and %s is btrfs, which a "
			 "set cuts at its own instant; keep them on one btrfs volume, or on image volumes",
			 n_volumes, path);
		ws_say(LOG_WARNING, "prepare_snapshot of set %s: %s", ws_set_id_text(w, buf), msg);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
		return false;
	}
	/* The freeze must find a session: connect now, outside the window,
	 * and say now, with the server's words, if that cannot be done. */
	if (!my_do(mw, "SELECT 1", true, "the server does not answer")) {
		ws_say(LOG_WARNING, "prepare_snapshot of set %s: %s", ws_set_id_text(w, buf), mw->error);
		vss_writer_set_failure(w, failure_code(mw), mw->error);
		return false;
	}
	return true;
}

/* Which lock this server gets: BACKUP STAGE exists from MariaDB 10.4.1. */
static LockKind lock_kind(const MyWriter *mw)
{
	if (mw->want_lock != LOCK_AUTO)
		return mw->want_lock;
	if (strstr(mysql_get_server_info(mw->conn), "MariaDB") && mysql_get_server_version(mw->conn) >= 100401)
		return LOCK_BACKUP_STAGE;
	return LOCK_FTWRL;
}

static const char *lock_name(LockKind kind)
{
	return kind == LOCK_BACKUP_STAGE ? "BACKUP STAGE BLOCK_COMMIT" : "FLUSH TABLES WITH READ LOCK";
}

/*
 * Whether this session still holds the lock: it is the session that took
 * it, and, where the server lists metadata locks (MariaDB's
 * metadata_lock_info plugin), the list shows it. A server without that
 * plugin answers with an error that is not a lost session: the statements'
 * success on this very session is then the proof.
 */
static bool lock_held(MyWriter *mw, const char **ret_how)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	bool ok, held;

	*ret_how = "the session that took it is alive";
	res = my_exec(mw, "SELECT CONNECTION_ID()", false, &ok, "the session that holds the lock");
	if (!ok)
		return false;
	row = mysql_fetch_row(res);
	held = row && row[0] && strtoul(row[0], NULL, 10) == mw->lock_thread;
	mysql_free_result(res);
	if (!held) {
		set_error(mw, 0, "the session that took the lock has ended");
		return false;
	}

	res = my_exec(mw,
		      "SELECT LOCK_MODE FROM information_schema.METADATA_LOCK_INFO "
		      "WHERE THREAD_ID = CONNECTION_ID() AND LOCK_TYPE = 'Backup lock'",
		      false, &ok, "cannot list the metadata locks");
	if (!ok)
		return mw->conn != NULL;
	held = false;
	while ((row = mysql_fetch_row(res)))
		held = held || (row[0] && (strcmp(row[0], "MDL_BACKUP_WAIT_COMMIT") == 0 ||
					   strcmp(row[0], "MDL_BACKUP_FTWRL2") == 0));
	mysql_free_result(res);
	if (!held)
		set_error(mw, 0, "information_schema.METADATA_LOCK_INFO shows no backup lock of this session");
	*ret_how = "information_schema.METADATA_LOCK_INFO shows it";
	return held;
}

/* Let go of the lock; when the server will not, end the session, which
 * lets go of it for certain. */
static void release(MyWriter *mw, const char *event, const vss_writer *w)
{
	char buf[VSS_ID_STRING_MAX];
	LockKind kind = mw->locked;

	if (kind == LOCK_AUTO)
		return;
	if (my_do(mw, kind == LOCK_BACKUP_STAGE ? "BACKUP STAGE END" : "UNLOCK TABLES", false, "cannot release")) {
		mw->locked = LOCK_AUTO;
		ws_say(LOG_INFO, "%s of set %s: released %s", event, ws_set_id_text(w, buf), lock_name(kind));
		return;
	}
	ws_say(LOG_WARNING, "%s of set %s: %s; closing the session instead", event, ws_set_id_text(w, buf), mw->error);
	if (mw->conn)
		my_disconnect(mw);
	mw->locked = LOCK_AUTO;
}

static bool on_freeze(vss_writer *w, void *userdata)
{
	static const char *const backup_stages[] = {
		"BACKUP STAGE START", "BACKUP STAGE FLUSH", "BACKUP STAGE BLOCK_DDL", "BACKUP STAGE BLOCK_COMMIT",
	};
	MyWriter *mw = userdata;
	char buf[VSS_ID_STRING_MAX];
	const char *how;
	LockKind kind;

	/* No lock is held yet, so a session lost since PrepareSnapshot may
	 * be made again. */
	if (!my_do(mw, "SELECT 1", true, "the server does not answer"))
		goto failed;
	kind = lock_kind(mw);
	mw->lock_thread = mysql_thread_id(mw->conn);
	mw->locked = kind;
	if (kind == LOCK_BACKUP_STAGE) {
		for (size_t i = 0; i < sizeof(backup_stages) / sizeof(backup_stages[0]); i++)
			if (!my_do(mw, backup_stages[i], false, backup_stages[i]))
				goto failed;
	} else if (!my_do(mw, "FLUSH TABLES WITH READ LOCK", false, "FLUSH TABLES WITH READ LOCK"))
		goto failed;
	if (!lock_held(mw, &how))
		goto failed;
	ws_say(LOG_INFO, "freeze of set %s: holding %s (%s)", ws_set_id_text(w, buf), lock_name(kind), how);
	return true;

failed:
	ws_say(LOG_WARNING, "freeze of set %s: %s", ws_set_id_text(w, buf), mw->error);
	vss_writer_set_failure(w, failure_code(mw), mw->error);
	release(mw, "freeze", w);
	return false;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
	MyWriter *mw = userdata;
	char buf[VSS_ID_STRING_MAX], msg[1280];
	const char *how;
	bool held;

	/* Whether the lock lasted across the cut: a session that ended in
	 * between took the lock with it, and the set may hold tables caught
	 * mid-write. */
	if (mw->locked == LOCK_AUTO)
		set_error(mw, 0, "the writer held no lock");
	held = mw->locked != LOCK_AUTO && lock_held(mw, &how);
	if (!held) {
		snprintf(msg, sizeof(msg), "the lock was not held until the thaw: %s", mw->error);
		ws_say(LOG_WARNING, "thaw of set %s: %s", ws_set_id_text(w, buf), msg);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
	}
	release(mw, "thaw", w);
	return held;
}

static bool on_abort(vss_writer *w, void *userdata)
{
	MyWriter *mw = userdata;
	char buf[VSS_ID_STRING_MAX];

	if (mw->locked == LOCK_AUTO) {
		ws_say(LOG_INFO, "abort of set %s: nothing to release", ws_set_id_text(w, buf));
		return true;
	}
	release(mw, "abort", w);
	return true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vss-mysql-writer [OPTIONS]\n"
		"\n"
		"The vss writer of a MariaDB or MySQL server: reports its data directory, redo\n"
		"and undo logs, binary log and tablespaces to vssd and holds the server still\n"
		"across each snapshot set.\n"
		"\n"
		"  --defaults-file=FILE  read connection options from FILE ([client] and\n"
		"                        [vss-mysql-writer] groups of the default files otherwise)\n"
		"  --socket=PATH         connect through this unix socket\n"
		"  --host=HOST           connect to this host\n"
		"  --port=PORT           ... on this port\n"
		"  --user=USER           as this account (password: MYSQL_PWD or an option file)\n"
		"  --lock=KIND           auto (default), backup-stage or ftwrl\n"
		"  --freeze-timeout=SEC  the longest freeze-to-thaw window (default %u)\n"
		"  -h, --help            show this help\n"
		"      --version         show the version\n",
		VSS_WRITER_DEFAULT_FREEZE_TIMEOUT_MS / 1000);
}

static bool parse_port(const char *s, unsigned *ret)
{
	unsigned long port;
	char *end;

	errno = 0;
	port = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || port == 0 || port > 65535)
		return false;
	*ret = (unsigned)port;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "freeze-timeout", required_argument, NULL, 't' },
		{ "lock", required_argument, NULL, 'l' },
		{ "defaults-file", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 'S' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'P' },
		{ "user", required_argument, NULL, 'u' },
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
	};
	MyWriter mw = { .freeze_timeout_ms = VSS_WRITER_DEFAULT_FREEZE_TIMEOUT_MS };
	const char *instance;
	vss_writer *w = NULL;
	int c, sfd, ret = EXIT_FAILURE;

	ws_set_program("vss-mysql-writer");
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 't':
			if (!ws_parse_freeze_timeout(optarg, &mw.freeze_timeout_ms)) {
				fprintf(stderr, "vss-mysql-writer: --freeze-timeout: \"%s\" is not a number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case 'l':
			if (strcmp(optarg, "auto") == 0)
				mw.want_lock = LOCK_AUTO;
			else if (strcmp(optarg, "backup-stage") == 0)
				mw.want_lock = LOCK_BACKUP_STAGE;
			else if (strcmp(optarg, "ftwrl") == 0)
				mw.want_lock = LOCK_FTWRL;
			else {
				fprintf(stderr, "vss-mysql-writer: --lock: \"%s\" is none of auto, backup-stage, ftwrl\n",
					optarg);
				return 2;
			}
			break;
		case 'd':
			mw.defaults_file = optarg;
			break;
		case 'S':
			mw.socket = optarg;
			break;
		case 'H':
			mw.host = optarg;
			break;
		case 'P':
			if (!parse_port(optarg, &mw.port)) {
				fprintf(stderr, "vss-mysql-writer: --port: \"%s\" is not a port\n", optarg);
				return 2;
			}
			break;
		case 'u':
			mw.user = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("vss-mysql-writer %s\n", VSS_VERSION);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (mysql_library_init(0, NULL, NULL) != 0) {
		ws_say(LOG_ERR, "cannot initialise libmariadb");
		return EXIT_FAILURE;
	}

	sfd = ws_signals();
	if (sfd < 0)
		return EXIT_FAILURE;
	/* A write to a server gone mid-write must fail, not kill the writer
	 * before it reports. */
	signal(SIGPIPE, SIG_IGN);

	/* The instance is the server, named by its data directory; a server
	 * that is down at start is named by its address. */
	if (layout_refresh(&mw)) {
		instance = mw.data_dir;
	} else {
		ws_say(LOG_WARNING, "%s; the writer starts anyway and connects again at the next event", mw.error);
		instance = mw.target;
	}

	w = ws_subscribe(MYSQL_WRITER_CLASS_ID, MYSQL_WRITER_NAME, instance, mw.freeze_timeout_ms, &cb, &mw);
	if (!w)
		goto out;
	/* vssd gone: the library has run abort, which released. */
	ret = ws_serve(w, sfd);

out:
	/* Unsubscribing thaws through abort if frozen; closing the session
	 * would release anyway. */
	vss_writer_free(w);
	close(sfd);
	if (mw.conn)
		my_disconnect(&mw);
	layout_clear(&mw);
	mysql_library_end();
	return ret;
}
