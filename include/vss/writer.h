/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_WRITER_H
#define VSS_WRITER_H

/*
 * vss_writer: CVssWriter. An application that wants its data consistent in
 * snapshot sets registers a writer with vssd; around every set that concerns
 * it, it is told, with deadlines, to prepare, freeze, thaw and finish
 * (docs/WRITERS.md).
 *
 *   vss_writer_new()            class id, name, usage, source, level, timeout
 *   vss_writer_set_callbacks()  what to do at each event
 *   vss_writer_subscribe()      connect to vssd ($VSS_SOCKET) and register
 *   ... events arrive: either drive vss_writer_get_fd()/vss_writer_process()
 *       from the program's own event loop, or let vss_writer_start_thread()
 *       run them on a thread of their own ...
 *   vss_writer_unsubscribe(), vss_writer_free()
 *
 * Callbacks run on the thread that calls vss_writer_process() (or the helper
 * thread) and return true on success. A callback that fails returns false
 * after vss_writer_set_failure() (a VSS_E_WRITERERROR_* code and a message);
 * a non-fatal problem is vss_writer_set_failure() and true, as in VSS.
 *
 * Registering needs the privilege requestors need: root or the backup
 * operators group of vssd.conf.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/hresult.h>
#include <vss/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* VSS_USAGE_TYPE. */
typedef enum vss_usage_type {
	VSS_UT_UNDEFINED = 0,
	VSS_UT_BOOTABLESYSTEMSTATE = 1,
	VSS_UT_SYSTEMSERVICE = 2,
	VSS_UT_USERDATA = 3,
	VSS_UT_OTHER = 4,
} vss_usage_type;

/* VSS_SOURCE_TYPE. */
typedef enum vss_source_type {
	VSS_ST_UNDEFINED = 0,
	VSS_ST_TRANSACTEDDB = 1,
	VSS_ST_NONTRANSACTEDDB = 2,
	VSS_ST_OTHER = 3,
} vss_source_type;

/* VSS_APPLICATION_LEVEL: writers freeze front-end first, then back-end, then
 * system. */
typedef enum vss_application_level {
	VSS_APP_UNKNOWN = 0,
	VSS_APP_SYSTEM = 1,
	VSS_APP_BACK_END = 2,
	VSS_APP_FRONT_END = 3,
} vss_application_level;

/* VSS_COMPONENT_TYPE. */
typedef enum vss_component_type {
	VSS_CT_UNDEFINED = 0,
	VSS_CT_DATABASE = 1,
	VSS_CT_FILEGROUP = 2,
} vss_component_type;

/* VSS_WRITER_STATE, with Windows' ordinals. */
typedef enum vss_writer_state {
	VSS_WS_UNKNOWN = 0,
	VSS_WS_STABLE = 1,
	VSS_WS_WAITING_FOR_FREEZE = 2,
	VSS_WS_WAITING_FOR_THAW = 3,
	VSS_WS_WAITING_FOR_POST_SNAPSHOT = 4,
	VSS_WS_WAITING_FOR_BACKUP_COMPLETE = 5,
	VSS_WS_FAILED_AT_IDENTIFY = 6,
	VSS_WS_FAILED_AT_PREPARE_BACKUP = 7,
	VSS_WS_FAILED_AT_PREPARE_SNAPSHOT = 8,
	VSS_WS_FAILED_AT_FREEZE = 9,
	VSS_WS_FAILED_AT_THAW = 10,
	VSS_WS_FAILED_AT_POST_SNAPSHOT = 11,
	VSS_WS_FAILED_AT_BACKUP_COMPLETE = 12,
	VSS_WS_FAILED_AT_PRE_RESTORE = 13,
	VSS_WS_FAILED_AT_POST_RESTORE = 14,
	VSS_WS_FAILED_AT_BACKUPSHUTDOWN = 15,
	VSS_WS_COUNT = 16,
} vss_writer_state;

/* Default freeze-to-thaw window, as CVssWriter::Initialize's. */
#define VSS_WRITER_DEFAULT_FREEZE_TIMEOUT_MS 60000u

/* What a file specification names in a component. */
typedef enum vss_file_kind {
	VSS_FK_FILES = 0,          /* a file group's files */
	VSS_FK_DATABASE = 1,       /* a database's data files */
	VSS_FK_DATABASE_LOG = 2,   /* a database's log files */
} vss_file_kind;

