/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vssd's state. Everything here lives on the main thread, in one sd-event
 * loop; only the engine's Job runs elsewhere.
 *
 *   Manager ─┬─ Connection (one per peer, its own peer-to-peer sd_bus)
 *            │     ├─ BackupObject (/org/vss/backup/N, one per requestor object)
 *            │     └─ AsyncOp (/org/vss/async/N)
 *            └─ Creation (the set being cut, at most one: the creation slot;
 *                         creation/creation.h)
 */

#include <stdbool.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "basic/list.h"
#include "providers/provider.h"
#include "vssd/backup-state.h"
#include "vssd/bcd.h"
#include "vssd/catalog.h"
#include "vssd/config.h"
#include "vssd/writers.h"

typedef struct Manager Manager;
typedef struct Published Published;
typedef struct Connection Connection;
typedef struct BackupObject BackupObject;
typedef struct AsyncOp AsyncOp;
typedef struct Waiter Waiter;
typedef struct Reserve Reserve;
typedef struct Relay Relay;
typedef struct Room Room;
typedef struct Revert Revert;

/* A component a requestor selected (AddComponent) and its outcome. */
typedef struct Component {
	vss_id instance_id, class_id;
	vss_component_type type;
	char *logical_path;
	char *name;
	int succeeded;          /* -1 unknown, 0, 1 (SetBackupSucceeded) */
} Component;

struct Connection {
	Manager *manager;
	sd_bus *bus;
	struct ucred cred;
	bool privileged;        /* root or in the backup-operators group */
	sd_event_source *free_source;
	/* The bus is polled by vssd, not attached to the loop (connection.c). */
	int bus_fd;
	uint32_t bus_events;    /* what the manager's bus_epoll_fd waits for on bus_fd; 0: not there */
	sd_event_source *bus_timer; /* the bus's next timeout */
	bool ready;             /* authenticated */
	bool awake;             /* on the manager's awake list: see connection_touched() */
	LIST_FIELDS(Connection, awake);
	Relay *relay;           /* between an unprivileged peer and bus */
	Writer *writer;         /* the writer this peer registered, if any */
	BackupObject *backups;
	AsyncOp *asyncs;
	LIST_FIELDS(Connection, connections);
};

struct BackupObject {
	Manager *manager;
	Connection *conn;
	char path[64];
	sd_bus_slot *slot, *writers_slot, *schedules_slot;
	sd_event_source *set_timer; /* SnapshotSetTimeoutSec, from StartSnapshotSet */

	BackupState state;
	BackupFacts facts;
	int32_t context;
	vss_backup_type backup_type;
	vss_id set_id;
	ProviderMember *members; /* until DoSnapshotSet hands them to the job */
	char **set_volumes;      /* the set's volumes, once the job has them */
	bool set_created;        /* a finished set exists (for auto-release) */

	/* Writers (writers.h). */
	Participant *participants;
	size_t n_participants;
	vss_id *disabled_classes, *enabled_classes;
	size_t n_disabled_classes, n_enabled_classes;
	Round round;             /* the round in flight, at most one */
	AsyncOp *round_async;    /* the operation waiting for it */
	Component *components;   /* selected by AddComponent */
	size_t n_components;

	/* Schedules (schedules.c). */
	char *schedule;          /* SetSchedule: recorded on the set */
	vss_id *used_sets;       /* sets this object exposed: in use until it is released */
	size_t n_used_sets;
	/* The Backup Components Document (backup-restore.c). */
	sd_bus_slot *restore_slot;
	bool select_components, bootable_system_state, partial_file_support; /* SetBackupState */
	Bcd *restore;            /* InitializeForRestore's document, with the restore's choices */
	LIST_FIELDS(BackupObject, backups);
};

typedef enum WaiterKind {
	WAITER_WAIT,
	WAITER_CANCEL,
} WaiterKind;

struct Waiter {
	AsyncOp *op;
	sd_bus_message *call;
	sd_event_source *timer;
	WaiterKind kind;
	LIST_FIELDS(Waiter, waiters);
};

