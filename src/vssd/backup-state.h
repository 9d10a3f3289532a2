/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The requestor state machine (docs/STATE-MACHINE.md): which call is allowed
 * in which state, and where it leads. Pure, so that it is tested on its own.
 */

#include <stdbool.h>
#include <stddef.h>

#include <vss/hresult.h>

typedef enum BackupState {
	BS_NEW,
	BS_INITIALIZED,
	BS_SET_OPEN,      /* holds the creation slot */
	BS_PREPARED,      /* holds the creation slot */
	BS_CREATING,      /* DoSnapshotSet runs; holds the creation slot */
	BS_CREATED,
	BS_FAILED,
	BS_COMPLETE,
	BS_ABORTED,
	/* A restore (docs/RESTORE.md): InitializeForRestore, then PreRestore,
	 * the files copied back by the requestor, PostRestore. */
	BS_RESTORE_INITIALIZED,
	BS_PRE_RESTORED,
	BS_RESTORED,
	_BS_MAX,
} BackupState;

typedef enum BackupCall {
	BC_INITIALIZE_FOR_BACKUP,
	BC_SET_CONTEXT,
	BC_SET_BACKUP_STATE,
	BC_START_SNAPSHOT_SET,
	BC_ADD_TO_SNAPSHOT_SET,
	BC_PREPARE_FOR_BACKUP,
	BC_DO_SNAPSHOT_SET,
	BC_ABORT_BACKUP,
	BC_BACKUP_COMPLETE,
	BC_GET_SNAPSHOT_PROPERTIES,
	BC_QUERY,
	BC_DELETE_SNAPSHOTS,
	BC_IS_VOLUME_SUPPORTED,
	BC_EXPOSE_SNAPSHOT,
	BC_UNEXPOSE_SNAPSHOT,
	BC_QUERY_DIFF_AREAS,
	BC_CHANGE_DIFF_AREA_MAXIMUM_SIZE,
	BC_GATHER_WRITER_METADATA,
	BC_GET_WRITER_METADATA,
	BC_ADD_COMPONENT,
	BC_DISABLE_WRITER_CLASSES,  /* and EnableWriterClasses */
	BC_GATHER_WRITER_STATUS,    /* and GetWriterStatus */
	BC_SET_BACKUP_SUCCEEDED,
	/* The restore side and the Backup Components Document. */
	BC_SAVE_AS_XML,
	BC_INITIALIZE_FOR_RESTORE,
	BC_SET_SELECTED_FOR_RESTORE, /* and SetRestoreOptions, AddNewTarget */
	BC_PRE_RESTORE,
	BC_POST_RESTORE,
	_BC_MAX,
} BackupCall;

/* What besides the state decides whether a call is in order. */
typedef struct BackupFacts {
	bool context_set;
	bool context_all;          /* VSS_CTX_ALL: query and delete only */
	bool writers_context;      /* the context involves writers */
	bool backup_state_set;
	bool metadata_gathered;    /* GatherWriterMetadata ended */
	bool round_in_flight;      /* writers have not all answered an event yet */
	bool making_room;          /* DoSnapshotSet is making room in shadow storage */
	size_t n_volumes;
} BackupFacts;

const char *backup_state_to_string(BackupState s);
const char *backup_call_to_string(BackupCall c);

/* S_OK, or VSS_E_BAD_STATE with *ret_reason explaining which rule. */
vss_hr backup_state_check(BackupState s, const BackupFacts *f, BackupCall c, const char **ret_reason);

/* The state after call c succeeded in state s (unchanged for calls that do
 * not move it). BS_CREATING ends in BS_CREATED or BS_FAILED, decided by the
 * engine, not by a call. */
BackupState backup_state_next(BackupState s, BackupCall c);

/* Whether an object in this state holds the system-wide creation slot. */
bool backup_state_holds_slot(BackupState s);
