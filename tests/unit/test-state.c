/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <vss/backup.h>
#include <vss/types.h>

#include "basic/macro.h"
#include "vssd/backup-state.h"
#include "vssd/manager.h"
#include "tests.h"

/*
 * The expectations below are written from the rules (backup.h, the comments
 * of backup-state.h, and docs/STATE-MACHINE.md as summarised in the brief),
 * not copied from backup-state.c, so that a slip in its table shows up as a
 * disagreement instead of being enshrined.
 */

static bool anywhere_but_new(BackupState s)
{
	return s != BS_NEW;
}

static bool restoring(BackupState s)
{
	return s == BS_RESTORE_INITIALIZED || s == BS_PRE_RESTORED || s == BS_RESTORED;
}

/* Whether call c is in order in state s given facts f, by the rules. */
static bool rule_allows(BackupState s, const BackupFacts *f, BackupCall c)
{
	/* While writers still owe answers to an event, nothing may start
	 * another event, move the object on or change who takes part. */
	static const BackupCall busy_refuses[] = {
		BC_SET_CONTEXT, BC_START_SNAPSHOT_SET, BC_PREPARE_FOR_BACKUP, BC_DO_SNAPSHOT_SET,
		BC_BACKUP_COMPLETE, BC_GATHER_WRITER_METADATA, BC_DISABLE_WRITER_CLASSES, BC_ADD_COMPONENT,
		BC_SET_BACKUP_SUCCEEDED, BC_SET_SELECTED_FOR_RESTORE, BC_PRE_RESTORE, BC_POST_RESTORE,
	};

	for (size_t i = 0; f->round_in_flight && i < ELEMENTSOF(busy_refuses); i++)
		if (busy_refuses[i] == c)
			return false;
	/* DoSnapshotSet making room answers later: the set it cuts must stay
	 * as it was called, volumes included. */
	for (size_t i = 0; f->making_room && i < ELEMENTSOF(busy_refuses); i++)
		if (busy_refuses[i] == c || c == BC_ADD_TO_SNAPSHOT_SET)
			return false;
	switch (c) {
	case BC_INITIALIZE_FOR_BACKUP:
		return s == BS_NEW;
	case BC_SET_CONTEXT:
		/* Once, and only between initialize and start_snapshot_set. */
		return s == BS_INITIALIZED && !f->context_set;
	case BC_SET_BACKUP_STATE:
		return s == BS_INITIALIZED || s == BS_SET_OPEN;
	case BC_START_SNAPSHOT_SET:
		return s == BS_INITIALIZED && !f->context_all;
	case BC_ADD_TO_SNAPSHOT_SET:
		return s == BS_SET_OPEN;
	case BC_PREPARE_FOR_BACKUP:
		return s == BS_SET_OPEN && f->writers_context && f->backup_state_set;
	case BC_DO_SNAPSHOT_SET:
		/* Writer contexts need the writers' metadata first. */
		return (s == BS_SET_OPEN || s == BS_PREPARED) && f->n_volumes > 0 &&
		       (!f->writers_context || f->metadata_gathered);
	case BC_ABORT_BACKUP:
		/* Restores cannot be aborted (reference §1.3). */
		return anywhere_but_new(s) && !restoring(s);
	case BC_BACKUP_COMPLETE:
		return s == BS_CREATED && f->writers_context;
	case BC_GET_SNAPSHOT_PROPERTIES:
	case BC_QUERY:
	case BC_DELETE_SNAPSHOTS:
	case BC_IS_VOLUME_SUPPORTED:
	case BC_EXPOSE_SNAPSHOT:
	case BC_UNEXPOSE_SNAPSHOT:
	case BC_QUERY_DIFF_AREAS:
	case BC_CHANGE_DIFF_AREA_MAXIMUM_SIZE:
		return anywhere_but_new(s);
	case BC_GATHER_WRITER_METADATA:
	case BC_DISABLE_WRITER_CLASSES:
		/* Once, before StartSnapshotSet (or PreRestore); classes are
		 * chosen before it. */
		return (s == BS_INITIALIZED || s == BS_RESTORE_INITIALIZED) && !f->metadata_gathered;
	case BC_GET_WRITER_METADATA:
	case BC_GATHER_WRITER_STATUS:
		return anywhere_but_new(s) && f->metadata_gathered;
	case BC_ADD_COMPONENT:
		return s == BS_INITIALIZED && f->metadata_gathered && f->writers_context;
	case BC_SET_BACKUP_SUCCEEDED:
		return s == BS_CREATED && f->writers_context;
	case BC_SAVE_AS_XML:
		/* Once the writers have seen the backup (PrepareForBackup), and
		 * anywhere in a restore; never in a failed or aborted backup. */
		return s == BS_PREPARED || s == BS_CREATED || s == BS_COMPLETE || restoring(s);
	case BC_INITIALIZE_FOR_RESTORE:
		return s == BS_NEW;
	case BC_SET_SELECTED_FOR_RESTORE:
		return s == BS_RESTORE_INITIALIZED;
	case BC_PRE_RESTORE:
		/* The writers to tell are those that answered Identify. */
		return s == BS_RESTORE_INITIALIZED && f->metadata_gathered;
	case BC_POST_RESTORE:
		return s == BS_PRE_RESTORED;
	default:
		return false;
	}
}

