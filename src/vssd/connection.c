/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/log.h"
#include "protocol/bus.h"
#include "vssd/manager.h"
#include "vssd/relay.h"

/* The largest message a peer without backup privilege may send: what it may
 * call (Hello, Ping, Introspect, the manager's properties) takes a few
 * hundred bytes. */
#define UNPRIVILEGED_MESSAGE_MAX (64 * 1024)

char *object_path(Manager *m, const char *prefix, char buf[64])
{
	snprintf(buf, 64, "%s/%llu", prefix, (unsigned long long)++m->next_object);
	return buf;
}

/* busctl and other bus clients say Hello first, as if a bus daemon were
 * there; a peer-to-peer server answers with a made-up unique name. */
static int method_hello(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	(void)userdata;
	(void)error;
	return sd_bus_reply_method_return(msg, "s", ":1.1");
}

static const sd_bus_vtable dbus_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Hello", "", "s", method_hello, 0),
	SD_BUS_VTABLE_END,
};

int connection_check_objects(Connection *c, sd_bus_error *error)
{
	unsigned n = 0, max = c->manager->config.max_objects_per_connection;

	for (BackupObject *b = c->backups; b; b = b->backups_next)
		n++;
	for (AsyncOp *a = c->asyncs; a; a = a->asyncs_next)
		n++;
	if (n < max)
		return 0;
	return bus_error_set_hr(error, E_OUTOFMEMORY,
				"this connection holds %u backup objects and operations (MaxObjectsPerConnection); "
				"release some first", n);
}

static int method_create_backup_components(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	Connection *c = userdata;
	Manager *m = c->manager;
	BackupObject *b;
	int r;

	if (!c->privileged)
		return bus_error_set_hr(error, E_ACCESSDENIED,
					"uid %u is neither root nor a member of the backup-operators group \"%s\"",
					(unsigned)c->cred.uid, m->config.backup_group);
	r = manager_check_running(m, error);
	if (r >= 0)
		r = connection_check_objects(c, error);
	if (r < 0)
		return r;
	r = backup_object_new(c, &b);
	if (r < 0)
		return bus_error_set_hr(error, r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED,
					"cannot create the backup object: %s", strerror(-r));
	log_debug("pid %d uid %u created %s", (int)c->cred.pid, (unsigned)c->cred.uid, b->path);
	return sd_bus_reply_method_return(msg, "o", b->path);
}

static int method_register_writer(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	return writer_register(userdata, msg, error);
}

static int property_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	(void)bus, (void)path, (void)interface, (void)property, (void)userdata, (void)error;
	return sd_bus_message_append(reply, "s", VSS_VERSION);
}

static int property_creation_in_progress(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error)
{
	Connection *c = userdata;

	(void)bus, (void)path, (void)interface, (void)property, (void)error;
	return sd_bus_message_append(reply, "b", manager_slot_busy(c->manager));
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Version", "s", property_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("CreationInProgress", "b", property_creation_in_progress, 0, 0),
	SD_BUS_METHOD("CreateBackupComponents", "", "o", method_create_backup_components, 0),
	SD_BUS_METHOD("RegisterWriter", "sssiiiu", "os", method_register_writer, 0),
	SD_BUS_VTABLE_END,
};

static int on_free(sd_event_source *s, void *userdata)
{
	(void)s;
	connection_free(userdata);
	return 0;
}

/* The connection no longer polls its bus: it is about to be freed. */
static void connection_unpoll(Connection *c)
{
	if (c->bus_events)
		(void)epoll_ctl(c->manager->bus_epoll_fd, EPOLL_CTL_DEL, c->bus_fd, NULL);
	c->bus_events = 0;
	(void)sd_event_source_set_enabled(c->bus_timer, SD_EVENT_OFF);
}

static void connection_schedule_free(Connection *c)
{
	int r;

	if (c->free_source)
		return;
	connection_unpoll(c);
	r = sd_event_add_defer(c->manager->event, &c->free_source, on_free, c);
	if (r < 0)
		log_error_errno(r, "cannot schedule the cleanup of a connection: %m");
}

/* The peer went away. The bus is in the middle of dispatching, so the
 * connection is freed from the loop afterwards. */
static int on_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	(void)msg, (void)error;
	connection_schedule_free(userdata);
	return 0;
}

