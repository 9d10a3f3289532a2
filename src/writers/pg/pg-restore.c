/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-pg-writer at restore (docs/RESTORE.md): PreRestore refuses while a
 * server runs on the directory the cluster is restored into, as its files
 * would be overwritten under it; PostRestore checks that what was restored
 * is a cluster that starts: pg_controldata reads its control file, and a
 * server is started on it, alone (no TCP, a socket directory of its own,
 * no archiving), then stopped. A cluster restored from a set is a crash
 * image: that start is its recovery, done once, here.
 *
 * Only the installed API is used, as everywhere in the writer; the server's
 * programs are run as the owner of the restored directory (PostgreSQL
 * refuses root).
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <vss/vss.h>
#include <vss/writer.h>

#include "pg-restore.h"
#include "writer-support.h"

const char *pg_restore_bindir;

/* The data directory is the "cluster" component's one path. */
#define CLUSTER_COMPONENT "cluster"

/* pg_ctl's waits, within the 60 s vssd gives an event. */
#define START_WAIT_SEC "40"
#define STOP_WAIT_SEC "10"

/* Where the restore puts path: below the alternate path of the new target
 * that holds it, else where it was. */
static char *restored_path(const vss_restore_component *c, const char *path)
{
	char *out = NULL;

	for (size_t i = 0; i < c->n_new_targets; i++) {
		const vss_restore_target *t = &c->new_targets[i];
		size_t n = strlen(t->path);

		if (strncmp(path, t->path, n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return asprintf(&out, "%s%s", t->alternate_path, path + n) < 0 ? NULL : out;
	}
	return strdup(path);
}

/* The directory the cluster is restored into, or NULL (with a failure
 * set) when this restore holds no cluster of this writer. */
static char *restore_target(vss_writer *w, bool *ret_none)
{
	const vss_restore_component *c;
	size_t n;
	vss_hr hr;

	*ret_none = false;
	hr = vss_writer_get_restore_components(w, &c, &n);
	if (VSS_FAILED(hr)) {
		vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE, vss_last_error_message());
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (!c[i].logical_path && strcmp(c[i].name, CLUSTER_COMPONENT) == 0 && c[i].n_files > 0) {
			char *t = restored_path(&c[i], c[i].files[0].path);

			if (!t)
				vss_writer_set_failure(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
			return t;
		}
	*ret_none = true;
	return NULL;
}

/* Fail the event with a message, logged too. */
static void refuse(vss_writer *w, vss_hr hr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(vss_writer *w, vss_hr hr, const char *fmt, ...)
{
	char msg[PATH_MAX + 768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ws_say(LOG_WARNING, "%s", msg);
	vss_writer_set_failure(w, hr, msg);
}

/* The postmaster that runs on dir, by its lock file: 0 when none. A pid
 * whose process works elsewhere (a stale file, a pid since reused) is
 * none; one whose working directory cannot be read counts as running. */
static pid_t running_postmaster(const char *dir)
{
	char path[PATH_MAX], cwd[PATH_MAX], link[64], *real;
	long pid = 0;
	ssize_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0 || pid > INT_MAX || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
		return 0;
	snprintf(link, sizeof(link), "/proc/%ld/cwd", pid);
	len = readlink(link, cwd, sizeof(cwd) - 1);
	if (len < 0)
		return (pid_t)pid;
	cwd[len] = '\0';
	real = realpath(dir, NULL);
	if (real && strcmp(real, cwd) != 0)
		pid = 0;
	free(real);
	return (pid_t)pid;
}

bool pg_on_pre_restore(vss_writer *w, void *userdata)
{
	char *target;
	bool none;
	pid_t pid;

	(void)userdata;
	target = restore_target(w, &none);
	if (!target)
		return none;
	pid = running_postmaster(target);
	if (pid > 0) {
		refuse(w, VSS_E_WRITERERROR_RETRYABLE,
		       "pre-restore: a PostgreSQL server (pid %d) runs on %s: stop it before restoring the cluster into it",
		       (int)pid, target);
		free(target);
		return false;
	}
	ws_say(LOG_INFO, "pre-restore: the cluster is restored into %s", target);
	free(target);
	return true;
}

/* Run argv as uid/gid (when we are root and they are another user), its
 * output to out; its exit status, or -1. */
static int run_as(uid_t uid, gid_t gid, char *const argv[], const char *out)
{
	int status, fd;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (geteuid() == 0 && uid != 0 &&
		    (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
			_exit(126);
		fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		/* The server and pg_ctl must be able to enter their working
		 * directory. */
		if (chdir("/") < 0)
			_exit(126);
		execv(argv[0], argv);
		execvp(strrchr(argv[0], '/') + 1, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last non-empty line of a file, for a failure's message. */
static void last_line(const char *path, char *buf, size_t size)
{
	char line[512];
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0])
			snprintf(buf, size, "%s", line);
	}
	if (f)
		fclose(f);
}

/* What pg_controldata says of the cluster's state: "shut down", "in
 * production" (a crash image, to be recovered), ... */
static bool control_state(const char *tool, uid_t uid, gid_t gid, const char *dir, const char *out, char *state,
                          size_t size)
{
	char *argv[] = { (char *)tool, (char *)dir, NULL };
	char line[512];
	FILE *f;

	state[0] = '\0';
	if (run_as(uid, gid, argv, out) != 0)
		return false;
	f = fopen(out, "re");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "Database cluster state:", 23) == 0) {
			char *s = line + 23;

			s += strspn(s, " \t");
			s[strcspn(s, "\n")] = '\0';
			snprintf(state, size, "%s", s);
		}
	if (f)
		fclose(f);
	return state[0] != '\0';
}

/* The directory of the server's programs: --bindir, else the one of the
 * cluster's major version (Debian's layout), else PATH. */
static void tool_path(const char *dir, const char *tool, char *buf, size_t size)
{
	char path[PATH_MAX], version[32] = "";
	FILE *f;

	if (pg_restore_bindir) {
		snprintf(buf, size, "%s/%s", pg_restore_bindir, tool);
		return;
	}
	snprintf(path, sizeof(path), "%s/PG_VERSION", dir);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(version, sizeof(version), f))
			version[0] = '\0';
		fclose(f);
	}
	version[strcspn(version, "\n")] = '\0';
	snprintf(buf, size, "/usr/lib/postgresql/%s/bin/%s", version, tool);
	if (!version[0] || access(buf, X_OK) < 0)
		snprintf(buf, size, "/usr/bin/%s", tool);
}

static bool check_start(vss_writer *w, const char *dir)
{
	char sock[] = "/tmp/vss-pg-restore-XXXXXX", out[64], log[64], opts[128], why[512] = "", state[128];
	char controldata[PATH_MAX], pg_ctl[PATH_MAX];
	struct stat st;
	bool ok = false;

	if (stat(dir, &st) < 0) {
		refuse(w, VSS_E_WRITERERROR_NONRETRYABLE, "post-restore: the restored data directory %s: %s", dir,
		       strerror(errno));
		return false;
	}
	if (!mkdtemp(sock) || chown(sock, st.st_uid, st.st_gid) < 0) {
		refuse(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "post-restore: cannot make a private socket directory: %s",
		       strerror(errno));
		return false;
	}
	snprintf(out, sizeof(out), "%s/out", sock);
	snprintf(log, sizeof(log), "%s/server.log", sock);
	tool_path(dir, "pg_controldata", controldata, sizeof(controldata));
	tool_path(dir, "pg_ctl", pg_ctl, sizeof(pg_ctl));

	/* The restored postmaster.pid (the writer leaves it out of backups,
	 * but a copy of the set has it) names a server of the backup, not one
	 * of this directory: PreRestore found none running here. */
	if (running_postmaster(dir) == 0) {
		char pidfile[PATH_MAX];

		snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", dir);
		(void)unlink(pidfile);
	}
	if (!control_state(controldata, st.st_uid, st.st_gid, dir, out, state, sizeof(state))) {
		last_line(out, why, sizeof(why));
		refuse(w, VSS_E_WRITERERROR_NONRETRYABLE,
		       "post-restore: %s is not a PostgreSQL cluster pg_controldata can read: %s", dir,
		       why[0] ? why : "no cluster state");
		goto out;
	}
	ws_say(LOG_INFO, "post-restore: %s: cluster state \"%s\"; starting a server on it", dir, state);
	snprintf(opts, sizeof(opts), "-k %s -c listen_addresses='' -c archive_mode=off", sock);
	{
		char *start[] = { pg_ctl, "-D", (char *)dir, "-l", log, "-w", "-t", START_WAIT_SEC, "-o", opts, "start",
				  NULL };
		char *stop[] = { pg_ctl, "-D", (char *)dir, "-m", "fast", "-w", "-t", STOP_WAIT_SEC, "stop", NULL };

		if (run_as(st.st_uid, st.st_gid, start, out) != 0) {
			last_line(log, why, sizeof(why));
			if (!why[0])
				last_line(out, why, sizeof(why));
			refuse(w, VSS_E_WRITERERROR_NONRETRYABLE, "post-restore: PostgreSQL does not start on the restored %s: %s",
			       dir, why[0] ? why : "pg_ctl failed");
			/* Whatever half started goes. */
			(void)run_as(st.st_uid, st.st_gid, stop, out);
			goto out;
		}
		if (run_as(st.st_uid, st.st_gid, stop, out) != 0) {
			last_line(out, why, sizeof(why));
			refuse(w, VSS_E_WRITERERROR_NONRETRYABLE,
			       "post-restore: the server started on the restored %s does not stop: %s", dir, why);
			goto out;
		}
	}
	ws_say(LOG_INFO, "post-restore: %s started and stopped", dir);
	ok = true;
out:
	(void)unlink(out);
	(void)unlink(log);
	(void)rmdir(sock);
	return ok;
}

bool pg_on_post_restore(vss_writer *w, void *userdata)
{
	char *target;
	bool none, ok;

	(void)userdata;
	target = restore_target(w, &none);
	if (!target)
		return none;
	ok = check_start(w, target);
	free(target);
	return ok;
}
