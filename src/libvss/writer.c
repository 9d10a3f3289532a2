/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The writer side of libvss. A writer is a peer-to-peer D-Bus connection to
 * vssd that exports org.vss.Writer1 at /org/vss/Writer: vssd calls Identify
 * and Event on it, the writer runs the matching callback and answers
 * (docs/WRITERS.md). The freeze-to-thaw window is also timed here, so that a
 * writer whose thaw never comes (vssd stuck or gone) thaws itself through
 * its abort callback, as CVssWriter does.
 */

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <vss/vss.h>

#include "basic/props.h"
#include "basic/util.h"
#include "libvss/client.h"
#include "protocol/bus.h"

struct vss_metadata_builder {
	vss_writer_metadata md; /* components and excluded files only */
};

struct vss_writer {
	vss_id class_id;
	char *name, *instance_name;
	vss_usage_type usage;
	vss_source_type source;
	vss_application_level level;
	uint32_t freeze_timeout_ms;
	vss_writer_callbacks cb;
	void *userdata;

	sd_bus *bus;
	sd_bus_slot *slot;
	int epoll_fd, timer_fd, stop_fd;
	vss_id instance_id;

	/* The event being handled. */
	bool in_callback;
	WriterEvent event;
	vss_hr failure;
	char *failure_message;
	bool nothing_frozen;

	/* The set the events are about, read from the last event's message
	 * when a callback first asks (context_get()). */
	sd_bus_message *event_msg;
	bool context_read;
	vss_id set_id;
	char **volumes;
	int32_t context;
	vss_backup_type backup_type;

	/* The restore's components of this writer, read from the event when
	 * the callback first asks; strings borrowed from event_msg. */
	vss_restore_component *restore;
	size_t n_restore;
	bool restore_read;

	bool frozen;
	bool in_backup;         /* prepared for a set whose end it has not heard */
	bool timed_out;
	pthread_t thread;
	bool thread_running;
};

static bool is_writer_error(vss_hr hr)
{
	switch (hr) {
	case VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT:
	case VSS_E_WRITERERROR_OUTOFRESOURCES:
	case VSS_E_WRITERERROR_TIMEOUT:
	case VSS_E_WRITERERROR_RETRYABLE:
	case VSS_E_WRITERERROR_NONRETRYABLE:
	case VSS_E_WRITERERROR_RECOVERY_FAILED:
	case VSS_E_WRITERERROR_PARTIAL_FAILURE:
		return true;
	default:
		return false;
	}
}

vss_hr vss_writer_new(const vss_id *class_id, const char *name, const char *instance_name_or_null,
                      vss_usage_type usage, vss_source_type source, vss_application_level level,
                      uint32_t freeze_timeout_ms, vss_writer **ret)
{
	vss_writer *w;

	client_begin();
	if (ret)
		*ret = NULL;
	if (!class_id || vss_id_is_null(class_id) || !name || !*name || !ret)
		return client_fail(E_INVALIDARG, "a writer needs a class id and a name");
	if (level != VSS_APP_SYSTEM && level != VSS_APP_BACK_END && level != VSS_APP_FRONT_END)
		return client_fail(E_INVALIDARG, "level %d is not front-end, back-end or system", (int)level);
	w = calloc(1, sizeof(*w));
	if (!w)
		return client_fail(E_OUTOFMEMORY, "out of memory");
	w->class_id = *class_id;
	w->name = strdup(name);
	w->instance_name = instance_name_or_null ? strdup(instance_name_or_null) : NULL;
	w->usage = usage;
	w->source = source;
	w->level = level;
	w->freeze_timeout_ms = freeze_timeout_ms ?: VSS_WRITER_DEFAULT_FREEZE_TIMEOUT_MS;
	w->epoll_fd = w->timer_fd = w->stop_fd = -1;
	if (!w->name || (instance_name_or_null && !w->instance_name)) {
		vss_writer_free(w);
		return client_fail(E_OUTOFMEMORY, "out of memory");
	}
	*ret = w;
	return S_OK;
}