/* A file specification: path + filespec (shell wildcards) [+ recursion]. */
typedef struct vss_wm_file {
	vss_file_kind kind;
	char *path;
	char *filespec;
	bool recursive;
} vss_wm_file;

typedef struct vss_wm_component {
	vss_component_type type;
	char *logical_path;        /* may be NULL */
	char *name;
	char *caption;             /* may be NULL */
	bool selectable;
	vss_wm_file *files;
	size_t n_files;
} vss_wm_component;

/* A Writer Metadata Document, as a requestor reads it
 * (IVssExamineWriterMetadata). */
typedef struct vss_writer_metadata {
	vss_id instance_id;
	vss_id class_id;
	char *name;
	char *instance_name;       /* may be NULL */
	vss_usage_type usage;
	vss_source_type source;
	vss_application_level level;
	vss_wm_component *components;
	size_t n_components;
	vss_wm_file *excluded;     /* always left out of backups */
	size_t n_excluded;
} vss_writer_metadata;

/* A writer's status after an event (GetWriterStatusEx). */
typedef struct vss_writer_status {
	vss_id instance_id;
	vss_id class_id;
	char *name;
	vss_writer_state state;
	vss_hr failure;            /* VSS_E_WRITERERROR_*, VSS_E_WRITER_NOT_RESPONDING, or S_OK */
	char *message;             /* the writer's own words; may be NULL */
} vss_writer_status;

/* The builder handed to the identify callback (IVssCreateWriterMetadata). */
typedef struct vss_metadata_builder vss_metadata_builder;

typedef struct vss_writer vss_writer;

/*
 * The events. Each may be NULL (then it succeeds), except abort, which a
 * writer that freezes anything must have. version says which fields the
 * caller's structure has: VSS_WRITER_CALLBACKS_VERSION (2) for all of them,
 * 1 for a program built before pre_restore and post_restore were added
 * (it then never has them called), so that events can be added without
 * breaking programs built earlier (docs/ABI.md).
 */
#define VSS_WRITER_CALLBACKS_VERSION 2

typedef struct vss_writer_callbacks {
	uint32_t version;
	bool (*identify)(vss_writer *w, vss_metadata_builder *md, void *userdata);
	bool (*prepare_backup)(vss_writer *w, void *userdata);
	bool (*prepare_snapshot)(vss_writer *w, void *userdata);
	bool (*freeze)(vss_writer *w, void *userdata);
	bool (*thaw)(vss_writer *w, void *userdata);
	bool (*post_snapshot)(vss_writer *w, void *userdata);
	bool (*abort)(vss_writer *w, void *userdata);
	bool (*backup_complete)(vss_writer *w, void *userdata);
	bool (*backup_shutdown)(vss_writer *w, void *userdata);
	/* Version 2: a restore (docs/RESTORE.md). vss_writer_get_restore_components()
	 * says what is restored and where. pre_restore comes before the
	 * requestor copies the files back: refuse (false, after
	 * vss_writer_set_failure()) when they cannot be, e.g. while the
	 * application runs on the target. post_restore comes after: check that
	 * the application can use what was restored. */
	bool (*pre_restore)(vss_writer *w, void *userdata);
	bool (*post_restore)(vss_writer *w, void *userdata);
} vss_writer_callbacks;

/**
 * vss_writer_new() - describe a writer (CVssWriter::Initialize).
 * @class_id: the writer class: one id per application, the same every run.
 * @name: the writer's name, e.g. "PostgreSQL".
 * @instance_name_or_null: tells instances of one class apart.
 * @usage, @source: what the writer's data is.
 * @level: freeze order: front-end first, then back-end, then system.
 * @freeze_timeout_ms: the longest freeze-to-thaw window this writer allows;
 *                     0 for VSS_WRITER_DEFAULT_FREEZE_TIMEOUT_MS. Past it the
 *                     writer gets abort and fails with
 *                     VSS_E_WRITERERROR_TIMEOUT.
 * @ret: the writer; free with vss_writer_free().
 *
 * Return: S_OK; E_INVALIDARG for a NULL or null id, an empty name or an
 * unknown level; E_OUTOFMEMORY.
 */