/*
 * The buses are not attached to the loop with sd_bus_attach_event(): that
 * gives every bus a prepare callback, which sd-event runs for every bus at
 * every iteration, while an iteration dispatches one source. A writer round
 * to n writers then took n iterations of n prepares each, and as many epoll
 * reports of every answer still waiting: with 256 writers, some 30 ms of
 * vssd's CPU a round. Instead every bus's fd is in one epoll set of vssd's
 * own, a single source in the loop: one wake-up processes every bus that
 * has input, and a bus's events and timeout are read again only when they
 * may have changed: after the bus was processed, and after each iteration
 * for the connections on the awake list. On it are those vssd may answer
 * from anywhere (all but a writer's that holds no objects), and, until the
 * iteration ends, the writers' that vssd sent a call to.
 */

/* Buses one wake-up serves; more are served at the next iteration. */
#define BUS_BATCH 64
/* Messages one bus processes when its timeout comes (timeouts of calls,
 * messages sd-bus holds parsed), so that one bus cannot starve the others. */
#define BUS_BUDGET 16

/* Wait for what sd-bus now waits for on c's bus: input, output when its
 * queue is not empty, and its next timeout (a call's, or now when it has
 * parsed messages still to dispatch). A bus that is closing waits for its
 * timeout alone (now), which dispatches its Disconnected. */
static void connection_rearm(Connection *c)
{
	Manager *m = c->manager;
	int events;
	uint64_t until;
	int r;

	if (c->free_source)
		return;
	events = MAX(sd_bus_get_events(c->bus), 0);
	if ((uint32_t)events != c->bus_events) {
		struct epoll_event ev = { .events = (uint32_t)events, .data.ptr = c };
		int op = events == 0 ? EPOLL_CTL_DEL : c->bus_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

		if (epoll_ctl(m->bus_epoll_fd, op, c->bus_fd, &ev) < 0) {
			log_error_errno(errno, "cannot poll the connection from pid %d: %m; dropping it", (int)c->cred.pid);
			connection_schedule_free(c);
			return;
		}
		c->bus_events = (uint32_t)events;
	}
	r = sd_bus_get_timeout(c->bus, &until);
	if (r > 0 && until != UINT64_MAX) {
		r = sd_event_source_set_time(c->bus_timer, until);
		if (r >= 0)
			r = sd_event_source_set_enabled(c->bus_timer, SD_EVENT_ONESHOT);
	} else {
		r = sd_event_source_set_enabled(c->bus_timer, SD_EVENT_OFF);
	}
	if (r < 0) {
		log_error_errno(r, "cannot set the timeout of the connection from pid %d: %m; dropping it",
				(int)c->cred.pid);
		connection_schedule_free(c);
	}
}

/* A writer's connection that holds no objects hears from vssd only through
 * writers.c, which says so (connection_touched()); every other one may be
 * answered from anywhere. Objects are made only by the connection's own
 * calls, so it leaves this state only while processed. */
static bool connection_quiet(const Connection *c)
{
	return c->ready && c->writer && !c->backups && !c->asyncs;
}

void connection_touched(Connection *c)
{
	Manager *m = c->manager;

	if (c->awake)
		return;
	c->awake = true;
	LIST_PREPEND(awake, m->awake, c);
	m->awake_added++;
}

/* Process up to budget messages, then wait for what the bus waits for. One
 * message per wake-up by input is enough once authenticated: the socket
 * stays readable while more is there, and sd-bus reads one message at a
 * time (a second call would only read EAGAIN). Until then, everything, as
 * the calls behind BEGIN may be in sd-bus's buffer (on_bus_post()). */
static void connection_process(Connection *c, unsigned budget)
{
	int r = 0;

	if (!c->ready)
		budget = UINT_MAX;
	while (budget-- > 0) {
		r = sd_bus_process(c->bus, NULL);
		if (r <= 0)
			break;
	}
	if (r < 0) {
		/* sd-bus's own loop would close the bus: the connection goes. */
		log_debug_errno(r, "processing the connection from pid %d failed: %m; dropping it", (int)c->cred.pid);
		connection_schedule_free(c);
		return;
	}
	if (!c->ready && sd_bus_is_ready(c->bus) > 0)
		c->ready = true;
	connection_rearm(c);
	if (!connection_quiet(c))
		connection_touched(c);
}