/* Where a successful call leads. */
static BackupState rule_next(BackupState s, BackupCall c)
{
	switch (c) {
	case BC_INITIALIZE_FOR_BACKUP:
		return BS_INITIALIZED;
	case BC_START_SNAPSHOT_SET:
		return BS_SET_OPEN;
	case BC_PREPARE_FOR_BACKUP:
		return BS_PREPARED;
	case BC_DO_SNAPSHOT_SET:
		/* CREATED or FAILED is the engine's verdict, not the call's. */
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
		switch (s) {
		case BS_SET_OPEN:
		case BS_PREPARED:
		case BS_CREATING:
			/* An open set or a running DoSnapshotSet is aborted. */
			return BS_ABORTED;
		case BS_CREATED:
			/* "After a finished set it only marks the backup as
			 * abandoned." */
			return BS_ABORTED;
		case BS_FAILED:
			/* "After a failed do_snapshot_set it marks the backup
			 * aborted", as the requestor is told to call it. */
			return BS_ABORTED;
		default:
			/* "With nothing in progress it does nothing." */
			return s;
		}
	default:
		/* The remaining calls record facts or only read. */
		return s;
	}
}

static bool rule_holds_slot(BackupState s)
{
	/* From StartSnapshotSet until DoSnapshotSet ends (backup.h). */
	return s == BS_SET_OPEN || s == BS_PREPARED || s == BS_CREATING;
}

static const size_t volume_counts[] = { 0, 1, 2, VSS_MAX_VOLUMES_PER_SET };
#define N_FACTS (128 * ELEMENTSOF(volume_counts))

/* Every combination of the facts, numbered 0 .. N_FACTS - 1; combinations
 * vssd cannot produce (VSS_CTX_ALL with writers) are kept, since the rules
 * treat each fact on its own. */
static BackupFacts facts_of(size_t i)
{
	unsigned mask = (unsigned)(i / ELEMENTSOF(volume_counts));

	return (BackupFacts){
		.context_set = mask & 1,
		.context_all = mask & 2,
		.writers_context = mask & 4,
		.backup_state_set = mask & 8,
		.metadata_gathered = mask & 16,
		.round_in_flight = mask & 32,
		.making_room = mask & 64,
		.n_volumes = volume_counts[i % ELEMENTSOF(volume_counts)],
	};
}