vss_hr vss_writer_new(const vss_id *class_id, const char *name, const char *instance_name_or_null,
                      vss_usage_type usage, vss_source_type source, vss_application_level level,
                      uint32_t freeze_timeout_ms, vss_writer **ret);

/**
 * vss_writer_set_callbacks() - what the writer does at each event.
 * @w: the writer, before vss_writer_subscribe().
 * @callbacks: copied; its version must be VSS_WRITER_CALLBACKS_VERSION.
 * @userdata: passed to every callback.
 *
 * Return: S_OK; E_INVALIDARG; VSS_E_BAD_STATE once subscribed.
 */
vss_hr vss_writer_set_callbacks(vss_writer *w, const vss_writer_callbacks *callbacks, void *userdata);

/**
 * vss_writer_subscribe() - connect to vssd and register (CVssWriter::Subscribe).
 * @w: the writer.
 *
 * Return: S_OK; VSS_E_WRITER_ALREADY_SUBSCRIBED; E_ACCESSDENIED without
 * backup privilege; VSS_E_WRITER_INFRASTRUCTURE when vssd cannot be reached.
 */
vss_hr vss_writer_subscribe(vss_writer *w);

/**
 * vss_writer_unsubscribe() - leave vssd (CVssWriter::Unsubscribe).
 * @w: the writer.
 *
 * A writer that leaves while frozen is aborted first. Stops the helper
 * thread if one runs.
 *
 * Return: S_OK (also when not subscribed).
 */
vss_hr vss_writer_unsubscribe(vss_writer *w);

/**
 * vss_writer_free() - unsubscribe and free.
 * @w: the writer; NULL is accepted.
 */
void vss_writer_free(vss_writer *w);

/**
 * vss_writer_get_fd() - the descriptor to watch for readability.
 * @w: a subscribed writer.
 *
 * One descriptor covers vssd's messages and the writer's own freeze timer:
 * when it is readable, call vss_writer_process(). Watch it level-triggered:
 * it stays readable while something is left to process.
 *
 * Return: the descriptor (owned by @w), or -1 when not subscribed.
 */
int vss_writer_get_fd(const vss_writer *w);

/**
 * vss_writer_process() - handle what arrived, running callbacks.
 * @w: a subscribed writer.
 *
 * Handles one message from vssd per call (and what sd-bus has read
 * already), not reading on until nothing is left: the descriptor stays readable
 * while more waits. Does not block. Must not be called from a callback.
 *
 * Return: S_OK; VSS_E_WRITER_INFRASTRUCTURE when the connection to vssd is
 * lost (the writer is then unsubscribed; a writer in the middle of a backup,
 * prepared or frozen and not yet told it ended, was aborted).
 */
vss_hr vss_writer_process(vss_writer *w);

/**
 * vss_writer_start_thread() - run events on a thread of the writer's own.
 * @w: a subscribed writer.
 *
 * Callbacks then run on that thread. vss_writer_unsubscribe() stops it.
 *
 * Return: S_OK; VSS_E_BAD_STATE if not subscribed or already started.
 */
vss_hr vss_writer_start_thread(vss_writer *w);

/**
 * vss_writer_set_failure() - say why the current event failed.
 * @w: the writer, inside a callback (identify included: a failed identify
 *     without one is VSS_E_WRITERERROR_NONRETRYABLE).
 * @hr: a VSS_E_WRITERERROR_* code.
 * @message_or_null: what happened, for the requestor and vssadmin.
 *
 * Return: S_OK; E_INVALIDARG for another code; VSS_E_BAD_STATE outside a
 * callback.
 */
vss_hr vss_writer_set_failure(vss_writer *w, vss_hr hr, const char *message_or_null);

/**
 * vss_writer_set_nothing_frozen() - say that this freeze held nothing.
 * @w: the writer, inside its freeze callback.
 * @why_or_null: why (e.g. "no scripts in /etc/vss/hooks.d"), for the log.
 *
 * The freeze succeeds, but no application is consistent on this writer's
 * account: a set whose writers all froze nothing is not called
 * application-consistent. (A vss addition: VSS has no such call.)
 *
 * Return: S_OK; VSS_E_BAD_STATE outside the freeze callback.
 */
vss_hr vss_writer_set_nothing_frozen(vss_writer *w, const char *why_or_null);