vss_hr vss_writer_set_callbacks(vss_writer *w, const vss_writer_callbacks *callbacks, void *userdata)
{
	client_begin();
	if (!w || !callbacks || callbacks->version < 1 || callbacks->version > VSS_WRITER_CALLBACKS_VERSION)
		return client_fail(E_INVALIDARG, "callbacks must be given, with VSS_WRITER_CALLBACKS_VERSION");
	if (w->bus)
		return client_fail(VSS_E_BAD_STATE, "callbacks are set before subscribing");
	/* A program built with version 1 has a shorter structure: only what
	 * it has is read. */
	w->cb = (vss_writer_callbacks){ 0 };
	memcpy(&w->cb, callbacks,
	       callbacks->version == 1 ? offsetof(vss_writer_callbacks, pre_restore) : sizeof(vss_writer_callbacks));
	w->userdata = userdata;
	return S_OK;
}

static void arm_timer(vss_writer *w, bool on)
{
	struct itimerspec its = { 0 };

	if (on) {
		its.it_value.tv_sec = w->freeze_timeout_ms / 1000;
		its.it_value.tv_nsec = (long)(w->freeze_timeout_ms % 1000) * 1000000L;
	}
	(void)timerfd_settime(w->timer_fd, 0, &its, NULL);
}

/* Run one callback with the failure slot open. */
static bool run(vss_writer *w, bool (*fn)(vss_writer *, void *))
{
	bool ok;

	if (!fn)
		return true;
	w->in_callback = true;
	ok = fn(w, w->userdata);
	w->in_callback = false;
	return ok;
}

/* The writer was frozen and its thaw will not come: thaw through abort. */
static void abort_frozen(vss_writer *w)
{
	if (!w->frozen)
		return;
	w->frozen = false;
	arm_timer(w, false);
	run(w, w->cb.abort);
}

/* vssd is gone in the middle of a backup: neither Thaw nor Abort will come
 * (an Abort vssd sent while the writer was busy in a callback is lost with
 * the connection), so what the writer prepared or froze is undone now. */
static void abort_unfinished(vss_writer *w)
{
	if (!w->frozen && !w->in_backup)
		return;
	w->in_backup = false;
	w->frozen = false;
	arm_timer(w, false);
	run(w, w->cb.abort);
}

/* A variant of one basic type. sd_bus_message_read() parses its format
 * string at every call, and reading the context with it was half of what a
 * writer's process did per event (callgrind). */
static int read_variant(sd_bus_message *m, char type, void *ret)
{
	const char contents[2] = { type, '\0' };
	int r;

	r = sd_bus_message_enter_container(m, 'v', contents);
	if (r >= 0)
		r = sd_bus_message_read_basic(m, type, ret);
	if (r == 0)
		r = -EBADMSG;
	if (r > 0)
		r = sd_bus_message_exit_container(m);
	return r;
}

/* The set's volumes: the same at every event of a set, so they are copied
 * only when they differ from the last event's. */
static int read_volumes(sd_bus_message *m, vss_writer *w)
{
	_cleanup_(strv_freep) char **copy = NULL;
	const char *s;
	size_t n = 0;
	bool same = w->volumes != NULL;
	int r;

	r = sd_bus_message_enter_container(m, 'v', "as");
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "s");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_read_basic(m, 's', &s)) > 0) {
		same = same && w->volumes[n] && streq(w->volumes[n], s);
		n++;
	}
	if (r < 0)
		return r;
	if (!same || w->volumes[n]) {
		/* Read them again, from the start of the array. */
		r = sd_bus_message_rewind(m, false);
		while (r >= 0 && (r = sd_bus_message_read_basic(m, 's', &s)) > 0)
			r = strv_push_dup(&copy, s);
		if (r < 0)
			return r;
		strv_free(w->volumes);
		w->volumes = TAKE_PTR(copy);
	}
	r = sd_bus_message_exit_container(m);
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	return r;
}

