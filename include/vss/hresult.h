/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_HRESULT_H
#define VSS_HRESULT_H

/*
 * Result codes.
 *
 * Every vss call returns a 32-bit HRESULT with the value and the name it has
 * on Windows, so that code and documentation written for VSS read the same
 * here: a failure is negative, S_OK is zero, and the informational VSS_S_*
 * values are positive.
 */

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t vss_hr;

/* 0x8xxxxxxx does not fit an int32_t literal; subtract 2^32 so that the
 * constants are well-defined integer constant expressions usable in case
 * labels. */
#define VSS_HR_(v) ((vss_hr)((int64_t)(v) - ((v) > 0x7fffffffLL ? 0x100000000LL : 0)))

#define VSS_SUCCEEDED(hr) ((vss_hr)(hr) >= 0)
#define VSS_FAILED(hr) ((vss_hr)(hr) < 0)

/* Generic COM results. */
#define S_OK VSS_HR_(0x00000000)
#define S_FALSE VSS_HR_(0x00000001)
#define E_NOTIMPL VSS_HR_(0x80004001)
#define E_ABORT VSS_HR_(0x80004004)
#define E_FAIL VSS_HR_(0x80004005)
#define E_UNEXPECTED VSS_HR_(0x8000FFFF)
#define E_ACCESSDENIED VSS_HR_(0x80070005)
#define E_OUTOFMEMORY VSS_HR_(0x8007000E)
#define E_INVALIDARG VSS_HR_(0x80070057)

/* IVssAsync status values (successes). */
#define VSS_S_ASYNC_PENDING VSS_HR_(0x00042309)
#define VSS_S_ASYNC_FINISHED VSS_HR_(0x0004230A)
#define VSS_S_ASYNC_CANCELLED VSS_HR_(0x0004230B)

/* VSS errors (facility ITF). */
#define VSS_E_BAD_STATE VSS_HR_(0x80042301)
#define VSS_E_UNEXPECTED VSS_HR_(0x80042302)
#define VSS_E_PROVIDER_ALREADY_REGISTERED VSS_HR_(0x80042303)
#define VSS_E_PROVIDER_NOT_REGISTERED VSS_HR_(0x80042304)
#define VSS_E_PROVIDER_VETO VSS_HR_(0x80042306)
#define VSS_E_PROVIDER_IN_USE VSS_HR_(0x80042307)
#define VSS_E_OBJECT_NOT_FOUND VSS_HR_(0x80042308)
#define VSS_E_VOLUME_NOT_SUPPORTED VSS_HR_(0x8004230C)
#define VSS_E_OBJECT_ALREADY_EXISTS VSS_HR_(0x8004230D)
#define VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER VSS_HR_(0x8004230E)
#define VSS_E_UNEXPECTED_PROVIDER_ERROR VSS_HR_(0x8004230F)
#define VSS_E_CORRUPT_XML_DOCUMENT VSS_HR_(0x80042310)
#define VSS_E_INVALID_XML_DOCUMENT VSS_HR_(0x80042311)
#define VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED VSS_HR_(0x80042312)
#define VSS_E_FLUSH_WRITES_TIMEOUT VSS_HR_(0x80042313)
#define VSS_E_HOLD_WRITES_TIMEOUT VSS_HR_(0x80042314)
#define VSS_E_UNEXPECTED_WRITER_ERROR VSS_HR_(0x80042315)
#define VSS_E_SNAPSHOT_SET_IN_PROGRESS VSS_HR_(0x80042316)
#define VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED VSS_HR_(0x80042317)
#define VSS_E_WRITER_INFRASTRUCTURE VSS_HR_(0x80042318)
#define VSS_E_WRITER_NOT_RESPONDING VSS_HR_(0x80042319)
#define VSS_E_WRITER_ALREADY_SUBSCRIBED VSS_HR_(0x8004231A)
#define VSS_E_UNSUPPORTED_CONTEXT VSS_HR_(0x8004231B)
#define VSS_E_VOLUME_IN_USE VSS_HR_(0x8004231D)
#define VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED VSS_HR_(0x8004231E)
#define VSS_E_INSUFFICIENT_STORAGE VSS_HR_(0x8004231F)
#define VSS_E_REVERT_IN_PROGRESS VSS_HR_(0x80042325)
#define VSS_E_REBOOT_REQUIRED VSS_HR_(0x80042327)
#define VSS_E_TRANSACTION_FREEZE_TIMEOUT VSS_HR_(0x80042328)
#define VSS_E_TRANSACTION_THAW_TIMEOUT VSS_HR_(0x80042329)
#define VSS_E_NESTED_VOLUME_LIMIT VSS_HR_(0x8004232C)
#define VSS_E_VOLUME_NOT_LOCAL VSS_HR_(0x8004232D)
#define VSS_E_CLUSTER_TIMEOUT VSS_HR_(0x8004232E)
#define VSS_E_NOT_SUPPORTED VSS_HR_(0x8004232F)
#define VSS_E_WRITERERROR_PARTIAL_FAILURE VSS_HR_(0x80042336)
#define VSS_E_WRITER_STATUS_NOT_AVAILABLE VSS_HR_(0x80042409)

/* Writer failures (set by a writer, reported through writer status). */
#define VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT VSS_HR_(0x800423F0)
#define VSS_E_WRITERERROR_OUTOFRESOURCES VSS_HR_(0x800423F1)
#define VSS_E_WRITERERROR_TIMEOUT VSS_HR_(0x800423F2)
#define VSS_E_WRITERERROR_RETRYABLE VSS_HR_(0x800423F3)
#define VSS_E_WRITERERROR_NONRETRYABLE VSS_HR_(0x800423F4)
#define VSS_E_WRITERERROR_RECOVERY_FAILED VSS_HR_(0x800423F5)

/**
 * vss_hr_name() - the Windows name of a result code.
 * @hr: any result.
 *
 * Return: a static string such as "VSS_E_BAD_STATE"; "UNKNOWN_HRESULT" for a
 * value vss does not know. Never NULL. No privilege needed.
 */
const char *vss_hr_name(vss_hr hr);

/**
 * vss_hr_message() - what a result code means, in one sentence.
 * @hr: any result.
 *
 * Return: a static English sentence (for logs and command-line tools); a
 * generic sentence for an unknown value. Never NULL.
 */
const char *vss_hr_message(vss_hr hr);

/**
 * vss_hr_from_name() - the result code of a Windows name.
 * @name: a name as returned by vss_hr_name(), e.g. "VSS_E_BAD_STATE".
 * @ret: where the value is stored.
 *
 * Return: S_OK and *@ret set; E_INVALIDARG when @name or @ret is NULL;
 * VSS_E_OBJECT_NOT_FOUND when the name is unknown (*@ret untouched).
 */
vss_hr vss_hr_from_name(const char *name, vss_hr *ret);

/**
 * vss_last_error_message() - detail of the last failure in this thread.
 *
 * Every libvss call that fails records a human-readable explanation (for
 * example the daemon's reason, or the socket it could not reach). It stays
 * valid until the next libvss call in the same thread (vss_async_release()
 * keeps it). For a failed asynchronous operation, vss_async_wait() and
 * vss_async_query_status() set it to vssd's reason.
 *
 * Return: the message, or "" when the last call succeeded. Never NULL.
 */
const char *vss_last_error_message(void);

#ifdef __cplusplus
}
#endif

#endif
