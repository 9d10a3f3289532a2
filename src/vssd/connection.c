/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The peer went away. The bus is in the middle of dispatching, so the
 * connection is freed from the loop afterwards. */
static int on_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	Connection *c = userdata;
	int r;

	(void)msg, (void)error;
	if (c->free_source)
		return 0;
	r = sd_event_add_defer(c->manager->event, &c->free_source, on_free, c);
	if (r < 0)
		log_error_errno(r, "cannot schedule the cleanup of a connection: %m");
	return 0;
}

/* While a server bus authenticates, sd-bus reads greedily: the peer's
 * first calls (dbus-send, GDBus and python-dbus send them right behind
 * BEGIN) can arrive in the same read and sit in sd-bus's buffer, where
 * neither epoll nor sd_bus_get_timeout() sees them (the timeout looks at
 * parsed messages only). So after each loop iteration vssd processes the
 * bus until it has nothing left; once authenticated sd-bus reads one
 * message at a time, and epoll suffices. */
static int on_post_process(sd_event_source *s, void *userdata)
{
	Connection *c = userdata;
	int r;

	do
		r = sd_bus_process(c->bus, NULL);
	while (r > 0);
	if (r < 0 || sd_bus_is_ready(c->bus) > 0)
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	return 0;
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
	r = sd_bus_attach_event(c->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		goto fail;
	r = sd_bus_start(c->bus);
	if (r < 0)
		goto fail;
	r = sd_event_add_post(m->event, &c->process_source, on_post_process, c);
	if (r < 0)
		goto fail;

	LIST_PREPEND(connections, m->connections, c);
	log_debug("connection from pid %d uid %u%s", (int)c->cred.pid, (unsigned)c->cred.uid,
		  c->privileged ? "" : " (unprivileged)");
	if (ret)
		*ret = c;
	return 0;
fail:
	sd_event_source_disable_unref(c->process_source);
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
	for (Writer *w = c->manager->writers, *next; w; w = next) {
		next = w->writers_next;
		if (w->conn == c)
			writer_free(w);
	}
	LIST_REMOVE(connections, c->manager->connections, c);
	sd_event_source_disable_unref(c->free_source);
	sd_event_source_disable_unref(c->process_source);
	/* The relay goes first: sd-bus's flush would wait for it forever. */
	relay_free(c->relay);
	sd_bus_detach_event(c->bus);
	sd_bus_flush_close_unref(c->bus);
	log_debug("connection from pid %d closed", (int)c->cred.pid);
	manager_connection_closed(c->manager);
	free(c);
	return NULL;
}