/* The set's description that comes with every event but Identify. */
static int read_context(sd_bus_message *m, vss_writer *w)
{
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key, *s;
		int32_t i;

		r = sd_bus_message_read_basic(m, 's', &key);
		if (r < 0)
			return r;
		if (streq(key, "SetId")) {
			r = read_variant(m, 's', &s);
			if (r >= 0 && VSS_FAILED(vss_id_parse(s, &w->set_id)))
				r = -EBADMSG;
		} else if (streq(key, "Volumes")) {
			r = read_volumes(m, w);
		} else if (streq(key, "Context")) {
			r = read_variant(m, 'i', &w->context);
		} else if (streq(key, "BackupType")) {
			r = read_variant(m, 'i', &i);
			if (r >= 0)
				w->backup_type = (vss_backup_type)i;
		} else {
			r = sd_bus_message_skip(m, "v");
		}
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/*
 * Most callbacks never look at the set's context, and reading it (four
 * variants, some ten sd-bus calls) was most of a writer's own work per
 * event. So an event keeps its message, and the context is read from it
 * the first time an accessor asks, within that event (accessors are for
 * callbacks; the values stay until the next event). sd-bus checked the
 * message against the method's signature before the call.
 */
static vss_writer *context_get(const vss_writer *cw)
{
	vss_writer *w = (vss_writer *)cw;
	const char *name;

	if (!w || w->context_read || !w->event_msg)
		return w;
	w->context_read = true;
	if (sd_bus_message_rewind(w->event_msg, true) < 0 || sd_bus_message_read_basic(w->event_msg, 's', &name) < 0 ||
	    read_context(w->event_msg, w) < 0) {
		/* Only a peer that is not vssd sends such a context. */
		w->set_id = VSS_ID_NULL;
		strv_free(w->volumes);
		w->volumes = NULL;
	}
	return w;
}

static void restore_clear(vss_writer *w)
{
	for (size_t i = 0; i < w->n_restore; i++) {
		free((void *)w->restore[i].files);
		free((void *)w->restore[i].new_targets);
	}
	free(w->restore);
	w->restore = NULL;
	w->n_restore = 0;
	w->restore_read = false;
}

static int method_identify(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	vss_writer *w = userdata;
	vss_metadata_builder b = { 0 };
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	bool ok;
	int r;

	(void)error;
	free(w->failure_message);
	w->failure_message = NULL;
	w->failure = S_OK;
	ok = true;
	if (w->cb.identify) {
		w->in_callback = true;
		ok = w->cb.identify(w, &b, w->userdata);
		w->in_callback = false;
	}
	/* Without a reason of its own, a writer that cannot describe itself
	 * will not manage next time either. */
	if (!ok && w->failure == S_OK)
		w->failure = VSS_E_WRITERERROR_NONRETRYABLE;
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_append(reply, "bis", (int)ok, ok ? S_OK : w->failure,
					  ok ? "" : w->failure_message ?: "the writer could not describe itself");
	if (r >= 0)
		r = bus_append_components(reply, &b.md);
	vss_writer_metadata_clear(&b.md);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_event(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	vss_writer *w = userdata;
	const char *name;
	WriterEvent e;
	bool ok = true;
	vss_hr hr;
	int r;

	(void)error;
	r = sd_bus_message_read_basic(msg, 's', &name);
	if (r < 0)
		return r;
	restore_clear(w);
	sd_bus_message_unref(w->event_msg);
	w->event_msg = sd_bus_message_ref(msg);
	w->context_read = false;
	e = writer_event_from_string(name);
	w->event = e;
	free(w->failure_message);
	w->failure_message = NULL;
	w->failure = S_OK;
	w->nothing_frozen = false;

	/* From the first preparation to the end of the backup, a lost vssd
	 * means an abort. */
	if (e == EVENT_PREPARE_BACKUP || e == EVENT_PREPARE_SNAPSHOT)
		w->in_backup = true;
	else if (e == EVENT_ABORT || e == EVENT_BACKUP_COMPLETE || e == EVENT_BACKUP_SHUTDOWN)
		w->in_backup = false;
	switch (e) {
	case EVENT_PREPARE_BACKUP:
		ok = run(w, w->cb.prepare_backup);
		break;
	case EVENT_PREPARE_SNAPSHOT:
		w->timed_out = false;
		ok = run(w, w->cb.prepare_snapshot);
		break;
	case EVENT_FREEZE:
		ok = run(w, w->cb.freeze);
		if (ok) {
			w->frozen = true;
			arm_timer(w, true);
		}
		break;
	case EVENT_THAW:
		if (w->timed_out) {
			/* The window passed: abort has thawed already. */
			ok = false;
			w->failure = VSS_E_WRITERERROR_TIMEOUT;
			w->failure_message = strdup("the freeze-to-thaw window of the writer passed before thaw came");
			break;
		}
		w->frozen = false;
		arm_timer(w, false);
		ok = run(w, w->cb.thaw);
		break;
	case EVENT_POST_SNAPSHOT:
		ok = run(w, w->cb.post_snapshot);
		break;
	case EVENT_ABORT:
		w->frozen = false;
		arm_timer(w, false);
		ok = run(w, w->cb.abort);
		break;
	case EVENT_BACKUP_COMPLETE:
		ok = run(w, w->cb.backup_complete);
		break;
	case EVENT_BACKUP_SHUTDOWN:
		ok = run(w, w->cb.backup_shutdown);
		break;
	case EVENT_PRE_RESTORE:
		ok = run(w, w->cb.pre_restore);
		break;
	case EVENT_POST_RESTORE:
		ok = run(w, w->cb.post_restore);
		break;
	default:
		return sd_bus_reply_method_return(msg, "bis", 1, S_OK, "");
	}
	hr = w->failure;
	if (!ok && hr == S_OK)
		hr = VSS_E_WRITERERROR_RETRYABLE;
	/* A freeze that held nothing succeeds with S_FALSE (docs/DBUS.md). */
	if (ok && e == EVENT_FREEZE && w->nothing_frozen)
		hr = S_FALSE;
	return sd_bus_reply_method_return(msg, "bis", (int)ok, hr, w->failure_message ?: "");
}

static const sd_bus_vtable writer_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Identify", "", "bis" WRITER_METADATA_COMPONENTS, method_identify, 0),
	SD_BUS_METHOD("Event", "sa{sv}", "bis", method_event, 0),
	SD_BUS_VTABLE_END,
};

/* The same, for a peer checked once at subscribe (peer_checked()). */
static const sd_bus_vtable writer_vtable_checked[] = {
	SD_BUS_VTABLE_START(SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Identify", "", "bis" WRITER_METADATA_COMPONENTS, method_identify, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Event", "sa{sv}", "bis", method_event, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

/*
 * sd-bus lets a peer call the writer's methods if it is our uid or has
 * CAP_SYS_ADMIN, and checks it at every call: a getuid() and a credentials
 * object per event. The peer of a connected socket does not change, so when
 * it is root (vssd) or our own uid, by the kernel's SO_PEERCRED, that is
 * settled once here; any other peer is still checked call by call.
 */
static bool peer_checked(sd_bus *bus)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(sd_bus_get_fd(bus), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == getuid();
}

static void disconnect(vss_writer *w)
{
	restore_clear(w);
	w->event_msg = sd_bus_message_unref(w->event_msg);
	w->slot = sd_bus_slot_unref(w->slot);
	w->bus = sd_bus_flush_close_unref(w->bus);
	if (w->epoll_fd >= 0)
		close(w->epoll_fd);
	if (w->timer_fd >= 0)
		close(w->timer_fd);
	w->epoll_fd = w->timer_fd = -1;
}

vss_hr vss_writer_subscribe(vss_writer *w)
{
	char class_buf[VSS_ID_STRING_MAX];
	sd_bus_message *reply = NULL;
	const char *path, *instance;
	vss_hr hr;
	int r;

	client_begin();
	if (!w)
		return client_fail(E_INVALIDARG, "w is NULL");
	if (w->bus)
		return client_fail(VSS_E_WRITER_ALREADY_SUBSCRIBED, "the writer is subscribed already");

	hr = client_connect(&w->bus);
	if (VSS_FAILED(hr))
		return hr == E_ACCESSDENIED ? hr : client_fail(VSS_E_WRITER_INFRASTRUCTURE, "%s", vss_last_error_message());
	/* Events may come as soon as vssd knows us: be ready first. */
	r = sd_bus_add_object_vtable(w->bus, &w->slot, VSS_BUS_WRITER_PATH, VSS_BUS_WRITER_IFACE,
				     peer_checked(w->bus) ? writer_vtable_checked : writer_vtable, w);
	if (r >= 0) {
		w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
		if (w->timer_fd < 0 || w->epoll_fd < 0)
			r = -errno;
	}
	if (r >= 0 && (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, sd_bus_get_fd(w->bus),
				 &(struct epoll_event){ .events = EPOLLIN }) < 0 ||
		       epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->timer_fd, &(struct epoll_event){ .events = EPOLLIN }) < 0))
		r = -errno;
	if (r < 0) {
		disconnect(w);
		return client_fail(VSS_E_WRITER_INFRASTRUCTURE, "cannot set up the writer: %s", strerror(-r));
	}

	hr = client_call(w->bus, VSS_BUS_MANAGER_PATH, VSS_BUS_MANAGER_IFACE, "RegisterWriter", 0, &reply, "sssiiiu",
			 vss_id_format(&w->class_id, class_buf), w->name, w->instance_name ?: "", (int32_t)w->usage,
			 (int32_t)w->source, (int32_t)w->level, w->freeze_timeout_ms);
	if (VSS_FAILED(hr)) {
		disconnect(w);
		return hr == E_ACCESSDENIED || hr == VSS_E_WRITER_ALREADY_SUBSCRIBED
			       ? hr
			       : client_fail(VSS_E_WRITER_INFRASTRUCTURE, "%s", vss_last_error_message());
	}
	r = sd_bus_message_read(reply, "os", &path, &instance);
	if (r >= 0 && VSS_FAILED(vss_id_parse(instance, &w->instance_id)))
		r = -EBADMSG;
	sd_bus_message_unref(reply);
	if (r < 0) {
		disconnect(w);
		return client_fail(VSS_E_WRITER_INFRASTRUCTURE, "malformed reply to RegisterWriter");
	}
	return S_OK;
}

int vss_writer_get_fd(const vss_writer *w)
{
	return w && w->bus ? w->epoll_fd : -1;
}

/* sd-bus holds messages it has read already (behind a reply it waited
 * for, or a closing bus's Disconnected): its timeout is then now. */
static bool bus_has_queued(sd_bus *bus)
{
	uint64_t until;

	return sd_bus_get_timeout(bus, &until) > 0 && until == 0;
}

vss_hr vss_writer_process(vss_writer *w)
{
	uint64_t expirations;
	int r;

	client_begin();
	if (!w || !w->bus)
		return client_fail(VSS_E_BAD_STATE, "the writer is not subscribed");
	/* The timer runs only while frozen (disarming it clears what it
	 * counted), so there is nothing to read otherwise. */
	if (w->frozen && read(w->timer_fd, &expirations, sizeof(expirations)) == sizeof(expirations)) {
		/* The thaw did not come in time: undo the freeze now. */
		w->timed_out = true;
		abort_frozen(w);
	}
	/* One message per call, plus those sd-bus read ahead: the descriptor
	 * stays readable while more waits, and reading on until EAGAIN cost
	 * every event a recvmsg that found nothing. */
	do
		r = sd_bus_process(w->bus, NULL);
	while (r > 0 && bus_has_queued(w->bus));
	if (r >= 0)
		r = sd_bus_flush(w->bus);
	if (r < 0) {
		/* vssd is gone: a writer must not stay frozen or prepared. */
		abort_unfinished(w);
		disconnect(w);
		return client_fail(VSS_E_WRITER_INFRASTRUCTURE, "lost the connection to vssd: %s", strerror(-r));
	}
	return S_OK;
}

static void *writer_thread(void *arg)
{
	vss_writer *w = arg;
	struct pollfd p[2] = {
		{ .fd = w->epoll_fd, .events = POLLIN },
		{ .fd = w->stop_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (VSS_FAILED(vss_writer_process(w)))
			break;
	}
	return NULL;
}

vss_hr vss_writer_start_thread(vss_writer *w)
{
	int r;

	client_begin();
	if (!w || !w->bus || w->thread_running)
		return client_fail(VSS_E_BAD_STATE, "the writer is not subscribed, or its thread runs already");
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd < 0)
		return client_fail(E_OUTOFMEMORY, "cannot make an eventfd: %s", strerror(errno));
	r = pthread_create(&w->thread, NULL, writer_thread, w);
	if (r != 0) {
		close(w->stop_fd);
		w->stop_fd = -1;
		return client_fail(E_OUTOFMEMORY, "cannot start the writer's thread: %s", strerror(r));
	}
	w->thread_running = true;
	return S_OK;
}

vss_hr vss_writer_unsubscribe(vss_writer *w)
{
	client_begin();
	if (!w)
		return S_OK;
	if (w->thread_running) {
		uint64_t one = 1;

		if (write(w->stop_fd, &one, sizeof(one)) < 0)
			return client_fail(VSS_E_UNEXPECTED, "cannot stop the writer's thread: %s", strerror(errno));
		pthread_join(w->thread, NULL);
		w->thread_running = false;
	}
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	w->stop_fd = -1;
	abort_frozen(w);
	disconnect(w);
	return S_OK;
}

void vss_writer_free(vss_writer *w)
{
	if (!w)
		return;
	vss_writer_unsubscribe(w);
	free(w->name);
	free(w->instance_name);
	free(w->failure_message);
	strv_free(w->volumes);
	free(w);
}

vss_hr vss_writer_set_failure(vss_writer *w, vss_hr hr, const char *message_or_null)
{
	client_begin();
	if (!w || !is_writer_error(hr))
		return client_fail(E_INVALIDARG, "a writer fails with a VSS_E_WRITERERROR_* code");
	if (!w->in_callback)
		return client_fail(VSS_E_BAD_STATE, "set_failure is called from an event callback");
	w->failure = hr;
	free(w->failure_message);
	w->failure_message = message_or_null ? strdup(message_or_null) : NULL;
	return S_OK;
}

vss_hr vss_writer_set_nothing_frozen(vss_writer *w, const char *why_or_null)
{
	client_begin();
	if (!w || !w->in_callback || w->event != EVENT_FREEZE)
		return client_fail(VSS_E_BAD_STATE, "set_nothing_frozen is called from the freeze callback");
	w->nothing_frozen = true;
	free(w->failure_message);
	w->failure_message = why_or_null ? strdup(why_or_null) : NULL;
	return S_OK;
}

/* Find the component in BackupComplete's "Components" (a(sssb): instance id,
 * logical path, name, succeeded): 1 with *ret set, 0 when not there. */
static int find_outcome(sd_bus_message *m, const vss_id *instance, const char *logical_path, const char *name,
                        bool *ret)
{
	const char *key, *event;
	int r;

	r = sd_bus_message_rewind(m, true);
	if (r >= 0)
		r = sd_bus_message_read_basic(m, 's', &event);
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		r = sd_bus_message_read_basic(m, 's', &key);
		if (r >= 0 && streq(key, "Components")) {
			const char *id, *path, *n;
			int ok;

			r = sd_bus_message_enter_container(m, 'v', "a(sssb)");
			if (r > 0)
				r = sd_bus_message_enter_container(m, 'a', "(sssb)");
			while (r > 0 && (r = sd_bus_message_read(m, "(sssb)", &id, &path, &n, &ok)) > 0) {
				vss_id got;

				if (VSS_SUCCEEDED(vss_id_parse(id, &got)) && vss_id_equal(&got, instance) &&
				    streq(path, logical_path ?: "") && streq(n, name)) {
					*ret = ok;
					return 1;
				}
			}
			return r < 0 ? r : 0;
		}
		if (r >= 0)
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	return r < 0 ? r : 0;
}

vss_hr vss_writer_get_backup_succeeded(const vss_writer *w, const char *logical_path_or_null, const char *name,
                                       bool *ret_succeeded)
{
	int r;

	client_begin();
	if (!w || !name || !ret_succeeded)
		return client_fail(E_INVALIDARG, "a component's name and a place for the answer are needed");
	if (!w->in_callback || w->event != EVENT_BACKUP_COMPLETE || !w->event_msg)
		return client_fail(VSS_E_BAD_STATE, "get_backup_succeeded is called from the backup_complete callback");
	r = find_outcome(w->event_msg, &w->instance_id, logical_path_or_null, name, ret_succeeded);
	if (r < 0)
		return client_fail(VSS_E_UNEXPECTED, "vssd sent a malformed BackupComplete");
	if (r == 0)
		return client_fail(VSS_E_OBJECT_NOT_FOUND, "the requestor said nothing of component %s", name);
	return S_OK;
}

/* One component of "RestoreComponents" (RESTORE_COMPONENTS_SIGNATURE),
 * the reader inside its structure: kept in w->restore when it is of w's
 * class. */
static int read_restore_component(sd_bus_message *m, vss_writer *w)
{
	const char *class, *logical, *name, *options;
	vss_restore_component c = { 0 };
	vss_wm_file *files = NULL;
	vss_restore_target *targets = NULL;
	size_t nf = 0, nt = 0;
	vss_id class_id;
	int32_t type;
	int r;

	r = sd_bus_message_read(m, "sisss", &class, &type, &logical, &name, &options);
	if (r <= 0)
		return r < 0 ? r : -EBADMSG;
	r = sd_bus_message_enter_container(m, 'a', "(issb)");
	while (r >= 0) {
		const char *path, *spec;
		int32_t kind;
		int rec;
		vss_wm_file *f;

		r = sd_bus_message_read(m, "(issb)", &kind, &path, &spec, &rec);
		if (r <= 0)
			break;
		f = array_grow((void **)&files, &nf, sizeof(*f));
		if (!f) {
			r = -ENOMEM;
			break;
		}
		*f = (vss_wm_file){ .kind = (vss_file_kind)kind, .path = (char *)path, .filespec = (char *)spec,
				    .recursive = rec };
	}
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "(ssbs)");
	while (r >= 0) {
		const char *path, *spec, *alt;
		int rec;
		vss_restore_target *t;

		r = sd_bus_message_read(m, "(ssbs)", &path, &spec, &rec, &alt);
		if (r <= 0)
			break;
		t = array_grow((void **)&targets, &nt, sizeof(*t));
		if (!t) {
			r = -ENOMEM;
			break;
		}
		*t = (vss_restore_target){ .path = path, .filespec = spec, .recursive = rec, .alternate_path = alt };
	}
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	if (r >= 0 && VSS_SUCCEEDED(vss_id_parse(class, &class_id)) && vss_id_equal(&class_id, &w->class_id)) {
		vss_restore_component *nc = array_grow((void **)&w->restore, &w->n_restore, sizeof(*nc));

		if (nc) {
			c = (vss_restore_component){
				.type = (vss_component_type)type,
				.logical_path = logical[0] ? logical : NULL,
				.name = name,
				.restore_options = options[0] ? options : NULL,
				.files = files,
				.n_files = nf,
				.new_targets = targets,
				.n_new_targets = nt,
			};
			*nc = c;
			return 1;
		}
		r = -ENOMEM;
	}
	free(files);
	free(targets);
	return r < 0 ? r : 1;
}

