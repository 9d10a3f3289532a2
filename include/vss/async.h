/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_ASYNC_H
#define VSS_ASYNC_H

/*
 * vss_async: IVssAsync. A handle on an operation that runs inside vssd
 * (PrepareForBackup, DoSnapshotSet, BackupComplete). The operation goes on
 * whether or not the caller waits; releasing the handle does not stop it.
 */

#include <stdint.h>

#include <vss/hresult.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vss_async vss_async;

/* Wait without a time limit. */
#define VSS_INFINITE UINT32_MAX

/**
 * vss_async_wait() - wait for the operation to end.
 * @a: the operation.
 * @timeout_ms: how long to wait; VSS_INFINITE for no limit.
 *
 * Return: S_OK when the operation ended (succeeded or was cancelled; call
 * vss_async_query_status() for which); the operation's error when it failed,
 * with vss_last_error_message() set to vssd's reason;
 * VSS_S_ASYNC_PENDING when @timeout_ms passed first (the operation goes on);
 * E_INVALIDARG when @a is NULL; VSS_E_UNEXPECTED when vssd cannot be reached.
 */
vss_hr vss_async_wait(vss_async *a, uint32_t timeout_ms);

/**
 * vss_async_query_status() - the operation's state, without waiting.
 * @a: the operation.
 * @ret_status: VSS_S_ASYNC_PENDING, VSS_S_ASYNC_FINISHED,
 *              VSS_S_ASYNC_CANCELLED, or the failure of the operation (then
 *              vss_last_error_message() says why, although the call succeeded).
 *
 * Return: S_OK when the status was read; E_INVALIDARG for a NULL argument;
 * VSS_E_UNEXPECTED when vssd cannot be reached.
 */
vss_hr vss_async_query_status(vss_async *a, vss_hr *ret_status);

/**
 * vss_async_cancel() - ask the operation to stop.
 * @a: the operation.
 *
 * A DoSnapshotSet can be cancelled until its commit starts; cancelling aborts
 * the set on every member, as a failure would. The call returns once the
 * operation has ended.
 *
 * Return: S_OK when it was cancelled now; VSS_S_ASYNC_CANCELLED when it was
 * already cancelled; VSS_S_ASYNC_FINISHED when it had already succeeded (or
 * was past the point of no return); the operation's error when it had failed.
 */
vss_hr vss_async_cancel(vss_async *a);

/**
 * vss_async_release() - drop the handle.
 * @a: the handle; NULL is accepted.
 *
 * Leaves vss_last_error_message() as it was, so that the reason of a failed
 * operation can be reported after its handle is released.
 *
 * Return: S_OK.
 */
vss_hr vss_async_release(vss_async *a);

#ifdef __cplusplus
}
#endif

#endif
