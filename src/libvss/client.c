/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/backup.h>

#include "basic/util.h"
#include "libvss/client.h"
#include "protocol/bus.h"

static __thread char last_message[1024];

void client_begin(void)
{
	last_message[0] = '\0';
}

vss_hr client_fail(vss_hr hr, const char *fmt, ...)
{
	char buf[sizeof(last_message)];
	va_list ap;

	/* Through a copy: the arguments may include the last message itself. */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Cut to fit, it may end inside a character. */
	utf8_make_valid(buf);
	memcpy(last_message, buf, sizeof(buf));
	return hr;
}

const char *vss_last_error_message(void)
{
	return last_message;
}

vss_hr client_connect(sd_bus **ret)
{
	const char *path = secure_getenv("VSS_SOCKET");
	_cleanup_free_ char *address = NULL;
	sd_bus *bus = NULL;
	int r;

	if (!path || !*path)
		path = VSS_DEFAULT_SOCKET;
	if (asprintf(&address, "unix:path=%s", path) < 0)
		return client_fail(E_OUTOFMEMORY, "out of memory");

	r = sd_bus_new(&bus);
	if (r < 0)
		return client_fail(E_OUTOFMEMORY, "cannot allocate a bus connection: %s", strerror(-r));
	r = sd_bus_set_address(bus, address);
	if (r >= 0)
		r = sd_bus_start(bus);
	if (r < 0) {
		sd_bus_unref(bus);
		if (r == -EACCES || r == -EPERM)
			return client_fail(E_ACCESSDENIED, "not allowed to connect to vssd at %s: %s", path,
					   strerror(-r));
		return client_fail(VSS_E_UNEXPECTED, "cannot reach vssd at %s: %s", path, strerror(-r));
	}
	*ret = bus;
	return S_OK;
}

vss_hr client_call_message(sd_bus *bus, sd_bus_message *call, uint64_t timeout_usec, sd_bus_message **ret_reply)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *method = sd_bus_message_get_member(call);
	vss_hr hr;
	int r;

	r = sd_bus_call(bus, call, timeout_usec, &error, &reply);
	sd_bus_message_unref(call);
	if (r < 0) {
		if (sd_bus_error_is_set(&error)) {
			hr = bus_error_to_hr(&error);
			client_fail(hr, "%s", error.message ?: error.name);
		} else {
			hr = client_fail(VSS_E_UNEXPECTED, "lost the connection to vssd during %s: %s", method,
					 strerror(-r));
		}
		sd_bus_error_free(&error);
		return hr;
	}
	if (ret_reply)
		*ret_reply = reply;
	else
		sd_bus_message_unref(reply);
	return S_OK;
}

vss_hr client_send(sd_bus *bus, const char *path, const char *iface, const char *method)
{
	sd_bus_message *call = NULL;
	int r;

	r = sd_bus_message_new_method_call(bus, &call, VSS_BUS_NAME, path, iface, method);
	if (r >= 0)
		r = sd_bus_message_set_expect_reply(call, 0);
	if (r >= 0)
		r = sd_bus_send(bus, call, NULL);
	sd_bus_message_unref(call);
	if (r < 0)
		return client_fail(r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED, "cannot send %s: %s", method,
				   strerror(-r));
	return S_OK;
}

vss_hr client_call(sd_bus *bus, const char *path, const char *iface, const char *method, uint64_t timeout_usec,
                   sd_bus_message **ret_reply, const char *types, ...)
{
	sd_bus_message *call = NULL;
	va_list ap;
	int r;

	r = sd_bus_message_new_method_call(bus, &call, VSS_BUS_NAME, path, iface, method);
	if (r >= 0 && types) {
		va_start(ap, types);
		r = sd_bus_message_appendv(call, types, ap);
		va_end(ap);
	}
	if (r < 0) {
		sd_bus_message_unref(call);
		return client_fail(r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED, "cannot build the %s call: %s",
				   method, strerror(-r));
	}
	return client_call_message(bus, call, timeout_usec, ret_reply);
}