static int read_restore(vss_writer *w)
{
	sd_bus_message *m = w->event_msg;
	const char *key, *event;
	int r;

	r = sd_bus_message_rewind(m, true);
	if (r >= 0)
		r = sd_bus_message_read_basic(m, 's', &event);
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		r = sd_bus_message_read_basic(m, 's', &key);
		if (r >= 0 && streq(key, "RestoreComponents")) {
			r = sd_bus_message_enter_container(m, 'v', RESTORE_COMPONENTS_SIGNATURE);
			if (r > 0)
				r = sd_bus_message_enter_container(m, 'a', "(sisssa(issb)a(ssbs))");
			while (r > 0 && (r = sd_bus_message_enter_container(m, 'r', "sisssa(issb)a(ssbs)")) > 0) {
				r = read_restore_component(m, w);
				if (r > 0)
					r = sd_bus_message_exit_container(m);
			}
			return r < 0 ? r : 0;
		}
		if (r >= 0)
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	return r < 0 ? r : 0;
}

vss_hr vss_writer_get_restore_components(const vss_writer *cw, const vss_restore_component **ret_components,
                                         size_t *ret_n)
{
	vss_writer *w = (vss_writer *)cw;
	int r;

	client_begin();
	if (ret_components)
		*ret_components = NULL;
	if (ret_n)
		*ret_n = 0;
	if (!w || !ret_components || !ret_n)
		return client_fail(E_INVALIDARG, "places for the components and their number are needed");
	if (!w->in_callback || (w->event != EVENT_PRE_RESTORE && w->event != EVENT_POST_RESTORE) || !w->event_msg)
		return client_fail(VSS_E_BAD_STATE,
				   "get_restore_components is called from the pre_restore or post_restore callback");
	if (!w->restore_read) {
		r = read_restore(w);
		if (r < 0) {
			restore_clear(w);
			return client_fail(r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED,
					   "cannot read the restore's components: %s", strerror(-r));
		}
		w->restore_read = true;
	}
	*ret_components = w->restore;
	*ret_n = w->n_restore;
	return S_OK;
}