static void test_check_every_pair(void)
{
	unsigned n_allowed = 0, n_refused = 0;

	for (size_t i = 0; i < N_FACTS; i++) {
		BackupFacts f = facts_of(i);

		for (BackupState s = 0; s < _BS_MAX; s++)
			for (BackupCall c = 0; c < _BC_MAX; c++) {
				bool ok = rule_allows(s, &f, c);
				const char *reason = "sentinel";
				vss_hr hr = backup_state_check(s, &f, c, &reason);

				if (ok != (hr == S_OK))
					TEST_FAIL("%s in state %s (context_set=%d context_all=%d writers=%d "
						  "backup_state_set=%d gathered=%d round=%d volumes=%zu): rules say %s, "
						  "backup_state_check says %s (%s)",
						  backup_call_to_string(c), backup_state_to_string(s), f.context_set,
						  f.context_all, f.writers_context, f.backup_state_set, f.metadata_gathered,
						  f.round_in_flight, f.n_volumes,
						  ok ? "allowed" : "VSS_E_BAD_STATE", vss_hr_name(hr),
						  reason ? reason : "no reason");
				test_checks++;
				/* A refusal is always VSS_E_BAD_STATE and always says
				 * why (vssd sends the reason to the requestor); an
				 * acceptance gives none. */
				ASSERT_HR(ok ? S_OK : VSS_E_BAD_STATE, hr);
				if (ok) {
					ASSERT_NULL(reason);
					n_allowed++;
				} else {
					ASSERT_NOT_NULL(reason);
					ASSERT_TRUE(reason[0] != '\0');
					n_refused++;
				}
				/* The reason pointer is optional. */
				ASSERT_HR(hr, backup_state_check(s, &f, c, NULL));
			}
	}
	/* Both outcomes occur: the loop did not degenerate. */
	ASSERT_TRUE(n_allowed > 0);
	ASSERT_TRUE(n_refused > 0);
}

static void test_check_out_of_range(void)
{
	BackupFacts f = { .writers_context = true, .backup_state_set = true, .n_volumes = 1 };
	const char *reason = NULL;

	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(_BS_MAX, &f, BC_QUERY, &reason));
	ASSERT_NOT_NULL(reason);
	reason = NULL;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(BS_INITIALIZED, &f, _BC_MAX, &reason));
	ASSERT_NOT_NULL(reason);
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check((BackupState)100, &f, BC_ABORT_BACKUP, NULL));
}

/* Whether some facts let call c succeed in state s; next() is only defined
 * for such pairs, since vssd never asks where a refused call leads. */
static bool rule_can_succeed(BackupState s, BackupCall c)
{
	for (size_t i = 0; i < N_FACTS; i++) {
		BackupFacts f = facts_of(i);

		if (rule_allows(s, &f, c))
			return true;
	}
	return false;
}

static void test_next_every_pair(void)
{
	unsigned n_pairs = 0;

	for (BackupState s = 0; s < _BS_MAX; s++)
		for (BackupCall c = 0; c < _BC_MAX; c++) {
			BackupState want = rule_next(s, c), got;

			if (!rule_can_succeed(s, c))
				continue;
			n_pairs++;
			got = backup_state_next(s, c);

			if (want != got)
				TEST_FAIL("%s from %s: rules say %s, backup_state_next says %s",
					  backup_call_to_string(c), backup_state_to_string(s),
					  backup_state_to_string(want), backup_state_to_string(got));
			test_checks++;
		}
	/* Counted by hand from the rules: Initialize 1, SetContext 1,
	 * SetBackupState 2, StartSnapshotSet 1, Add 1, Prepare 1, Do 2,
	 * Abort 8, BackupComplete 1, and 8 each for the four reading calls, the
	 * two exposure calls and the two shadow storage calls; then
	 * GatherWriterMetadata 1, GetWriterMetadata 8, AddComponent 1,
	 * DisableWriterClasses 1, GatherWriterStatus 8, SetBackupSucceeded 1:
	 * 102 for a backup. A restore's three states add 3 to each of the
	 * eight calls every state but NEW allows, to GetWriterMetadata and to
	 * GatherWriterStatus (30), 1 each to GatherWriterMetadata and
	 * DisableWriterClasses, SaveAsXML 6 (3 backup states and 3 restore
	 * ones), InitializeForRestore, SetSelectedForRestore, PreRestore and
	 * PostRestore 1 each: 144. Guards the filter above against skipping
	 * more than it should. */
	ASSERT_EQ_UINT(144, n_pairs);
}

static void test_holds_slot(void)
{
	unsigned holders = 0;

	for (BackupState s = 0; s < _BS_MAX; s++) {
		ASSERT_EQ_INT(rule_holds_slot(s), backup_state_holds_slot(s));
		holders += backup_state_holds_slot(s);
	}
	ASSERT_EQ_INT(3, holders);

	/* Aborting always frees the slot: vssd relies on it to let the next
	 * requestor in. */
	ASSERT_FALSE(backup_state_holds_slot(backup_state_next(BS_SET_OPEN, BC_ABORT_BACKUP)));
	ASSERT_FALSE(backup_state_holds_slot(backup_state_next(BS_PREPARED, BC_ABORT_BACKUP)));
	ASSERT_FALSE(backup_state_holds_slot(backup_state_next(BS_CREATING, BC_ABORT_BACKUP)));
}