struct AsyncOp {
	Connection *conn;
	char path[64];
	sd_bus_slot *slot;
	vss_hr status;          /* VSS_S_ASYNC_PENDING until it ends */
	char *message;          /* why it failed, NULL if not known */
	Waiter *waiters;
	LIST_FIELDS(AsyncOp, asyncs);
};

typedef struct Creation Creation;

struct Manager {
	sd_event *event;
	Config config;
	Catalog *catalog;
	FaultTable *faults;
	char *socket_path;
	char *state_dir;
	char *runtime_dir;      /* the socket's directory: the freeze marker */
	int runtime_dir_fd;     /* it, checked to be root's alone */
	int listen_fd;
	bool owns_socket;
	dev_t socket_dev;       /* the socket vssd bound, so that it removes */
	ino_t socket_ino;       /* only that one at exit */
	int lock_fd;
	sd_event_source *listen_source;
	sd_event_source *accept_timer; /* ends a pause in accepting */
	bool accept_paused;
	usec_t accept_logged_at;
	unsigned accept_suppressed;
	sd_id128_t server_id;
	uint64_t next_object;
	/* connection.c: every connection's bus fd, polled as one loop source. */
	int bus_epoll_fd;
	sd_event_source *bus_source, *bus_post_source, *bus_exit_source;
	Connection *awake;      /* whose bus to bring up to date after each iteration */
	uint64_t awake_added;   /* how many joined it, ever */
	/* writers.c: the cookie of the last call to a writer, on any bus. */
	uint32_t writer_cookie;

	Connection *connections;
	Writer *writers;
	/* The system-wide creation slot (reference §1.1): an object between
	 * StartSnapshotSet and the end of DoSnapshotSet, or a creation whose
	 * requestor is gone but whose job still runs, or a measure of
	 * shadow storage still running for a set given up. */
	BackupObject *slot_owner;
	Creation *creation;
	Room *room;             /* DoSnapshotSet making room before its set (creation.h) */
	Revert *reverts;        /* revert.h: running or unfinished, one per volume */
	Reserve *reserve;       /* reserve.c: the host reserve's watcher */
	Published *published;   /* previous-versions.c: the @GMT mounts */
	size_t n_published;
	/* SIGTERM or SIGINT came: no new work; the loop ends once the set
	 * being cut has ended. */
	bool stopping;
};

/* manager.c */
int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
/* runtime_dir: NULL for the socket's directory. */
int manager_start(Manager *m, const char *socket_path, const char *runtime_dir, const char *state_dir);
int manager_run(Manager *m);
/* A connection closed: accepting resumes if it was paused for lack of
 * descriptors. */
void manager_connection_closed(Manager *m);
/* Remove the socket vssd bound, unless another has replaced it. */
void manager_unlink_socket(Manager *m);
bool manager_slot_busy(Manager *m);
/* Leave the loop once vssd is stopping and no set is being cut: every
 * requestor's objects are released first, so their answers still go out. */
int manager_exit(Manager *m);
/* 0, or VSS_E_UNEXPECTED as a D-Bus error once vssd is stopping: what starts
 * new work calls it first. */
int manager_check_running(Manager *m, sd_bus_error *error);
/* Delete finished snapshots through their providers and the catalog,
 * stopping at the first failure (its id in *ret_failed). */
vss_hr manager_delete_snapshots(Manager *m, const CatalogSnapshot *snaps, size_t n, int32_t *ret_deleted,
                                vss_id *ret_failed, char *msg, size_t msg_size);
/* Delete a whole set, logging what could not be deleted. */
void manager_delete_set(Manager *m, const vss_id *set_id, const char *why);

/* connection.c */
/* The loop sources that poll every connection's bus; connections_done()
 * undoes them once every connection is freed. */
int connections_init(Manager *m);
void connections_done(Manager *m);
int connection_new(Manager *m, int fd, Connection **ret);
Connection *connection_free(Connection *c);
/* vssd sent on c's bus outside c's own processing (a call to a writer):
 * whether it waits for output, and its next timeout, are brought up to date
 * after this loop iteration. Every connection but a writer's that holds no
 * objects is brought up to date after every iteration anyway. */