vss_hr vss_writer_get_snapshot_set_id(const vss_writer *w, vss_id *ret)
{
	if (ret)
		*ret = VSS_ID_NULL;
	if (!w || !ret)
		return E_INVALIDARG;
	*ret = context_get(w)->set_id;
	return S_OK;
}

const char *const *vss_writer_get_volumes(const vss_writer *w)
{
	static const char *const none[] = { NULL };

	w = context_get(w);
	return w && w->volumes ? (const char *const *)w->volumes : none;
}

bool vss_writer_is_path_affected(const vss_writer *w, const char *path)
{
	w = context_get(w);
	for (size_t i = 0; w && path && w->volumes && w->volumes[i]; i++)
		if (path_is_below(path, w->volumes[i]))
			return true;
	return false;
}

int32_t vss_writer_get_context(const vss_writer *w)
{
	w = context_get(w);
	return w ? w->context : 0;
}

vss_backup_type vss_writer_get_backup_type(const vss_writer *w)
{
	w = context_get(w);
	return w ? w->backup_type : VSS_BT_UNDEFINED;
}

static vss_wm_component *find_component(vss_metadata_builder *md, const char *logical_path, const char *name)
{
	for (size_t i = 0; i < md->md.n_components; i++) {
		vss_wm_component *c = &md->md.components[i];

		if (streq(c->name, name) && streq(c->logical_path ?: "", logical_path ?: ""))
			return c;
	}
	return NULL;
}

