/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The D-Bus interface between libvss (and vssadmin) and vssd: names, error
 * mapping and property encoding, shared by both ends so they cannot drift.
 * docs/DBUS.md describes it for people.
 */

#include <errno.h>
#include <stdarg.h>
#include <systemd/sd-bus.h>

#include <vss/types.h>
#include <vss/writer.h>

#include "basic/macro.h"

#define VSS_BUS_MANAGER_PATH "/org/vss/Manager"
#define VSS_BUS_MANAGER_IFACE "org.vss.Manager1"
#define VSS_BUS_BACKUP_PREFIX "/org/vss/backup"
#define VSS_BUS_BACKUP_IFACE "org.vss.Backup1"
/* The writer calls of a backup object, on the same object. */
#define VSS_BUS_BACKUP_WRITERS_IFACE "org.vss.BackupWriters1"
#define VSS_BUS_BACKUP_SCHEDULES_IFACE "org.vss.BackupSchedules1"
/* The Backup Components Document and the restore calls, on the same object. */
#define VSS_BUS_BACKUP_RESTORE_IFACE "org.vss.BackupRestore1"
/* PreRestore's and PostRestore's "RestoreComponents": writer class id,
 * type, logical path, name, restore options, the files as the document
 * recorded them, the new targets (path, filespec, recursive, alternate). */
#define RESTORE_COMPONENTS_SIGNATURE "a(sisssa(issb)a(ssbs))"
#define VSS_BUS_ASYNC_PREFIX "/org/vss/async"
#define VSS_BUS_ASYNC_IFACE "org.vss.Async1"
/* Exported by a writer on its own connection; vssd calls it. */
#define VSS_BUS_WRITER_PATH "/org/vss/Writer"
#define VSS_BUS_WRITER_IFACE "org.vss.Writer1"

/* Writer events, as the Event method of org.vss.Writer1 names them, in the
 * order of a backup (writers.c relies on it). */
typedef enum WriterEvent {
	EVENT_IDENTIFY,         /* its own method, Identify */
	EVENT_PREPARE_BACKUP,
	EVENT_PREPARE_SNAPSHOT,
	EVENT_FREEZE,
	EVENT_THAW,
	EVENT_POST_SNAPSHOT,
	EVENT_ABORT,
	EVENT_BACKUP_COMPLETE,
	EVENT_BACKUP_SHUTDOWN,
	/* A restore's (docs/RESTORE.md). */
	EVENT_PRE_RESTORE,
	EVENT_POST_RESTORE,
	_EVENT_MAX,
} WriterEvent;

const char *writer_event_to_string(WriterEvent e);
WriterEvent writer_event_from_string(const char *s);
#define WRITER_METADATA_COMPONENTS "a(isssba(issb))a(issb)"
/* Any name works on a peer-to-peer connection; busctl needs one. */
#define VSS_BUS_NAME "org.vss"

/* A vss result travels as a D-Bus error named VSS_BUS_ERROR_PREFIX + its
 * Windows name, e.g. "org.vss.Error.VSS_E_BAD_STATE". */
#define VSS_BUS_ERROR_PREFIX "org.vss.Error."

/* Fill @e with the error for @hr and a formatted explanation; returns a
 * negative errno-style value suitable for returning from a method handler. */
int bus_error_set_hr(sd_bus_error *e, vss_hr hr, const char *fmt, ...) _printf_(3, 4);
int bus_error_set_hrv(sd_bus_error *e, vss_hr hr, const char *fmt, va_list ap) _printf_(3, 0);
/* The result is always -EIO: spelled out where it is called, so that the
 * callers' compiler and the static analyzer, which see one file at a time,
 * know that a handler returning it fails. */
#define bus_error_set_hr(e, hr, ...)                           \
	({                                                      \
		bus_error_set_hr((e), (hr), __VA_ARGS__);       \
		-EIO;                                           \
	})

/* The result carried by a D-Bus error: a vss error by name; E_ACCESSDENIED,
 * E_OUTOFMEMORY and E_INVALIDARG for the standard AccessDenied, NoMemory and
 * InvalidArgs errors; VSS_E_UNEXPECTED otherwise. */
vss_hr bus_error_to_hr(const sd_bus_error *e);

/* Ids travel as strings in GUID form. */
int bus_append_id(sd_bus_message *m, const vss_id *id);

/* Snapshot and provider properties travel as a{sv}. */
int bus_append_snapshot_prop(sd_bus_message *m, const vss_snapshot_prop *p);
int bus_read_snapshot_prop(sd_bus_message *m, vss_snapshot_prop *ret);
int bus_append_provider_prop(sd_bus_message *m, const vss_provider_prop *p);

/* A page of snapshots (QuerySnapshots) travels by columns, one array per
 * property, so that a row costs a few appends instead of a dict of
 * variants; a string column is one byte array of its rows' strings, each
 * ended by a NUL, so that it costs one append, not one a row (with its
 * UTF-8 check at both ends). The position of the next page comes first,
 * so that a client can ask for it before it reads this one. docs/DBUS.md
 * lists the columns. */
#define BUS_SNAPSHOT_PAGE_SIGNATURE "sayayayaiaiaiaxatayayayayayayayay"
#define BUS_SNAPSHOT_PAGE_STRINGS 7
typedef struct BusSnapshotColumn {
	void *data;
	size_t size, allocated;
} BusSnapshotColumn;
/* A page being gathered row by row, straight into its columns. */
typedef struct BusSnapshotPage {
	size_t n;
	BusSnapshotColumn ids[3];      /* snapshot, set, provider: 16 bytes a row */
	BusSnapshotColumn ints[3];     /* snapshots_count, attributes, status */
	BusSnapshotColumn created, hold, present;
	BusSnapshotColumn strings[BUS_SNAPSHOT_PAGE_STRINGS];
} BusSnapshotPage;
/* Add a row; p's strings are copied, so they need not outlive the call. */
int bus_snapshot_page_add(BusSnapshotPage *page, const vss_snapshot_prop *p);
void bus_snapshot_page_clear(BusSnapshotPage *page);
/* The page's columns, after next (the position to ask for next; "" for
 * none). */
int bus_append_snapshot_page(sd_bus_message *m, const char *next, const BusSnapshotPage *page);
/* Reads a page's next position (valid while m is) and appends its rows
 * to *props (grown as needed; *n and *allocated count them); a page whose
 * columns disagree is -EBADMSG. With borrow, the rows' strings point into
 * m (valid while it is, not to be freed): no copy of each. */
int bus_read_snapshot_page_next(sd_bus_message *m, const char **ret_next);
int bus_read_snapshot_page(sd_bus_message *m, vss_snapshot_prop **props, size_t *n, size_t *allocated, bool borrow);
int bus_read_provider_prop(sd_bus_message *m, vss_provider_prop *ret);

/* A writer's components and excluded files (WRITER_METADATA_COMPONENTS), as a
 * writer answers Identify; and a whole metadata document, as vssd hands it
 * to requestors: "(ssssiii" + the components + ")". */
int bus_append_components(sd_bus_message *m, const vss_writer_metadata *md);
int bus_read_components(sd_bus_message *m, vss_writer_metadata *md);
int bus_append_writer_metadata(sd_bus_message *m, const vss_writer_metadata *md);
int bus_read_writer_metadata(sd_bus_message *m, vss_writer_metadata *ret);
/* A writer's status: "(sssiis)". */
int bus_append_writer_status(sd_bus_message *m, const vss_writer_status *s);
int bus_read_writer_status(sd_bus_message *m, vss_writer_status *ret);
