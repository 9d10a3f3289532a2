/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "basic/hresult-table.h"
#include "basic/macro.h"

#define E(code, text) { code, #code, text }

/* One row per code vss knows; docs/ERRORS.md says when each is returned. */
static const struct vss_hr_entry table[] = {
	E(S_OK, "The operation succeeded."),
	E(S_FALSE, "The operation succeeded with a negative answer."),
	E(E_NOTIMPL, "The operation is not implemented."),
	E(E_ABORT, "The operation was aborted."),
	E(E_FAIL, "The operation failed."),
	E(E_UNEXPECTED, "Unexpected failure."),
	E(E_ACCESSDENIED, "The caller does not have sufficient backup privileges or is not an administrator."),
	E(E_OUTOFMEMORY, "The caller is out of memory or other system resources."),
	E(E_INVALIDARG, "One of the parameter values is not valid."),
	E(VSS_S_ASYNC_PENDING, "The asynchronous operation is still running."),
	E(VSS_S_ASYNC_FINISHED, "The asynchronous operation completed successfully."),
	E(VSS_S_ASYNC_CANCELLED, "The asynchronous operation was cancelled."),
	E(VSS_E_BAD_STATE, "The backup components object is not initialized, or this call is out of order."),
	E(VSS_E_UNEXPECTED, "Unexpected error. The error code is logged in the error log file."),
	E(VSS_E_PROVIDER_ALREADY_REGISTERED, "The provider is already registered."),
	E(VSS_E_PROVIDER_NOT_REGISTERED, "The provider is not registered."),
	E(VSS_E_PROVIDER_VETO, "The provider was unable to perform the request at this time. This can be a transient problem; wait ten minutes and try again, up to three times."),
	E(VSS_E_PROVIDER_IN_USE, "The provider is in use and cannot be unregistered."),
	E(VSS_E_OBJECT_NOT_FOUND, "The specified object (volume, snapshot, set or writer) was not found."),
	E(VSS_E_VOLUME_NOT_SUPPORTED, "No provider supports this volume."),
	E(VSS_E_OBJECT_ALREADY_EXISTS, "The object already exists."),
	E(VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER, "The specified provider does not support this volume."),
	E(VSS_E_UNEXPECTED_PROVIDER_ERROR, "The provider returned an unexpected error code. This can be a transient problem; wait ten minutes and try again, up to three times."),
	E(VSS_E_CORRUPT_XML_DOCUMENT, "The XML document is not valid."),
	E(VSS_E_INVALID_XML_DOCUMENT, "The XML document is not valid."),
	E(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "The maximum number of volumes has been added to the snapshot set."),
	E(VSS_E_FLUSH_WRITES_TIMEOUT, "The system was unable to flush I/O writes. This can be a transient problem; wait ten minutes and try again, up to three times."),
	E(VSS_E_HOLD_WRITES_TIMEOUT, "The system was unable to hold I/O writes. This can be a transient problem; wait ten minutes and try again, up to three times."),
	E(VSS_E_UNEXPECTED_WRITER_ERROR, "An unexpected error occurred while sending events to writers."),
	E(VSS_E_SNAPSHOT_SET_IN_PROGRESS, "Another snapshot set is being created; only one creation runs at a time. Try again later."),
	E(VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, "The volume already has the maximum number of snapshots."),
	E(VSS_E_WRITER_INFRASTRUCTURE, "The writer infrastructure is not operating properly."),
	E(VSS_E_WRITER_NOT_RESPONDING, "A writer did not respond, or it has exited."),
	E(VSS_E_WRITER_ALREADY_SUBSCRIBED, "The writer has already subscribed."),
	E(VSS_E_UNSUPPORTED_CONTEXT, "The provider does not support the specified context."),
	E(VSS_E_VOLUME_IN_USE, "The volume or its shadow storage is in use."),
	E(VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED, "The maximum number of shadow storage associations has been reached."),
	E(VSS_E_INSUFFICIENT_STORAGE, "The system or provider has insufficient storage space. If possible delete any old or unnecessary persistent shadow copies and try again."),
	E(VSS_E_REVERT_IN_PROGRESS, "A revert is in progress on the volume."),
	E(VSS_E_REBOOT_REQUIRED, "The provider encountered an error that requires the user to restart the computer."),
	E(VSS_E_TRANSACTION_FREEZE_TIMEOUT, "The system was unable to freeze the transaction managers."),
	E(VSS_E_TRANSACTION_THAW_TIMEOUT, "The system was unable to thaw the transaction managers."),
	E(VSS_E_NESTED_VOLUME_LIMIT, "The specified volume is nested too deeply to participate in the VSS operation."),
	E(VSS_E_VOLUME_NOT_LOCAL, "The volume is not a local volume."),
	E(VSS_E_CLUSTER_TIMEOUT, "A cluster operation timed out."),
	E(VSS_E_NOT_SUPPORTED, "The operation is not supported."),
	E(VSS_E_WRITERERROR_PARTIAL_FAILURE, "Some of the writer's components failed; check the component states."),
	E(VSS_E_WRITER_STATUS_NOT_AVAILABLE, "The writer's status is not available; retry later."),
	E(VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, "The snapshot set lacks volumes the writer needs; add them and try again."),
	E(VSS_E_WRITERERROR_OUTOFRESOURCES, "The writer ran out of resources; wait ten minutes and try again, up to three times."),
	E(VSS_E_WRITERERROR_TIMEOUT, "The writer's freeze-to-thaw window was exceeded; lower the load and try again."),
	E(VSS_E_WRITERERROR_RETRYABLE, "The writer failed with a transient error; try again."),
	E(VSS_E_WRITERERROR_NONRETRYABLE, "The writer failed with an error that will recur; do not use vss for its data."),
	E(VSS_E_WRITERERROR_RECOVERY_FAILED, "Auto-recovery of the snapshot failed."),
};

const struct vss_hr_entry *vss_hr_lookup(vss_hr hr)
{
	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (table[i].hr == hr)
			return &table[i];
	return NULL;
}

const struct vss_hr_entry *vss_hr_lookup_name(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

const struct vss_hr_entry *vss_hr_table(size_t *ret_count)
{
	*ret_count = ELEMENTSOF(table);
	return table;
}

const char *vss_hr_name(vss_hr hr)
{
	const struct vss_hr_entry *e = vss_hr_lookup(hr);

	return e ? e->name : "UNKNOWN_HRESULT";
}

const char *vss_hr_message(vss_hr hr)
{
	const struct vss_hr_entry *e = vss_hr_lookup(hr);

	if (e)
		return e->message;
	return VSS_FAILED(hr) ? "Unknown failure." : "Unknown success code.";
}

vss_hr vss_hr_from_name(const char *name, vss_hr *ret)
{
	const struct vss_hr_entry *e;

	if (ret)
		*ret = S_OK;
	if (!name || !ret)
		return E_INVALIDARG;
	e = vss_hr_lookup_name(name);
	if (!e)
		return VSS_E_OBJECT_NOT_FOUND;
	*ret = e->hr;
	return S_OK;
}