static void test_names(void)
{
	static const char *const states[_BS_MAX] = {
		"new", "initialized", "set-open", "prepared", "creating", "created", "failed", "complete",
		"aborted", "restore-initialized", "pre-restored", "restored",
	};
	static const char *const calls[_BC_MAX] = {
		"InitializeForBackup", "SetContext", "SetBackupState", "StartSnapshotSet",
		"AddToSnapshotSet", "PrepareForBackup", "DoSnapshotSet", "AbortBackup", "BackupComplete",
		"GetSnapshotProperties", "Query", "DeleteSnapshots", "IsVolumeSupported",
		"ExposeSnapshot", "UnexposeSnapshot", "QueryDiffAreas", "ChangeDiffAreaMaximumSize",
		"GatherWriterMetadata", "GetWriterMetadata", "AddComponent", "DisableWriterClasses",
		"GatherWriterStatus", "SetBackupSucceeded", "SaveAsXML", "InitializeForRestore",
		"SetSelectedForRestore", "PreRestore", "PostRestore",
	};

	for (BackupState s = 0; s < _BS_MAX; s++)
		ASSERT_STREQ(states[s], backup_state_to_string(s));
	for (BackupCall c = 0; c < _BC_MAX; c++)
		ASSERT_STREQ(calls[c], backup_call_to_string(c));
	ASSERT_STREQ("?", backup_state_to_string(_BS_MAX));
	ASSERT_STREQ("?", backup_call_to_string(_BC_MAX));
}

/* The facts come from the context: which contexts have writers is what
 * decides PrepareForBackup and BackupComplete. */
static void test_context_helpers(void)
{
	static const struct {
		int32_t context;
		bool writers;
		bool auto_release;
	} contexts[] = {
		{ VSS_CTX_BACKUP, true, true },
		{ VSS_CTX_FILE_SHARE_BACKUP, false, true },
		{ VSS_CTX_NAS_ROLLBACK, false, false },
		{ VSS_CTX_APP_ROLLBACK, true, false },
		{ VSS_CTX_CLIENT_ACCESSIBLE, false, false },
		{ VSS_CTX_CLIENT_ACCESSIBLE_WRITERS, true, false },
	};
	static const int32_t requestor_bits[] = {
		VSS_VOLSNAP_ATTR_NO_AUTORECOVERY, VSS_VOLSNAP_ATTR_NOT_TRANSACTED,
		VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY, VSS_VOLSNAP_ATTR_TXF_RECOVERY,
		VSS_VOLSNAP_ATTR_DIFFERENTIAL, VSS_VOLSNAP_ATTR_PLEX,
	};
	vss_hr err;

	for (size_t i = 0; i < ELEMENTSOF(contexts); i++) {
		int32_t ctx = contexts[i].context;

		ASSERT_TRUE(context_is_valid_for_requestor(ctx, &err));
		ASSERT_EQ_INT(contexts[i].writers, context_has_writers(ctx));
		ASSERT_EQ_INT(contexts[i].auto_release, context_auto_release(ctx));
		ASSERT_TRUE(context_matches(ctx, ctx));
		ASSERT_TRUE(context_matches(VSS_CTX_ALL, ctx));

		for (size_t b = 0; b < ELEMENTSOF(requestor_bits); b++) {
			int32_t with = ctx | requestor_bits[b];

			ASSERT_TRUE(context_is_valid_for_requestor(with, &err));
			/* Optional bits change neither the kind nor the match. */
			ASSERT_TRUE(context_matches(ctx, with));
			ASSERT_TRUE(context_matches(with, ctx));
			ASSERT_EQ_INT(contexts[i].writers, context_has_writers(with));
		}
		for (size_t j = 0; j < ELEMENTSOF(contexts); j++)
			if (j != i)
				ASSERT_FALSE(context_matches(ctx, contexts[j].context));
	}

	/* VSS_CTX_ALL: valid for query and delete, never with writers. */
	ASSERT_TRUE(context_is_valid_for_requestor(VSS_CTX_ALL, &err));
	ASSERT_FALSE(context_has_writers(VSS_CTX_ALL));

	/* Bits that do not make a context, and bits a requestor may not set. */
	err = S_OK;
	ASSERT_FALSE(context_is_valid_for_requestor(VSS_VOLSNAP_ATTR_PERSISTENT, &err));
	ASSERT_HR(E_INVALIDARG, err);
	err = S_OK;
	ASSERT_FALSE(context_is_valid_for_requestor(VSS_CTX_BACKUP | VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, &err));
	ASSERT_HR(E_INVALIDARG, err);
	err = S_OK;
	ASSERT_FALSE(context_is_valid_for_requestor(VSS_CTX_BACKUP | VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED, &err));
	ASSERT_HR(E_INVALIDARG, err);
	err = S_OK;
	ASSERT_FALSE(context_is_valid_for_requestor(0x7fffffff, &err));
	ASSERT_HR(E_INVALIDARG, err);
	/* Transportable sets need a hardware provider (backup.h). */
	err = S_OK;
	ASSERT_FALSE(context_is_valid_for_requestor(VSS_CTX_BACKUP | VSS_VOLSNAP_ATTR_TRANSPORTABLE, &err));
	ASSERT_HR(VSS_E_UNSUPPORTED_CONTEXT, err);
}