void connection_touched(Connection *c);
/* E_OUTOFMEMORY once the connection holds MaxObjectsPerConnection backup
 * objects and operations. */
int connection_check_objects(Connection *c, sd_bus_error *error);
char *object_path(Manager *m, const char *prefix, char buf[64]);

/* backup-object.c */
int backup_object_new(Connection *c, BackupObject **ret);
/* The state machine's check of a call, as a D-Bus error. */
int backup_check(BackupObject *b, BackupCall call, sd_bus_error *error);
/* Answer with a new operation's path; *ret (if given) gets the operation. */
int backup_reply_with_async(sd_bus_message *msg, BackupObject *b, vss_hr status, AsyncOp **ret,
                            sd_bus_error *error);
BackupObject *backup_object_free(BackupObject *b);
void backup_object_set_state(BackupObject *b, BackupState s);
/* A call the state machine allowed that is a round to the writers: the
 * object moves on, the requestor gets the operation, the round begins and
 * the writers' answers end it. */
int backup_start_writers_round(sd_bus_message *msg, BackupObject *b, BackupCall call, WriterEvent e,
			       sd_bus_error *error);

/* backup-restore.c: SaveAsXML, InitializeForRestore and the restore calls
 * (org.vss.BackupRestore1), and the document InitializeForBackup takes. */
extern const sd_bus_vtable backup_restore_vtable[];
int backup_parse_document(const char *text, Bcd *ret, sd_bus_error *error);
/* The restore components of writer events (PreRestore, PostRestore). */
void restore_append_components(sd_bus_message *m, BackupObject *b);

/* backup-writers.c */
extern const sd_bus_vtable backup_writers_vtable[];
void writers_round_for_call(BackupObject *b, WriterEvent e, AsyncOp *a);
void writers_abort(BackupObject *b);
void writers_shutdown(BackupObject *b);
void components_free(BackupObject *b);
/* Round selectors: writers that identified themselves; those taking part in
 * the set that have not failed. */
bool sel_identified(const Participant *p, void *data);
bool sel_active(const Participant *p, void *data);

/* schedules.c: sets tagged by a schedule, and their pruning. */
extern const sd_bus_vtable backup_schedules_vtable[];
/* The object exposed a snapshot of set_id: a prune leaves that set alone
 * until the object is released (vssadmin exec reads it meanwhile). */
void backup_note_set_used(BackupObject *b, const vss_id *set_id);
void backup_schedules_free(BackupObject *b);

/* async-op.c */
int async_op_new(Connection *c, vss_hr status, AsyncOp **ret);
AsyncOp *async_op_free(AsyncOp *a);
/* The operation ended: record the status and answer every waiter. */
void async_op_complete(AsyncOp *a, vss_hr status);
/* The reason of a failure, for the requestor (the Message property); before
 * async_op_complete(), so that no waiter answered sees the status without it. */
void async_op_set_message(AsyncOp *a, const char *message);
/* Add a waiter for a pending op: answered at the end or after timeout_us. */
int async_op_add_waiter(AsyncOp *a, sd_bus_message *call, WaiterKind kind, usec_t timeout_us);

/* expose.c: mount a finished snapshot read-only (at the default place under
 * the runtime directory when dir is NULL) and record it; and undo that. A
 * failure leaves nothing mounted and says why in msg. */
vss_hr snapshot_expose(Manager *m, const CatalogSnapshot *s, const char *dir_or_null, const struct ucred *caller,
                       char **ret_dir, char *msg, size_t size);
vss_hr snapshot_unexpose(Manager *m, const CatalogSnapshot *s, char *msg, size_t size);
/* The root of the mount exposing s: where the catalog says it is, or, if a
 * directory above was renamed, wherever the mount table has one of s;
 * -ENOENT when s is mounted nowhere. */
int exposure_find(Manager *m, const provider_ops *ops, const CatalogSnapshot *s, int *ret_fd);

/* storage.c: shadow storage (VSS's diff areas) per volume. */
typedef struct DiffArea {
	char *volume;
	char *storage_volume;   /* where its snapshots live; NULL without any */
	int64_t maximum;        /* bytes; -1: unbounded */
	int64_t allocated;      /* what its snapshots refer to; -1: unknown */
	int64_t used;           /* what only they hold; -1: unknown */
} DiffArea;