/**
 * vss_writer_get_backup_succeeded() - whether a component was backed up
 * (IVssComponent::GetBackupSucceeded).
 * @w: the writer, inside its backup_complete callback.
 * @logical_path_or_null, @name: one of the writer's components.
 * @ret_succeeded: what the requestor said with vss_backup_set_backup_succeeded().
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND when the requestor did not select the
 * component or said nothing of it; VSS_E_BAD_STATE outside backup_complete.
 */
vss_hr vss_writer_get_backup_succeeded(const vss_writer *w, const char *logical_path_or_null, const char *name,
                                       bool *ret_succeeded);

/* A new target of a component being restored (IVssComponent::GetNewTarget):
 * the files at path matching filespec go under alternate_path instead. */
typedef struct vss_restore_target {
	const char *path;
	const char *filespec;
	bool recursive;
	const char *alternate_path;
} vss_restore_target;

/* One of the writer's components being restored (IVssComponent at restore). */
typedef struct vss_restore_component {
	vss_component_type type;
	const char *logical_path;          /* NULL when none */
	const char *name;
	const char *restore_options;       /* NULL when none (SetRestoreOptions) */
	const vss_wm_file *files;          /* as the backup's metadata recorded them */
	size_t n_files;
	const vss_restore_target *new_targets; /* none: restored where they were */
	size_t n_new_targets;
} vss_restore_component;

/**
 * vss_writer_get_restore_components() - what this writer's restore holds.
 * @w: the writer, inside its pre_restore or post_restore callback.
 * @ret_components: the components of the writer's class that the requestor
 *     selected for restore; borrowed from @w until the callback returns.
 * @ret_n: their number (may be 0).
 *
 * Return: S_OK; VSS_E_BAD_STATE outside those callbacks; E_INVALIDARG for
 * NULL arguments; E_OUTOFMEMORY.
 */
vss_hr vss_writer_get_restore_components(const vss_writer *w, const vss_restore_component **ret_components,
                                         size_t *ret_n);

/* Inside callbacks (from prepare_backup on): the set and its volumes. */

/* The snapshot set being made (GetCurrentSnapshotSetId). */
vss_hr vss_writer_get_snapshot_set_id(const vss_writer *w, vss_id *ret);
/* The volumes of the set (GetCurrentVolumeArray); borrowed, NULL-terminated,
 * valid until the callback returns. */
const char *const *vss_writer_get_volumes(const vss_writer *w);
/* Whether a path lies on a volume of the set (IsPathAffected). */
bool vss_writer_is_path_affected(const vss_writer *w, const char *path);
/* The context and the backup type of the requestor (GetContext, GetBackupType). */
int32_t vss_writer_get_context(const vss_writer *w);
vss_backup_type vss_writer_get_backup_type(const vss_writer *w);

/* Inside identify: build the metadata (IVssCreateWriterMetadata). Each returns
 * S_OK, E_INVALIDARG for NULL or empty required strings, VSS_E_OBJECT_NOT_FOUND
 * when files name a component not added, E_OUTOFMEMORY. */

/* A component: a database (data and log files) or a file group. */
vss_hr vss_metadata_add_component(vss_metadata_builder *md, vss_component_type type, const char *logical_path_or_null,
                                  const char *name, const char *caption_or_null, bool selectable);
/* Files of a file group (AddFilesToFileGroup). */
vss_hr vss_metadata_add_files(vss_metadata_builder *md, const char *logical_path_or_null, const char *component,
                              const char *path, const char *filespec, bool recursive);
/* Data files of a database (AddDatabaseFiles); never recursive, as in VSS. */
vss_hr vss_metadata_add_database_files(vss_metadata_builder *md, const char *logical_path_or_null,
                                       const char *component, const char *path, const char *filespec);
/* Log files of a database (AddDatabaseLogFiles). */
vss_hr vss_metadata_add_database_log_files(vss_metadata_builder *md, const char *logical_path_or_null,
                                           const char *component, const char *path, const char *filespec);
/* Files no backup should contain (AddExcludeFiles). */
vss_hr vss_metadata_add_excluded_files(vss_metadata_builder *md, const char *path, const char *filespec,
                                       bool recursive);

#ifdef __cplusplus
}
#endif

#endif