static int on_bus_input(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;
	struct epoll_event ev[BUS_BATCH];
	int n;

	(void)s, (void)fd, (void)revents;
	n = epoll_wait(m->bus_epoll_fd, ev, BUS_BATCH, 0);
	if (n < 0 && errno != EINTR)
		log_warning_errno(errno, "cannot poll the connections: %m");
	/* No connection is freed before the loop's next iteration (they go
	 * through a defer source), so each one reported is still there. */
	for (int i = 0; i < n; i++) {
		Connection *c = ev[i].data.ptr;

		if (!c->free_source)
			connection_process(c, 1);
	}
	return 0;
}

static int on_bus_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Connection *c = userdata;

	(void)s, (void)usec;
	if (!c->free_source)
		connection_process(c, BUS_BUDGET);
	return 0;
}

/* While a server bus authenticates, sd-bus reads greedily: the peer's
 * first calls (dbus-send, GDBus and python-dbus send them right behind
 * BEGIN) can arrive in the same read and sit in sd-bus's buffer, where
 * neither epoll nor sd_bus_get_timeout() sees them (the timeout looks at
 * parsed messages only). So until it is authenticated a bus is processed
 * after each loop iteration until it has nothing left; once authenticated
 * sd-bus reads one message at a time, and epoll suffices.
 *
 * What is processed here may send to other connections and so add them to
 * the list: the walk starts over until nobody was added. */
static int on_bus_post(sd_event_source *s, void *userdata)
{
	Manager *m = userdata;
	uint64_t added;

	(void)s;
	do {
		added = m->awake_added;
		for (Connection *c = m->awake, *next; c; c = next) {
			next = c->awake_next;
			if (!c->ready && !c->free_source)
				connection_process(c, UINT_MAX);
			else
				connection_rearm(c);
			if (connection_quiet(c) || c->free_source) {
				LIST_REMOVE(awake, m->awake, c);
				c->awake = false;
			}
		}
	} while (added != m->awake_added);
	return 0;
}

/* As sd-bus does for the buses attached to a loop: on the way out, what is
 * queued is sent (answers to waiters among it), then each bus closes. */
static int on_bus_exit(sd_event_source *s, void *userdata)
{
	Manager *m = userdata;

	(void)s;
	for (Connection *c = m->connections; c; c = c->connections_next) {
		connection_unpoll(c);
		(void)sd_bus_flush(c->bus);
		sd_bus_close(c->bus);
	}
	return 0;
}

int connections_init(Manager *m)
{
	int r;

	m->bus_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (m->bus_epoll_fd < 0)
		return -errno;
	r = sd_event_add_io(m->event, &m->bus_source, m->bus_epoll_fd, EPOLLIN, on_bus_input, m);
	if (r >= 0)
		r = sd_event_add_post(m->event, &m->bus_post_source, on_bus_post, m);
	if (r >= 0)
		r = sd_event_add_exit(m->event, &m->bus_exit_source, on_bus_exit, m);
	if (r < 0)
		connections_done(m);
	return r;
}

void connections_done(Manager *m)
{
	m->bus_source = sd_event_source_disable_unref(m->bus_source);
	m->bus_post_source = sd_event_source_disable_unref(m->bus_post_source);
	m->bus_exit_source = sd_event_source_disable_unref(m->bus_exit_source);
	m->bus_epoll_fd = safe_close(m->bus_epoll_fd);
}

static void on_relay_broken(void *userdata, const char *why)
{
	Connection *c = userdata;

	if (why)
		log_warning("pid %d uid %u sent %s; dropping its connection", (int)c->cred.pid,
			    (unsigned)c->cred.uid, why);
}