void diff_areas_free(DiffArea *d, size_t n);
/* Every volume with snapshots or a maximum, or just the one named. */
int storage_query(Manager *m, const char *volume_or_null, DiffArea **ret, size_t *ret_n);
/* The finished snapshots of a volume, oldest first (from the catalog: on the
 * loop). */
int storage_volume_snapshots(Manager *m, const char *volume, CatalogSnapshot **ret, size_t *ret_n);
/* The space the snapshots of one volume take, through their provider: -1
 * when it cannot say. It touches neither the catalog nor the loop, so that
 * it may run on a thread of its own (the measure can take a transaction
 * commit, or a program's run). */
int storage_measure(const CatalogSnapshot *snaps, size_t n, int64_t *ret_used, int64_t *ret_allocated);
/* Whether n snapshots using used bytes must lose their oldest for maximum
 * (-1: unbounded). */
bool storage_over_maximum(const char *volume, size_t n, int64_t used, int64_t maximum, bool before_new_set);
/* Delete snaps[0], the oldest, to make room: 0 or -EIO (logged). */
int storage_delete_oldest(Manager *m, const char *volume, const CatalogSnapshot *snaps, int64_t used,
                          int64_t maximum);
/* Delete the volume's oldest snapshots while they take more than maximum
 * (as much as maximum, before_new_set, so the new one has room). Returns how
 * many went. */
int storage_enforce(Manager *m, const char *volume, int64_t maximum, bool before_new_set);
/* Record a volume's maximum (-1: unbounded) and enforce it at once. */
vss_hr storage_set_maximum(Manager *m, const char *volume, int64_t maximum, char *msg, size_t size);

/* reserve.c: the free space kept on every filesystem holding snapshots
 * (HostReserve=), so that snapshots never starve their live volumes. */
/* For the engine (JobLimits.admit, userdata the Config), on its thread:
 * VSS_E_INSUFFICIENT_STORAGE, saying why in msg, when a filesystem that
 * would hold the set's snapshots has less free than its reserve and what
 * they take at once; S_OK otherwise. */
vss_hr reserve_admit(const ProviderMember *members, size_t n, void *userdata, char *msg, size_t size);
/* Delete the oldest snapshots of every filesystem under its reserve until it
 * is above again or none is left there; never on a filesystem the set being
 * cut holds. */
void reserve_enforce(Manager *m);
/* After a set: reserve_enforce() only when a filesystem that got the set's
 * snapshots (their paths, n of them) is under its reserve, or the watcher
 * passed one over while the set held; otherwise the catalog is not read. */
void reserve_enforce_after_set(Manager *m, char *const *snapshot_paths, size_t n);
/* Enforce the reserve every HostReserveCheckMSec on the event loop. */
int reserve_watch_start(Manager *m);
Reserve *reserve_free(Reserve *rs);

/* previous-versions.c: the @GMT tree Samba's vfs_shadow_copy2 reads, for the
 * volumes of PreviousVersions=. start clears what an earlier vssd left and
 * mounts what the catalog holds; sync makes the tree follow the catalog
 * (after a set is made); drop unmounts a snapshot's version (before it is
 * deleted); done frees the bookkeeping and leaves the mounts (Samba goes on
 * serving while vssd restarts). */
#define PV_DIR "previous-versions" /* in the runtime directory */
bool previous_versions_of(const Manager *m, const char *volume);
void previous_versions_start(Manager *m);
void previous_versions_sync(Manager *m);
void previous_versions_drop(Manager *m, const vss_id *snapshot_id);
void previous_versions_done(Manager *m);

/* reconcile.c: make the catalog and the disk agree at start-up. */
int reconcile(Manager *m);

/* Context helpers. */
bool context_is_valid_for_requestor(int32_t context, vss_hr *ret_error);
bool context_matches(int32_t object_context, int32_t snapshot_context);
bool context_auto_release(int32_t context);
bool context_has_writers(int32_t context);
