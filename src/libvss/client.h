/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the requestor objects of libvss share: the connection to vssd, the
 * per-thread error message and the method-call helper. */

#include <systemd/sd-bus.h>

#include <stdbool.h>

#include <vss/hresult.h>
#include <vss/writer.h>

#include "basic/macro.h"

struct vss_backup {
	sd_bus *bus;
	char *path;
	/* Read from vssd on first use, lent to the caller until freed. */
	vss_writer_metadata *metadata;
	size_t n_metadata;
	bool have_metadata;
	vss_writer_status *status;
	size_t n_status;
	bool have_status;
};

struct vss_async {
	sd_bus *bus;
	char *path;
	/* The status Wait saw, once the operation had ended: it cannot
	 * change any more, so QueryStatus need not ask again. */
	vss_hr final_status;
	bool ended;
};

/* Record the detail of a failure for vss_last_error_message(); returns hr. */
vss_hr client_fail(vss_hr hr, const char *fmt, ...) _printf_(2, 3);
/* Start a public call: clears the message of the previous one. */
void client_begin(void);

/* Open a connection to vssd ($VSS_SOCKET or the default socket). */
vss_hr client_connect(sd_bus **ret);

/*
 * Call a method of the object at path, with arguments given as for
 * sd_bus_message_append(). On failure the D-Bus error becomes the vss result
 * (and message). timeout_usec 0 means the default.
 */
vss_hr client_call(sd_bus *bus, const char *path, const char *iface, const char *method, uint64_t timeout_usec,
                   sd_bus_message **ret_reply, const char *types, ...);
/* Send a call whose answer nobody waits for: vssd handles it in order with
 * the calls after it, and does not answer. */
vss_hr client_send(sd_bus *bus, const char *path, const char *iface, const char *method);
/* The same for a call built by the caller; takes it over. */
vss_hr client_call_message(sd_bus *bus, sd_bus_message *call, uint64_t timeout_usec, sd_bus_message **ret_reply);
