/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/macro.h"
#include "vssd/backup-state.h"

static const char *const state_names[_BS_MAX] = {
	[BS_NEW] = "new",
	[BS_INITIALIZED] = "initialized",
	[BS_SET_OPEN] = "set-open",
	[BS_PREPARED] = "prepared",
	[BS_CREATING] = "creating",
	[BS_CREATED] = "created",
	[BS_FAILED] = "failed",
	[BS_COMPLETE] = "complete",
	[BS_ABORTED] = "aborted",
	[BS_RESTORE_INITIALIZED] = "restore-initialized",
	[BS_PRE_RESTORED] = "pre-restored",
	[BS_RESTORED] = "restored",
};

static const char *const call_names[_BC_MAX] = {
	[BC_INITIALIZE_FOR_BACKUP] = "InitializeForBackup",
	[BC_SET_CONTEXT] = "SetContext",
	[BC_SET_BACKUP_STATE] = "SetBackupState",
	[BC_START_SNAPSHOT_SET] = "StartSnapshotSet",
	[BC_ADD_TO_SNAPSHOT_SET] = "AddToSnapshotSet",
	[BC_PREPARE_FOR_BACKUP] = "PrepareForBackup",
	[BC_DO_SNAPSHOT_SET] = "DoSnapshotSet",
	[BC_ABORT_BACKUP] = "AbortBackup",
	[BC_BACKUP_COMPLETE] = "BackupComplete",
	[BC_GET_SNAPSHOT_PROPERTIES] = "GetSnapshotProperties",
	[BC_QUERY] = "Query",
	[BC_DELETE_SNAPSHOTS] = "DeleteSnapshots",
	[BC_IS_VOLUME_SUPPORTED] = "IsVolumeSupported",
	[BC_EXPOSE_SNAPSHOT] = "ExposeSnapshot",
	[BC_UNEXPOSE_SNAPSHOT] = "UnexposeSnapshot",
	[BC_QUERY_DIFF_AREAS] = "QueryDiffAreas",
	[BC_CHANGE_DIFF_AREA_MAXIMUM_SIZE] = "ChangeDiffAreaMaximumSize",
	[BC_GATHER_WRITER_METADATA] = "GatherWriterMetadata",
	[BC_GET_WRITER_METADATA] = "GetWriterMetadata",
	[BC_ADD_COMPONENT] = "AddComponent",
	[BC_DISABLE_WRITER_CLASSES] = "DisableWriterClasses",
	[BC_GATHER_WRITER_STATUS] = "GatherWriterStatus",
	[BC_SET_BACKUP_SUCCEEDED] = "SetBackupSucceeded",
	[BC_SAVE_AS_XML] = "SaveAsXML",
	[BC_INITIALIZE_FOR_RESTORE] = "InitializeForRestore",
	[BC_SET_SELECTED_FOR_RESTORE] = "SetSelectedForRestore",
	[BC_PRE_RESTORE] = "PreRestore",
	[BC_POST_RESTORE] = "PostRestore",
};

const char *backup_state_to_string(BackupState s)
{
	return s < _BS_MAX ? state_names[s] : "?";
}

const char *backup_call_to_string(BackupCall c)
{
	return c < _BC_MAX ? call_names[c] : "?";
}

#define IN(s, mask) (((1u << (s)) & (mask)) != 0)
#define B(s) (1u << (s))
#define RESTORING (B(BS_RESTORE_INITIALIZED) | B(BS_PRE_RESTORED) | B(BS_RESTORED))

