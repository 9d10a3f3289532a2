/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include <vss/vss.h>

#include "basic/macro.h"
#include "libvss/client.h"
#include "protocol/bus.h"

/* An infinite wait is a series of bounded ones, so that a vssd that died is
 * noticed rather than waited for forever. */
#define WAIT_SLICE_MS 30000u
#define CALL_TIMEOUT_USEC (120ULL * 1000000ULL)
#define REPLY_MARGIN_USEC (10ULL * 1000000ULL)

/* The status a method of the operation answers with. */
static vss_hr status_of(sd_bus_message *reply, const char *method, vss_hr *ret)
{
	int32_t status;
	int r;

	r = sd_bus_message_read(reply, "i", &status);
	sd_bus_message_unref(reply);
	if (r < 0)
		return client_fail(VSS_E_UNEXPECTED, "malformed reply to %s", method);
	*ret = status;
	return S_OK;
}

/* A failed operation's reason, as vssd knows it, becomes the last error
 * message; a vssd without the Message property leaves the code's sentence. */
static vss_hr fail_with_reason(vss_async *a, vss_hr status)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_free_ char *reason = NULL;
	int r;

	r = sd_bus_get_property_string(a->bus, VSS_BUS_NAME, a->path, VSS_BUS_ASYNC_IFACE, "Message", &error,
				       &reason);
	sd_bus_error_free(&error);
	if (r < 0 || !reason || !*reason)
		return client_fail(status, "the operation failed: %s", vss_hr_message(status));
	return client_fail(status, "%s", reason);
}

vss_hr vss_async_query_status(vss_async *a, vss_hr *ret_status)
{
	sd_bus_message *reply;
	vss_hr hr;

	client_begin();
	if (!a || !ret_status) {
		hr = client_fail(E_INVALIDARG, "%s is NULL", !a ? "a" : "ret_status");
		goto failed;
	}
	/* A round trip less for the usual Wait, then QueryStatus. */
	if (a->ended) {
		*ret_status = a->final_status;
		if (VSS_FAILED(*ret_status))
			fail_with_reason(a, *ret_status);
		return S_OK;
	}
	hr = client_call(a->bus, a->path, VSS_BUS_ASYNC_IFACE, "QueryStatus", CALL_TIMEOUT_USEC, &reply, NULL);
	if (VSS_SUCCEEDED(hr))
		hr = status_of(reply, "QueryStatus", ret_status);
	if (VSS_SUCCEEDED(hr) && VSS_FAILED(*ret_status))
		fail_with_reason(a, *ret_status);
failed:
	/* The status of an operation that cannot be asked is why it cannot
	 * be: never VSS_S_ASYNC_FINISHED, so a caller that checks only the
	 * status still sees the failure. */
	if (VSS_FAILED(hr) && ret_status)
		*ret_status = hr;
	return hr;
}

vss_hr vss_async_wait(vss_async *a, uint32_t timeout_ms)
{
	uint32_t left = timeout_ms;
	vss_hr hr, status = VSS_E_UNEXPECTED;

	client_begin();
	if (!a)
		return client_fail(E_INVALIDARG, "a is NULL");
	for (;;) {
		uint32_t slice = timeout_ms == VSS_INFINITE ? WAIT_SLICE_MS : MIN(left, WAIT_SLICE_MS);
		sd_bus_message *reply;

		hr = client_call(a->bus, a->path, VSS_BUS_ASYNC_IFACE, "Wait",
				 slice * 1000ULL + REPLY_MARGIN_USEC, &reply, "u", slice);
		if (VSS_FAILED(hr))
			return hr;
		hr = status_of(reply, "Wait", &status);
		if (VSS_FAILED(hr))
			return hr;
		if (status != VSS_S_ASYNC_PENDING) {
			a->final_status = status;
			a->ended = true;
			break;
		}
		if (timeout_ms != VSS_INFINITE) {
			left -= slice;
			if (left == 0)
				return VSS_S_ASYNC_PENDING;
		}
	}
	if (VSS_FAILED(status))
		return fail_with_reason(a, status);
	return S_OK;
}

vss_hr vss_async_cancel(vss_async *a)
{
	sd_bus_message *reply;
	vss_hr hr, status = VSS_E_UNEXPECTED;

	client_begin();
	if (!a)
		return client_fail(E_INVALIDARG, "a is NULL");
	/* vssd answers once the operation has ended; an engine past its
	 * deadlines ends within the flush and hold limits. */
	hr = client_call(a->bus, a->path, VSS_BUS_ASYNC_IFACE, "Cancel", UINT64_MAX, &reply, NULL);
	if (VSS_FAILED(hr))
		return hr;
	hr = status_of(reply, "Cancel", &status);
	return VSS_FAILED(hr) ? hr : status;
}

vss_hr vss_async_release(vss_async *a)
{
	_cleanup_free_ char *kept = NULL;

	if (!a)
		return S_OK;
	/* As free() keeps errno: a caller may release the handle of a failed
	 * operation and then report why it failed. */
	kept = strdup(vss_last_error_message());
	/* Its answer would say nothing (Release cannot fail in a way the
	 * caller could act on), so it is not waited for: a round trip less
	 * per operation. A connection that closes first releases it too. */
	(void)client_send(a->bus, a->path, VSS_BUS_ASYNC_IFACE, "Release");
	sd_bus_unref(a->bus);
	free(a->path);
	free(a);
	client_begin();
	if (kept && *kept)
		client_fail(S_OK, "%s", kept);
	return S_OK;
}
