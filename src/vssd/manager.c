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
#include "vssd/freeze.h"
#include "vssd/manager.h"

int manager_new(Manager **ret)
{
	Manager *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->listen_fd = -1;
	m->lock_fd = -1;
	m->runtime_dir_fd = -1;
	config_init(&m->config);
	r = sd_event_default(&m->event);
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

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;
	/* A set being cut is let finish, so that the catalog records its
	 * outcome; the connections then go as if their peers had left. */
	if (m->creation)
		creation_finish(m);
	while (m->connections)
		connection_free(m->connections);
	sd_event_source_disable_unref(m->listen_source);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->owns_socket && m->socket_path)
		unlink(m->socket_path);
	catalog_close(m->catalog);
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
	return m->slot_owner || m->creation;
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
		/* An exposed snapshot is unmounted before it goes. */
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

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;
	int cfd, r;

	(void)s, (void)revents;
	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning_errno(errno, "accept failed: %m");
		return 0;
	}
	r = connection_new(m, cfd, NULL);
	if (r < 0)
		log_warning_errno(r, "cannot set up a connection: %m");
	return 0;
}

static int listen_socket(Manager *m, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
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

	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(errno, "socket: %m");
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = log_error_errno(errno, "cannot bind %s: %m", path);
		close(fd);
		return r;
	}
	/* Anyone may connect: vssd decides each call from the peer's
	 * credentials, and answers E_ACCESSDENIED itself. */
	if (chmod(path, 0666) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = log_error_errno(errno, "cannot listen on %s: %m", path);
		close(fd);
		return r;
	}
	m->listen_fd = fd;
	m->owns_socket = true;
	return 0;
}

int manager_start(Manager *m, const char *socket_path, const char *state_dir)
{
	_cleanup_free_ char *lock_path = NULL, *db_path = NULL;
	const char *faults;
	struct stat st;
	int r;

	m->socket_path = strdup(socket_path);
	m->state_dir = strdup(state_dir);
	m->runtime_dir = path_parent(socket_path);
	if (!m->socket_path || !m->state_dir || !m->runtime_dir)
		return -ENOMEM;
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
		return log_error_errno(EPERM, "%s (the socket's directory) must be owned by root and writable by root "
					      "only; put the socket in a directory of its own",
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
	r = reconcile(m);
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

int manager_run(Manager *m)
{
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r = sd_event_add_signal(m->event, NULL, SIGTERM, NULL, NULL);
	if (r >= 0)
		r = sd_event_add_signal(m->event, NULL, SIGINT, NULL, NULL);
	if (r < 0)
		return log_error_errno(r, "cannot watch signals: %m");

	log_info("vssd %s ready on %s, state in %s", VSS_VERSION,
		 m->owns_socket ? m->socket_path : "the socket passed by the service manager", m->state_dir);
	(void)sd_notify(0, "READY=1\nSTATUS=Ready");
	r = sd_event_loop(m->event);
	(void)sd_notify(0, "STOPPING=1");
	log_info("vssd stopping");
	return r;
}
