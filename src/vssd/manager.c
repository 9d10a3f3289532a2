/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "vssd/creation/freeze.h"
#include "vssd/creation/creation.h"
#include "vssd/manager.h"
#include "vssd/revert.h"

int manager_new(Manager **ret)
{
	Manager *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->listen_fd = -1;
	m->lock_fd = -1;
	m->runtime_dir_fd = -1;
	m->bus_epoll_fd = -1;
	config_init(&m->config);
	r = sd_event_default(&m->event);
	if (r >= 0)
		r = connections_init(m);
	if (r < 0) {
		manager_free(m);
		return r;
	}
	r = sd_id128_randomize(&m->server_id);
	if (r < 0) {
		manager_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

/* Every requestor's objects go as if their peers had left, before any
 * connection does, so that the writers' connections are still there to
 * carry their Abort and BackupShutdown. */
static void release_objects(Manager *m)
{
	for (Connection *c = m->connections; c; c = c->connections_next)
		while (c->backups)
			backup_object_free(c->backups);
}

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;
	/* A stop waits in the loop for the set being cut; should the loop
	 * have ended otherwise, the job is let end without it, so that the
	 * catalog records the outcome. */
	if (m->creation) {
		creation_stop(m);
		creation_phases_off(m->creation);
		creation_finish(m);
	}
	release_objects(m);
	room_stop(m);
	revert_stop(m);
	while (m->connections)
		connection_free(m->connections);
	connections_done(m);
	m->reserve = reserve_free(m->reserve);
	sd_event_source_disable_unref(m->listen_source);
	sd_event_source_disable_unref(m->accept_timer);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	manager_unlink_socket(m);
	previous_versions_done(m);
	catalog_close(m->catalog);
	fault_table_set_global(NULL);
	fault_table_free(m->faults);
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	sd_event_unref(m->event);
	config_clear(&m->config);
	free(m->socket_path);
	free(m->state_dir);
	free(m->runtime_dir);
	safe_close(m->runtime_dir_fd);
	free(m);
	return NULL;
}

bool manager_slot_busy(Manager *m)
{
	return m->slot_owner || m->creation || m->room;
}

int manager_exit(Manager *m)
{
	/* While the loop runs: on its way out, sd-bus flushes each connection
	 * (the answers to waiters among them), then closes it. */
	release_objects(m);
	return sd_event_exit(m->event, 0);
}

int manager_check_running(Manager *m, sd_bus_error *error)
{
	if (!m->stopping)
		return 0;
	return bus_error_set_hr(error, VSS_E_UNEXPECTED, "vssd is stopping; try again once it has started again");
}

vss_hr manager_delete_snapshots(Manager *m, const CatalogSnapshot *snaps, size_t n, int32_t *ret_deleted,
                                vss_id *ret_failed, char *msg, size_t msg_size)
{
	char buf[128];

	*ret_deleted = 0;
	for (size_t i = 0; i < n; i++) {
		const provider_ops *ops = provider_find_by_id(&snaps[i].prop.provider_id);
		int r;

		if (!ops) {
			snprintf(msg, msg_size, "snapshot %s was made by provider %s, which is not registered",
				 ID_TO_STRING(&snaps[i].prop.snapshot_id), snaps[i].provider_name);
			*ret_failed = snaps[i].prop.snapshot_id;
			return VSS_E_PROVIDER_NOT_REGISTERED;
		}
		/* While its volume is reverted the store may be elsewhere (or
		 * the snapshot needed): a deletion would miss it and drop the row. */
		if (revert_holds_volume(m, snaps[i].prop.original_volume_name)) {
			snprintf(msg, msg_size, "%s is being reverted (or its revert is unfinished); its snapshots stay "
				 "until that is done", snaps[i].prop.original_volume_name);
			*ret_failed = snaps[i].prop.snapshot_id;
			return VSS_E_REVERT_IN_PROGRESS;
		}
		/* An exposed snapshot is unmounted before it goes. */
		previous_versions_drop(m, &snaps[i].prop.snapshot_id);
		if (snaps[i].prop.exposed_name) {
			vss_hr hr = snapshot_unexpose(m, &snaps[i], msg, msg_size);

			if (VSS_FAILED(hr)) {
				*ret_failed = snaps[i].prop.snapshot_id;
				return hr;
			}
		}
		r = provider_invoke_delete(m->faults, ops, snaps[i].prop.snapshot_device_object,
					   snaps[i].provider_data);
		if (r < 0) {
			snprintf(msg, msg_size, "%s provider cannot delete %s: %s", ops->name,
				 snaps[i].prop.snapshot_device_object, provider_result_string(r, buf, sizeof(buf)));
			log_error("%s", msg);
			*ret_failed = snaps[i].prop.snapshot_id;
			return provider_result_to_hr(r);
		}
		r = catalog_delete_snapshot(m->catalog, &snaps[i].prop.snapshot_id);
		if (r < 0) {
			snprintf(msg, msg_size, "deleted %s but cannot update the catalog: %s",
				 snaps[i].prop.snapshot_device_object, strerror(-r));
			*ret_failed = snaps[i].prop.snapshot_id;
			return VSS_E_UNEXPECTED;
		}
		log_info("deleted snapshot %s of %s", ID_TO_STRING(&snaps[i].prop.snapshot_id),
			 snaps[i].prop.original_volume_name);
		(*ret_deleted)++;
	}
	return S_OK;
}

void manager_delete_set(Manager *m, const vss_id *set_id, const char *why)
{
	CatalogSnapshot *snaps;
	size_t n;
	int32_t deleted;
	vss_id failed;
	char msg[512];
	vss_hr hr;
	int r;

	r = catalog_list_snapshots(m->catalog, &(CatalogFilter){ .set_id = set_id, .include_creating = true },
				   &snaps, &n);
	if (r < 0) {
		log_error_errno(r, "set %s: cannot read the catalog to delete it: %m", ID_TO_STRING(set_id));
		return;
	}
	hr = manager_delete_snapshots(m, snaps, n, &deleted, &failed, msg, sizeof(msg));
	if (VSS_FAILED(hr))
		log_error("set %s: deleting it because %s failed: %s", ID_TO_STRING(set_id), why, msg);
	else
		log_info("set %s: deleted %d snapshot(s) because %s", ID_TO_STRING(set_id), deleted, why);
	catalog_snapshots_free(snaps, n);
}

/* How long accepting pauses when vssd is out of descriptors or memory,
 * unless a connection closes first; and how often that is logged. */
#define ACCEPT_RETRY_USEC (250 * USEC_PER_MSEC)
#define ACCEPT_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

/* Log at most once per ACCEPT_LOG_INTERVAL_USEC; the next message says how
 * many were left out. */
static bool accept_log_allowed(Manager *m, unsigned *ret_suppressed)
{
	usec_t now = now_usec(CLOCK_MONOTONIC);

	if (m->accept_logged_at && now - m->accept_logged_at < ACCEPT_LOG_INTERVAL_USEC) {
		m->accept_suppressed++;
		return false;
	}
	m->accept_logged_at = now;
	*ret_suppressed = m->accept_suppressed;
	m->accept_suppressed = 0;
	return true;
}

static void accept_resume(Manager *m)
{
	if (!m->accept_paused)
		return;
	m->accept_paused = false;
	(void)sd_event_source_set_enabled(m->accept_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(m->listen_source, SD_EVENT_ON);
}

static int on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s, (void)usec;
	accept_resume(userdata);
	return 0;
}

/* The listening socket stays readable while the connection waits in the
 * backlog: without a pause, vssd would spin trying to accept it. */
static void accept_pause(Manager *m, int error)
{
	usec_t when = now_usec(CLOCK_MONOTONIC) + ACCEPT_RETRY_USEC;
	unsigned suppressed;
	int r;

	if (accept_log_allowed(m, &suppressed))
		log_warning_errno(error, "cannot accept connections: %m; pausing for %llu ms or until one closes "
				  "(%u such message(s) left out)",
				  (unsigned long long)(ACCEPT_RETRY_USEC / USEC_PER_MSEC), suppressed);
	(void)sd_event_source_set_enabled(m->listen_source, SD_EVENT_OFF);
	m->accept_paused = true;
	if (m->accept_timer)
		r = sd_event_source_set_time(m->accept_timer, when);
	else
		r = sd_event_add_time(m->event, &m->accept_timer, CLOCK_MONOTONIC, when, 0, on_accept_retry, m);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->accept_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		/* Better to spin than to stop serving. */
		accept_resume(m);
}

void manager_connection_closed(Manager *m)
{
	accept_resume(m);
}

/* Whether a new connection from uid stays within MaxConnections and
 * MaxConnectionsPerUser. root is never refused, so that the administrator
 * can always reach vssd. */
static bool connection_allowed(Manager *m, uid_t uid, const char **ret_why)
{
	unsigned all = 0, mine = 0;

	if (uid == 0)
		return true;
	for (Connection *c = m->connections; c; c = c->connections_next) {
		all++;
		mine += c->cred.uid == uid;
	}
	if (all >= m->config.max_connections) {
		*ret_why = "MaxConnections";
		return false;
	}
	if (mine >= m->config.max_connections_per_user) {
		*ret_why = "MaxConnectionsPerUser";
		return false;
	}
	return true;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	const char *why;
	unsigned suppressed;
	int cfd, r;

	(void)s, (void)revents;
	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			accept_pause(m, errno);
		else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warning_errno(errno, "accept failed: %m");
		return 0;
	}
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		close(cfd);
		return 0;
	}
	if (!connection_allowed(m, cred.uid, &why)) {
		if (accept_log_allowed(m, &suppressed))
			log_warning("refusing a connection from pid %d uid %u: %s=%u reached (%u such message(s) left out)",
				    (int)cred.pid, (unsigned)cred.uid, why,
				    streq(why, "MaxConnections") ? m->config.max_connections
								 : m->config.max_connections_per_user,
				    suppressed);
		close(cfd);
		return 0;
	}
	r = connection_new(m, cfd, NULL);
	if (r == -EMFILE || r == -ENFILE || r == -ENOMEM)
		accept_pause(m, -r);
	else if (r < 0)
		log_warning_errno(r, "cannot set up a connection: %m");
	return 0;
}