static vss_hr add_file(vss_wm_file **files, size_t *n, vss_file_kind kind, const char *path, const char *filespec,
                       bool recursive)
{
	vss_wm_file *f;

	if (!path || !*path || !filespec || !*filespec)
		return E_INVALIDARG;
	f = array_grow((void **)files, n, sizeof(*f));
	if (!f)
		return E_OUTOFMEMORY;
	*f = (vss_wm_file){ .kind = kind, .path = strdup(path), .filespec = strdup(filespec), .recursive = recursive };
	return f->path && f->filespec ? S_OK : E_OUTOFMEMORY;
}

vss_hr vss_metadata_add_component(vss_metadata_builder *md, vss_component_type type, const char *logical_path_or_null,
                                  const char *name, const char *caption_or_null, bool selectable)
{
	vss_wm_component *c;

	if (!md || !name || !*name || (type != VSS_CT_DATABASE && type != VSS_CT_FILEGROUP))
		return E_INVALIDARG;
	if (find_component(md, logical_path_or_null, name))
		return VSS_E_OBJECT_ALREADY_EXISTS;
	c = array_grow((void **)&md->md.components, &md->md.n_components, sizeof(*c));
	if (!c)
		return E_OUTOFMEMORY;
	*c = (vss_wm_component){
		.type = type,
		.logical_path = logical_path_or_null && *logical_path_or_null ? strdup(logical_path_or_null) : NULL,
		.name = strdup(name),
		.caption = caption_or_null && *caption_or_null ? strdup(caption_or_null) : NULL,
		.selectable = selectable,
	};
	return c->name ? S_OK : E_OUTOFMEMORY;
}