/* Walk the documented sequence, deriving the facts as vssd does, and make
 * sure each step is accepted only once its preconditions hold. */
static void test_full_sequence(void)
{
	BackupState s = BS_NEW;
	BackupFacts f = { 0 };

	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_QUERY, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_INITIALIZE_FOR_BACKUP, NULL));
	s = backup_state_next(s, BC_INITIALIZE_FOR_BACKUP);
	ASSERT_EQ_INT(BS_INITIALIZED, s);
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_INITIALIZE_FOR_BACKUP, NULL));

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_SET_CONTEXT, NULL));
	f.context_set = true;
	f.writers_context = context_has_writers(VSS_CTX_APP_ROLLBACK);
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_SET_CONTEXT, NULL));

	/* Writers: classes chosen, then metadata gathered, once. */
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_GET_WRITER_METADATA, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_DISABLE_WRITER_CLASSES, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_GATHER_WRITER_METADATA, NULL));
	/* Until every writer answered Identify, the set waits. */
	f.round_in_flight = true;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_START_SNAPSHOT_SET, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_GATHER_WRITER_METADATA, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_DISABLE_WRITER_CLASSES, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_QUERY, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_ABORT_BACKUP, NULL));
	f.round_in_flight = false;
	f.metadata_gathered = true;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_GATHER_WRITER_METADATA, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_DISABLE_WRITER_CLASSES, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_ADD_COMPONENT, NULL));

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_START_SNAPSHOT_SET, NULL));
	s = backup_state_next(s, BC_START_SNAPSHOT_SET);
	ASSERT_TRUE(backup_state_holds_slot(s));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_START_SNAPSHOT_SET, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_DO_SNAPSHOT_SET, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_PREPARE_FOR_BACKUP, NULL));

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_ADD_TO_SNAPSHOT_SET, NULL));
	f.n_volumes = 1;
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_SET_BACKUP_STATE, NULL));
	f.backup_state_set = true;

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_PREPARE_FOR_BACKUP, NULL));
	s = backup_state_next(s, BC_PREPARE_FOR_BACKUP);
	ASSERT_EQ_INT(BS_PREPARED, s);
	f.round_in_flight = true;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_DO_SNAPSHOT_SET, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_GATHER_WRITER_STATUS, NULL));
	f.round_in_flight = false;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_ADD_TO_SNAPSHOT_SET, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_SET_BACKUP_STATE, NULL));

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_DO_SNAPSHOT_SET, NULL));
	/* Room being made before the cut: the object waits for its answer. */
	f.making_room = true;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_DO_SNAPSHOT_SET, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_ABORT_BACKUP, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_QUERY, NULL));
	f.making_room = false;
	s = backup_state_next(s, BC_DO_SNAPSHOT_SET);
	ASSERT_EQ_INT(BS_CREATING, s);
	ASSERT_TRUE(backup_state_holds_slot(s));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_DO_SNAPSHOT_SET, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_BACKUP_COMPLETE, NULL));

	/* The engine's verdict. */
	s = BS_CREATED;
	ASSERT_FALSE(backup_state_holds_slot(s));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_GATHER_WRITER_STATUS, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_SET_BACKUP_SUCCEEDED, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_BACKUP_COMPLETE, NULL));
	s = backup_state_next(s, BC_BACKUP_COMPLETE);
	ASSERT_EQ_INT(BS_COMPLETE, s);
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_BACKUP_COMPLETE, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_QUERY, NULL));
	ASSERT_EQ_INT(BS_COMPLETE, backup_state_next(s, BC_ABORT_BACKUP));
}