/* Whether a vssd (or anyone) answers on path: 1 if so, 0 if path is free
 * or a dead socket (left by a vssd that was killed), which may be replaced.
 * Anything else at path is not vssd's to remove. */
static int socket_in_use(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : log_error_errno(errno, "cannot look at %s: %m", path);
	if (!S_ISSOCK(st.st_mode))
		return log_error_errno(EEXIST, "%s exists and is not a socket; not replacing it", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(errno, "socket: %m");
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		/* EAGAIN: it listens, with its backlog full. */
		r = 1;
	else if (errno == ECONNREFUSED)
		r = 0;
	else
		r = log_error_errno(errno, "cannot tell whether anyone listens on %s: %m", path);
	close(fd);
	return r;
}

/* Refuse to start on a socket another vssd answers on: taking it over
 * would leave that one unreachable, and its freeze marker (next to the
 * socket) would be thawed under it. */
static int socket_check(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	if (sd_listen_fds(0) > 0)
		return 0;
	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	r = socket_in_use(path, &sa);
	if (r > 0)
		return log_error_errno(EADDRINUSE, "another vssd answers on %s; not taking it over "
				       "(stop it first, or give this one another --socket)", path);
	return r;
}

static int listen_socket(Manager *m, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	/* Socket activation: systemd passes the listening socket. */
	r = sd_listen_fds(1);
	if (r > 1)
		return log_error_errno(EINVAL, "expected one socket from the service manager, got %d", r);
	if (r == 1) {
		if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
			return log_error_errno(EINVAL, "the socket passed is not a listening AF_UNIX stream socket");
		m->listen_fd = SD_LISTEN_FDS_START;
		return 0;
	}

	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(errno, "socket: %m");
	/* socket_check() found it dead or absent; one that came alive since
	 * makes bind() fail below rather than be replaced. */
	r = socket_in_use(path, &sa);
	if (r == 0 && unlink(path) < 0 && errno != ENOENT)
		r = log_error_errno(errno, "cannot remove the dead socket %s: %m", path);
	if (r != 0) {
		close(fd);
		return r > 0 ? log_error_errno(EADDRINUSE, "another vssd answers on %s", path) : r;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = log_error_errno(errno, "cannot bind %s: %m", path);
		close(fd);
		return r;
	}
	/* Anyone may connect: vssd decides each call from the peer's
	 * credentials, and answers E_ACCESSDENIED itself. */
	if (chmod(path, 0666) < 0 || stat(path, &st) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = log_error_errno(errno, "cannot listen on %s: %m", path);
		close(fd);
		(void)unlink(path);
		return r;
	}
	m->listen_fd = fd;
	m->owns_socket = true;
	m->socket_dev = st.st_dev;
	m->socket_ino = st.st_ino;
	return 0;
}

void manager_unlink_socket(Manager *m)
{
	struct stat st;

	/* Only the socket this vssd bound: another vssd may have replaced it
	 * since (after this one stopped answering). */
	if (!m->owns_socket || !m->socket_path)
		return;
	if (lstat(m->socket_path, &st) == 0 && st.st_dev == m->socket_dev && st.st_ino == m->socket_ino)
		(void)unlink(m->socket_path);
	m->owns_socket = false;
}

int manager_start(Manager *m, const char *socket_path, const char *runtime_dir, const char *state_dir)
{
	_cleanup_free_ char *lock_path = NULL, *db_path = NULL;
	const char *faults;
	struct stat st;
	int r;

	m->socket_path = strdup(socket_path);
	m->state_dir = strdup(state_dir);
	m->runtime_dir = runtime_dir ? strdup(runtime_dir) : path_parent(socket_path);
	if (!m->socket_path || !m->state_dir || !m->runtime_dir)
		return -ENOMEM;
	r = socket_check(socket_path);
	if (r < 0)
		return r;
	r = mkdir_p(m->runtime_dir, 0755);
	if (r < 0)
		return log_error_errno(r, "cannot create %s: %m", m->runtime_dir);
	/* The freeze marker and the default exposures live here: a directory
	 * anyone else could write to would let them plant names there. */
	m->runtime_dir_fd = open(m->runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->runtime_dir_fd < 0)
		return log_error_errno(errno, "cannot open %s: %m", m->runtime_dir);
	if (fstat(m->runtime_dir_fd, &st) < 0)
		return log_error_errno(errno, "cannot stat %s: %m", m->runtime_dir);
	if (st.st_uid != 0 || (st.st_mode & 0022))
		return log_error_errno(EPERM, "%s (vssd's runtime directory) must be owned by root and writable by root "
					      "only; put the socket in a directory of its own, or name one with --runtime-dir",
				       m->runtime_dir);

	/* A vssd that stopped while holding writes left this marker: thaw
	 * first, before anything else can touch those filesystems. */
	r = freeze_recover(m->runtime_dir_fd);
	if (r > 0)
		log_warning("thawed after an unclean stop: %d filesystem(s) listed in %s/" FREEZE_MARKER, r,
			    m->runtime_dir);

	faults = getenv("VSS_FAULTS");
	if (faults && *faults) {
		r = fault_table_parse(faults, &m->faults);
		if (r < 0)
			return r;
		fault_table_set_global(m->faults);
		log_warning("fault injection is on (VSS_FAULTS=%s): for tests only", faults);
	}

	r = mkdir_p(state_dir, 0700);
	if (r < 0)
		return log_error_errno(r, "cannot create %s: %m", state_dir);
	if (asprintf(&lock_path, "%s/vssd.lock", state_dir) < 0 ||
	    asprintf(&db_path, "%s/catalog.db", state_dir) < 0)
		return -ENOMEM;
	/* One vssd per catalog. */
	m->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (m->lock_fd < 0)
		return log_error_errno(errno, "cannot open %s: %m", lock_path);
	if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return log_error_errno(errno, "another vssd uses %s: %m", state_dir);

	r = catalog_open(db_path, &m->catalog);
	if (r < 0)
		return log_error_errno(r, "cannot open the catalog %s: %m", db_path);
	/* A revert cut short is finished first: until it is, its volume is
	 * not mounted, and reconcile would find its snapshots missing. */
	r = revert_resume_all(m);
	if (r < 0)
		return r;
	r = reconcile(m);
	if (r < 0)
		return r;
	previous_versions_start(m);
	r = reserve_watch_start(m);
	if (r < 0)
		return r;

	r = listen_socket(m, socket_path);
	if (r < 0)
		return r;
	r = sd_event_add_io(m->event, &m->listen_source, m->listen_fd, EPOLLIN, on_accept, m);
	if (r < 0)
		return r;
	return 0;
}

/* SIGTERM, SIGINT: refuse new work, give up the set being cut (its writers
 * hear Abort, what it held is thawed, the catalog records that nothing was
 * kept), answer its requestor, and only then leave the loop. Leaving it at
 * once would leave the engine waiting for a phase nobody serves. */
static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Manager *m = userdata;

	(void)s;
	if (m->stopping) {
		log_info("vssd is stopping already (%s); waiting for the set being cut to end",
			 strsignal((int)si->ssi_signo));
		return 0;
	}
	m->stopping = true;
	(void)sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
	if (m->room && !m->creation) {
		/* Its measure cannot be cut short: its end answers the
		 * requestor (vssd is stopping) and leaves the loop. */
		log_info("vssd is stopping (%s): waiting for the shadow storage being measured",
			 strsignal((int)si->ssi_signo));
		return 0;
	}
	if (!m->creation && revert_running(m)) {
		/* Its end answers its requestor and leaves the loop. */
		log_info("vssd is stopping (%s): waiting for the revert being made", strsignal((int)si->ssi_signo));
		return 0;
	}
	if (!m->creation) {
		log_info("vssd is stopping (%s)", strsignal((int)si->ssi_signo));
		return manager_exit(m);
	}
	log_info("vssd is stopping (%s): giving up set %s first", strsignal((int)si->ssi_signo),
		 ID_TO_STRING(&m->creation->set.id));
	creation_stop(m);
	return 0;
}

int manager_run(Manager *m)
{
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
	if (r < 0)
		return log_error_errno(r, "cannot watch signals: %m");

	log_info("vssd %s ready on %s, state in %s", VSS_VERSION,
		 m->owns_socket ? m->socket_path : "the socket passed by the service manager", m->state_dir);
	(void)sd_notify(0, "READY=1\nSTATUS=Ready");
	r = sd_event_loop(m->event);
	if (!m->stopping)
		(void)sd_notify(0, "STOPPING=1");
	log_info("vssd stopped");
	return r;
}