static bool in_group(const gid_t *groups, int n, gid_t gid)
{
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Backup privilege comes from the credentials the kernel gives for the
 * socket (SO_PEERCRED, SO_PEERGROUPS), never from what a client says. */
static bool peer_privileged(Manager *m, int fd, const struct ucred *cred)
{
	gid_t groups[NGROUPS_MAX];
	socklen_t len = sizeof(groups);
	gid_t g = m->config.backup_gid;

	if (cred->uid == 0)
		return true;
	if (g == (gid_t)-1)
		return false;
	if (cred->gid == g)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	return in_group(groups, (int)(len / sizeof(gid_t)), g);
}

int connection_new(Manager *m, int fd, Connection **ret)
{
	socklen_t len = sizeof(struct ucred);
	Connection *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->manager = m;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
		r = -errno;
		close(fd);
		free(c);
		return r;
	}
	c->privileged = peer_privileged(m, fd, &c->cred);
	/* Every peer but root talks to sd-bus through a relay that bounds
	 * what it can make vssd hold (relay.h); a member of the backup group
	 * may send what a writer's metadata needs. root stays direct, so that
	 * the administrator always reaches vssd whatever the relay does. */
	if (c->cred.uid != 0) {
		r = relay_new(m->event, fd, c->privileged ? m->config.max_backup_group_message : UNPRIVILEGED_MESSAGE_MAX,
			      on_relay_broken, c, &fd, &c->relay);
		if (r < 0) {
			free(c);
			return r;
		}
	}

	r = sd_bus_new(&c->bus);
	if (r < 0) {
		close(fd);
		relay_free(c->relay);
		free(c);
		return r;
	}
	r = sd_bus_set_fd(c->bus, fd, fd);
	if (r < 0) {
		close(fd);
		goto fail;
	}
	r = sd_bus_set_server(c->bus, 1, m->server_id);
	if (r < 0)
		goto fail;
	if (c->relay) {
		/* sd-bus sees the relay's socket, not the peer's, so it cannot
		 * check the uid the peer claims; vssd has the peer's own
		 * credentials already. No descriptors cross the relay. */
		r = sd_bus_set_anonymous(c->bus, true);
		if (r >= 0)
			r = sd_bus_negotiate_fds(c->bus, false);
		if (r < 0)
			goto fail;
	}
	/* sd-bus would refuse every method to a peer whose uid is not vssd's
	 * before vssd could apply its own rule: root or the backup-operators
	 * group, checked in CreateBackupComponents (the objects made there
	 * exist only on that peer's connection). */
	r = sd_bus_set_trusted(c->bus, true);
	if (r < 0)
		goto fail;
	r = sd_bus_add_object_vtable(c->bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus",
				     dbus_vtable, c);
	if (r < 0)
		goto fail;
	r = sd_bus_add_object_vtable(c->bus, NULL, VSS_BUS_MANAGER_PATH, VSS_BUS_MANAGER_IFACE,
				     manager_vtable, c);
	if (r < 0)
		goto fail;
	r = sd_bus_add_match(c->bus, NULL,
			     "type='signal',path='/org/freedesktop/DBus/Local',"
			     "interface='org.freedesktop.DBus.Local',member='Disconnected'",
			     on_disconnected, c);
	if (r < 0)
		goto fail;
	r = sd_bus_start(c->bus);
	if (r < 0)
		goto fail;
	c->bus_fd = sd_bus_get_fd(c->bus);
	if (c->bus_fd < 0) {
		r = c->bus_fd;
		goto fail;
	}
	/* Accuracy 1 µs: a writer's freeze timeout is its own to choose. */
	r = sd_event_add_time(m->event, &c->bus_timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_bus_timer, c);
	if (r < 0)
		goto fail;
	r = sd_event_source_set_enabled(c->bus_timer, SD_EVENT_OFF);
	if (r < 0)
		goto fail;

	LIST_PREPEND(connections, m->connections, c);
	connection_rearm(c);
	connection_touched(c);
	log_debug("connection from pid %d uid %u%s", (int)c->cred.pid, (unsigned)c->cred.uid,
		  c->privileged ? "" : " (unprivileged)");
	if (ret)
		*ret = c;
	return 0;
fail:
	sd_event_source_disable_unref(c->bus_timer);
	c->bus = sd_bus_flush_close_unref(c->bus);
	relay_free(c->relay);
	free(c);
	return r;
}

Connection *connection_free(Connection *c)
{
	if (!c)
		return NULL;
	/* Objects first: an auto-release set is deleted and the creation
	 * slot freed, exactly as if the requestor had released them. */
	while (c->backups)
		backup_object_free(c->backups);
	while (c->asyncs)
		async_op_free(c->asyncs);
	writer_free(c->writer);
	LIST_REMOVE(connections, c->manager->connections, c);
	if (c->awake)
		LIST_REMOVE(awake, c->manager->awake, c);
	connection_unpoll(c);
	sd_event_source_disable_unref(c->free_source);
	sd_event_source_disable_unref(c->bus_timer);
	/* The relay goes first: sd-bus's flush would wait for it forever. */
	relay_free(c->relay);
	sd_bus_flush_close_unref(c->bus);
	log_debug("connection from pid %d closed", (int)c->cred.pid);
	manager_connection_closed(c->manager);
	free(c);
	return NULL;
}