/* A restore as reference §1.3 orders it: every backup call is refused
 * along the way, and nothing aborts it. */
static void test_restore_sequence(void)
{
	static const BackupCall backup_only[] = {
		BC_INITIALIZE_FOR_BACKUP, BC_SET_CONTEXT, BC_SET_BACKUP_STATE, BC_START_SNAPSHOT_SET,
		BC_ADD_TO_SNAPSHOT_SET, BC_PREPARE_FOR_BACKUP, BC_DO_SNAPSHOT_SET, BC_ABORT_BACKUP,
		BC_BACKUP_COMPLETE, BC_ADD_COMPONENT, BC_SET_BACKUP_SUCCEEDED, BC_INITIALIZE_FOR_RESTORE,
	};
	BackupState s = BS_NEW;
	BackupFacts f = { .writers_context = true };
	const char *reason = NULL;

	/* Restore calls on a backup object. */
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(BS_INITIALIZED, &f, BC_PRE_RESTORE, &reason));
	ASSERT_NOT_NULL(strstr(reason, "InitializeForRestore"));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(BS_CREATED, &f, BC_SET_SELECTED_FOR_RESTORE, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(BS_INITIALIZED, &f, BC_SAVE_AS_XML, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(BS_ABORTED, &f, BC_SAVE_AS_XML, NULL));

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_INITIALIZE_FOR_RESTORE, NULL));
	s = backup_state_next(s, BC_INITIALIZE_FOR_RESTORE);
	ASSERT_EQ_INT(BS_RESTORE_INITIALIZED, s);
	ASSERT_FALSE(backup_state_holds_slot(s));
	for (size_t i = 0; i < ELEMENTSOF(backup_only); i++)
		ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, backup_only[i], NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_ABORT_BACKUP, &reason));
	ASSERT_NOT_NULL(strstr(reason, "cannot be aborted"));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_PRE_RESTORE, &reason));
	ASSERT_NOT_NULL(strstr(reason, "GatherWriterMetadata"));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_POST_RESTORE, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_SAVE_AS_XML, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_SET_SELECTED_FOR_RESTORE, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_GATHER_WRITER_METADATA, NULL));
	f.round_in_flight = true;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_SET_SELECTED_FOR_RESTORE, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_GATHER_WRITER_METADATA, NULL));
	f.round_in_flight = false;
	f.metadata_gathered = true;
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_GET_WRITER_METADATA, NULL));

	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_PRE_RESTORE, NULL));
	s = backup_state_next(s, BC_PRE_RESTORE);
	ASSERT_EQ_INT(BS_PRE_RESTORED, s);
	f.round_in_flight = true;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_POST_RESTORE, NULL));
	f.round_in_flight = false;
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_PRE_RESTORE, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_SET_SELECTED_FOR_RESTORE, NULL));
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_ABORT_BACKUP, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_POST_RESTORE, NULL));
	s = backup_state_next(s, BC_POST_RESTORE);
	ASSERT_EQ_INT(BS_RESTORED, s);
	ASSERT_HR(VSS_E_BAD_STATE, backup_state_check(s, &f, BC_POST_RESTORE, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_GATHER_WRITER_STATUS, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_SAVE_AS_XML, NULL));
	ASSERT_HR(S_OK, backup_state_check(s, &f, BC_QUERY, NULL));
}

int main(void)
{
	RUN_TEST(test_check_every_pair);
	RUN_TEST(test_check_out_of_range);
	RUN_TEST(test_next_every_pair);
	RUN_TEST(test_holds_slot);
	RUN_TEST(test_names);
	RUN_TEST(test_context_helpers);
	RUN_TEST(test_full_sequence);
	RUN_TEST(test_restore_sequence);
	TEST_SUMMARY();
	return 0;
}