/* The states in which each call is in order, before the facts are looked at. */
static const unsigned allowed[_BC_MAX] = {
	[BC_INITIALIZE_FOR_BACKUP] = B(BS_NEW),
	[BC_SET_CONTEXT] = B(BS_INITIALIZED),
	[BC_SET_BACKUP_STATE] = B(BS_INITIALIZED) | B(BS_SET_OPEN),
	[BC_START_SNAPSHOT_SET] = B(BS_INITIALIZED),
	[BC_ADD_TO_SNAPSHOT_SET] = B(BS_SET_OPEN),
	[BC_PREPARE_FOR_BACKUP] = B(BS_SET_OPEN),
	[BC_DO_SNAPSHOT_SET] = B(BS_SET_OPEN) | B(BS_PREPARED),
	[BC_ABORT_BACKUP] = B(BS_INITIALIZED) | B(BS_SET_OPEN) | B(BS_PREPARED) | B(BS_CREATING) |
			    B(BS_CREATED) | B(BS_FAILED) | B(BS_COMPLETE) | B(BS_ABORTED),
	[BC_BACKUP_COMPLETE] = B(BS_CREATED),
	[BC_GET_SNAPSHOT_PROPERTIES] = ~B(BS_NEW),
	[BC_QUERY] = ~B(BS_NEW),
	[BC_DELETE_SNAPSHOTS] = ~B(BS_NEW),
	[BC_IS_VOLUME_SUPPORTED] = ~B(BS_NEW),
	[BC_EXPOSE_SNAPSHOT] = ~B(BS_NEW),
	[BC_UNEXPOSE_SNAPSHOT] = ~B(BS_NEW),
	[BC_QUERY_DIFF_AREAS] = ~B(BS_NEW),
	[BC_CHANGE_DIFF_AREA_MAXIMUM_SIZE] = ~B(BS_NEW),
	[BC_GATHER_WRITER_METADATA] = B(BS_INITIALIZED) | B(BS_RESTORE_INITIALIZED),
	[BC_GET_WRITER_METADATA] = ~B(BS_NEW),
	[BC_ADD_COMPONENT] = B(BS_INITIALIZED),
	[BC_DISABLE_WRITER_CLASSES] = B(BS_INITIALIZED) | B(BS_RESTORE_INITIALIZED),
	[BC_GATHER_WRITER_STATUS] = ~B(BS_NEW),
	[BC_SET_BACKUP_SUCCEEDED] = B(BS_CREATED),
	/* As VSS: once the set is made (after PrepareForBackup, the writers
	 * have seen the document), and at any point of a restore. */
	[BC_SAVE_AS_XML] = B(BS_PREPARED) | B(BS_CREATED) | B(BS_COMPLETE) | RESTORING,
	[BC_INITIALIZE_FOR_RESTORE] = B(BS_NEW),
	[BC_SET_SELECTED_FOR_RESTORE] = B(BS_RESTORE_INITIALIZED),
	[BC_PRE_RESTORE] = B(BS_RESTORE_INITIALIZED),
	[BC_POST_RESTORE] = B(BS_PRE_RESTORED),
};

static const char *order_reason(BackupState s, BackupCall c)
{
	if (s == BS_NEW)
		return "InitializeForBackup or InitializeForRestore must be called first";
	if (IN(s, RESTORING))
		switch (c) {
		case BC_PRE_RESTORE:
			return "PreRestore runs once per restore";
		case BC_POST_RESTORE:
			return s == BS_RESTORED ? "PostRestore runs once per restore" : "PreRestore must come first";
		case BC_SET_SELECTED_FOR_RESTORE:
			return "components are chosen for a restore before PreRestore";
		case BC_GATHER_WRITER_METADATA:
		case BC_DISABLE_WRITER_CLASSES:
			return "writers are chosen and their metadata gathered before PreRestore";
		case BC_ABORT_BACKUP:
			return "a restore cannot be aborted";
		default:
			return "the object serves a restore: backup calls are refused";
		}
	switch (c) {
	case BC_INITIALIZE_FOR_BACKUP:
	case BC_INITIALIZE_FOR_RESTORE:
		return "the object is already initialized";
	case BC_SAVE_AS_XML:
		return "SaveAsXML needs PrepareForBackup (or a set made) first";
	case BC_SET_SELECTED_FOR_RESTORE:
	case BC_PRE_RESTORE:
	case BC_POST_RESTORE:
		return "restore calls need an object made by InitializeForRestore";
	case BC_SET_CONTEXT:
		return "SetContext must come right after InitializeForBackup, before StartSnapshotSet";
	case BC_SET_BACKUP_STATE:
		return "SetBackupState must come before PrepareForBackup";
	case BC_START_SNAPSHOT_SET:
		return s == BS_SET_OPEN || s == BS_PREPARED ? "a snapshot set is already open"
							    : "an object serves one snapshot set; create a new one";
	case BC_ADD_TO_SNAPSHOT_SET:
		return s == BS_INITIALIZED ? "StartSnapshotSet must be called first"
					   : "volumes can only be added before PrepareForBackup and DoSnapshotSet";
	case BC_PREPARE_FOR_BACKUP:
		return s == BS_INITIALIZED ? "StartSnapshotSet must be called first"
					   : "PrepareForBackup comes once, before DoSnapshotSet";
	case BC_DO_SNAPSHOT_SET:
		return s == BS_INITIALIZED ? "StartSnapshotSet must be called first"
					   : "DoSnapshotSet runs once per object";
	case BC_BACKUP_COMPLETE:
	case BC_SET_BACKUP_SUCCEEDED:
		return "BackupComplete and SetBackupSucceeded need a successful DoSnapshotSet";
	case BC_GATHER_WRITER_METADATA:
	case BC_ADD_COMPONENT:
	case BC_DISABLE_WRITER_CLASSES:
		return "writers are chosen and their metadata gathered before StartSnapshotSet";
	default:
		return "call out of order";
	}
}