static vss_hr add_to_component(vss_metadata_builder *md, const char *logical_path, const char *component,
                               vss_component_type want, vss_file_kind kind, const char *path, const char *filespec,
                               bool recursive)
{
	vss_wm_component *c;

	if (!md || !component)
		return E_INVALIDARG;
	c = find_component(md, logical_path, component);
	if (!c)
		return VSS_E_OBJECT_NOT_FOUND;
	if (c->type != want)
		return E_INVALIDARG;
	return add_file(&c->files, &c->n_files, kind, path, filespec, recursive);
}

vss_hr vss_metadata_add_files(vss_metadata_builder *md, const char *logical_path_or_null, const char *component,
                              const char *path, const char *filespec, bool recursive)
{
	return add_to_component(md, logical_path_or_null, component, VSS_CT_FILEGROUP, VSS_FK_FILES, path, filespec,
				recursive);
}

vss_hr vss_metadata_add_database_files(vss_metadata_builder *md, const char *logical_path_or_null,
                                       const char *component, const char *path, const char *filespec)
{
	return add_to_component(md, logical_path_or_null, component, VSS_CT_DATABASE, VSS_FK_DATABASE, path,
				filespec, false);
}

vss_hr vss_metadata_add_database_log_files(vss_metadata_builder *md, const char *logical_path_or_null,
                                           const char *component, const char *path, const char *filespec)
{
	return add_to_component(md, logical_path_or_null, component, VSS_CT_DATABASE, VSS_FK_DATABASE_LOG, path,
				filespec, false);
}

vss_hr vss_metadata_add_excluded_files(vss_metadata_builder *md, const char *path, const char *filespec,
                                       bool recursive)
{
	if (!md)
		return E_INVALIDARG;
	return add_file(&md->md.excluded, &md->md.n_excluded, VSS_FK_FILES, path, filespec, recursive);
}
