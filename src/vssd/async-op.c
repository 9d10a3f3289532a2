/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * IVssAsync objects. An operation's status lives here; its work (if any) is
 * the Creation's job. Wait and Cancel are answered later: their calls are
 * kept as waiters and replied to when the operation ends or the wait times
 * out, so a client blocks in its own sd_bus_call, not in vssd.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "protocol/bus.h"
#include "vssd/creation/creation.h"
#include "vssd/manager.h"
#include "vssd/revert.h"

static void waiter_free(Waiter *w)
{
	LIST_REMOVE(waiters, w->op->waiters, w);
	sd_event_source_disable_unref(w->timer);
	sd_bus_message_unref(w->call);
	free(w);
}

static void waiter_reply(Waiter *w, vss_hr hr)
{
	int r = sd_bus_reply_method_return(w->call, "i", hr);

	if (r < 0)
		log_debug_errno(r, "cannot answer a waiter: %m");
	waiter_free(w);
}

static int on_wait_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Waiter *w = userdata;

	(void)s, (void)usec;
	waiter_reply(w, w->op->status);
	return 0;
}

int async_op_add_waiter(AsyncOp *a, sd_bus_message *call, WaiterKind kind, usec_t timeout_us)
{
	Waiter *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->op = a;
	w->kind = kind;
	w->call = sd_bus_message_ref(call);
	LIST_PREPEND(waiters, a->waiters, w);
	if (timeout_us != USEC_INFINITY) {
		r = sd_event_add_time_relative(a->conn->manager->event, &w->timer, CLOCK_MONOTONIC, timeout_us,
					       0, on_wait_timeout, w);
		if (r < 0) {
			waiter_free(w);
			return r;
		}
	}
	return 0;
}

void async_op_complete(AsyncOp *a, vss_hr status)
{
	a->status = status;
	/* Each reply frees its waiter; the next is taken first. */
	for (Waiter *w = a->waiters, *next; w; w = next) {
		next = w->waiters_next;
		if (w->kind == WAITER_WAIT)
			waiter_reply(w, status);
		else if (status == VSS_S_ASYNC_CANCELLED)
			waiter_reply(w, S_OK);
		else
			/* Too late to cancel: it finished or failed. */
			waiter_reply(w, status);
	}
}

void async_op_set_message(AsyncOp *a, const char *message)
{
	char *m = message && *message ? strdup(message) : NULL;

	/* Without memory the requestor still gets the status. */
	free(a->message);
	a->message = m;
}

static int method_query_status(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	AsyncOp *a = userdata;

	(void)error;
	return sd_bus_reply_method_return(msg, "i", a->status);
}

static int method_wait(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	AsyncOp *a = userdata;
	uint32_t timeout_ms;
	int r;

	r = sd_bus_message_read(msg, "u", &timeout_ms);
	if (r < 0)
		return r;
	if (a->status != VSS_S_ASYNC_PENDING || timeout_ms == 0)
		return sd_bus_reply_method_return(msg, "i", a->status);
	r = async_op_add_waiter(a, msg, WAITER_WAIT,
				timeout_ms == UINT32_MAX ? USEC_INFINITY : timeout_ms * USEC_PER_MSEC);
	if (r < 0)
		return bus_error_set_hr(error, E_OUTOFMEMORY, "cannot wait: %s", strerror(-r));
	return 1;
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	AsyncOp *a = userdata;
	Creation *cr = a->conn->manager->creation;
	int r;

	if (a->status == VSS_S_ASYNC_CANCELLED || a->status == VSS_S_ASYNC_FINISHED || VSS_FAILED(a->status))
		return sd_bus_reply_method_return(msg, "i", a->status);

	/* Pending: only a creation does work that can be cancelled. The reply
	 * waits for the end, which says whether the cancel came in time. */
	if (cr && cr->async == a)
		job_cancel(cr->job);
	r = async_op_add_waiter(a, msg, WAITER_CANCEL, USEC_INFINITY);
	if (r < 0)
		return bus_error_set_hr(error, E_OUTOFMEMORY, "cannot cancel: %s", strerror(-r));
	return 1;
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	(void)error;
	async_op_free(userdata);
	return sd_bus_reply_method_return(msg, "");
}

static int property_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	AsyncOp *a = userdata;

	(void)bus, (void)path, (void)interface, (void)property, (void)error;
	return sd_bus_message_append(reply, "i", a->status);
}

static int property_message(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	AsyncOp *a = userdata;

	(void)bus, (void)path, (void)interface, (void)property, (void)error;
	return sd_bus_message_append(reply, "s", a->message ?: "");
}

static const sd_bus_vtable async_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Status", "i", property_status, 0, 0),
	SD_BUS_PROPERTY("Message", "s", property_message, 0, 0),
	SD_BUS_METHOD("QueryStatus", "", "i", method_query_status, 0),
	SD_BUS_METHOD("Wait", "u", "i", method_wait, 0),
	SD_BUS_METHOD("Cancel", "", "i", method_cancel, 0),
	SD_BUS_METHOD("Release", "", "", method_release, 0),
	SD_BUS_VTABLE_END,
};

int async_op_new(Connection *c, vss_hr status, AsyncOp **ret)
{
	AsyncOp *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->conn = c;
	a->status = status;
	object_path(c->manager, VSS_BUS_ASYNC_PREFIX, a->path);
	r = sd_bus_add_object_vtable(c->bus, &a->slot, a->path, VSS_BUS_ASYNC_IFACE, async_vtable, a);
	if (r < 0) {
		free(a);
		return r;
	}
	LIST_PREPEND(asyncs, c->asyncs, a);
	*ret = a;
	return 0;
}

AsyncOp *async_op_free(AsyncOp *a)
{
	Creation *cr;

	if (!a)
		return NULL;
	cr = a->conn->manager->creation;
	if (cr && cr->async == a)
		cr->async = NULL;
	revert_async_gone(a->conn->manager, a);
	for (Waiter *w = a->waiters, *next; w; w = next) {
		next = w->waiters_next;
		waiter_free(w);
	}
	LIST_REMOVE(asyncs, a->conn->asyncs, a);
	sd_bus_slot_unref(a->slot);
	free(a->message);
	free(a);
	return NULL;
}