/* The calls that start a writer round, move the object on, or change which
 * writers take part: they wait for the round in flight to end, since its
 * answers decide what they do. */
static bool waits_for_round(BackupCall c)
{
	switch (c) {
	case BC_SET_CONTEXT:
	case BC_START_SNAPSHOT_SET:
	case BC_PREPARE_FOR_BACKUP:
	case BC_DO_SNAPSHOT_SET:
	case BC_BACKUP_COMPLETE:
	case BC_GATHER_WRITER_METADATA:
	case BC_ADD_COMPONENT:
	case BC_DISABLE_WRITER_CLASSES:
	case BC_SET_BACKUP_SUCCEEDED:
	case BC_SET_SELECTED_FOR_RESTORE:
	case BC_PRE_RESTORE:
	case BC_POST_RESTORE:
		return true;
	default:
		return false;
	}
}

vss_hr backup_state_check(BackupState s, const BackupFacts *f, BackupCall c, const char **ret_reason)
{
	const char *reason = NULL;

	if (s >= _BS_MAX || c >= _BC_MAX)
		reason = "unknown state or call";
	else if (!IN(s, allowed[c]))
		reason = order_reason(s, c);
	else if (f->round_in_flight && waits_for_round(c))
		reason = "a writer round is in flight: wait for the operation of the previous call to end";
	else if (f->making_room && (waits_for_round(c) || c == BC_ADD_TO_SNAPSHOT_SET))
		reason = "DoSnapshotSet is making room in shadow storage: wait for its answer";
	else if (c == BC_SET_CONTEXT && f->context_set)
		reason = "SetContext may be called only once";
	else if (c == BC_START_SNAPSHOT_SET && f->context_all)
		reason = "VSS_CTX_ALL is for query and delete only; it cannot create a set";
	else if (c == BC_PREPARE_FOR_BACKUP && !f->writers_context)
		reason = "PrepareForBackup is not used in a context without writers";
	else if (c == BC_PREPARE_FOR_BACKUP && !f->backup_state_set)
		reason = "SetBackupState must be called before PrepareForBackup";
	else if (c == BC_DO_SNAPSHOT_SET && f->n_volumes == 0)
		reason = "the snapshot set holds no volume";
	else if (c == BC_BACKUP_COMPLETE && !f->writers_context)
		reason = "BackupComplete is not used in a context without writers";
	else if (c == BC_DO_SNAPSHOT_SET && f->writers_context && !f->metadata_gathered)
		reason = "in a context with writers, GatherWriterMetadata must come before DoSnapshotSet";
	else if ((c == BC_GATHER_WRITER_METADATA || c == BC_DISABLE_WRITER_CLASSES) && f->metadata_gathered)
		reason = "GatherWriterMetadata runs once per object, after the writer classes are chosen";
	else if ((c == BC_GET_WRITER_METADATA || c == BC_GATHER_WRITER_STATUS || c == BC_ADD_COMPONENT) &&
		 !f->metadata_gathered)
		reason = "GatherWriterMetadata must be called (and have ended) first";
	else if ((c == BC_ADD_COMPONENT || c == BC_SET_BACKUP_SUCCEEDED) && !f->writers_context)
		reason = "components belong to contexts with writers";
	else if (c == BC_PRE_RESTORE && !f->metadata_gathered)
		reason = "GatherWriterMetadata must be called (and have ended) before PreRestore";

	if (ret_reason)
		*ret_reason = reason;
	return reason ? VSS_E_BAD_STATE : S_OK;
}

BackupState backup_state_next(BackupState s, BackupCall c)
{
	switch (c) {
	case BC_INITIALIZE_FOR_BACKUP:
		return BS_INITIALIZED;
	case BC_START_SNAPSHOT_SET:
		return BS_SET_OPEN;
	case BC_PREPARE_FOR_BACKUP:
		return BS_PREPARED;
	case BC_DO_SNAPSHOT_SET:
		return BS_CREATING;
	case BC_BACKUP_COMPLETE:
		return BS_COMPLETE;
	case BC_INITIALIZE_FOR_RESTORE:
		return BS_RESTORE_INITIALIZED;
	case BC_PRE_RESTORE:
		return BS_PRE_RESTORED;
	case BC_POST_RESTORE:
		return BS_RESTORED;
	case BC_ABORT_BACKUP:
		/* Nothing in progress: ignored, as in VSS. */
		return s == BS_INITIALIZED || s == BS_COMPLETE ? s : BS_ABORTED;
	default:
		return s;
	}
}

bool backup_state_holds_slot(BackupState s)
{
	return s == BS_SET_OPEN || s == BS_PREPARED || s == BS_CREATING;
}
