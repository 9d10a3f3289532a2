/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fault-injection seam of the provider layer. Tests start vssd with
 * VSS_FAULTS set to make a chosen provider step fail or stall on a chosen
 * member, while every other step runs for real against the kernel:
 *
 *   VSS_FAULTS="STEP:MEMBER:ACTION[,STEP:MEMBER:ACTION...]"
 *
 *   STEP    begin_prepare, end_prepare, pre_commit, hold, commit, release,
 *           post_commit, pre_final_commit, post_final_commit, abort, delete
 *   MEMBER  1-based position of the volume in the set, or * for every member
 *   ACTION  an errno name (ENOSPC, EDQUOT, EIO, EROFS, ...): fail with it
 *           veto: fail with VSS_E_PROVIDER_VETO
 *           delay=MS: sleep MS milliseconds, then run the step
 *           any of these followed by *N: only the first N times
 *
 * Unset, it costs one pointer test per step.
 */

#include "basic/util.h"

typedef enum ProviderStep {
	STEP_BEGIN_PREPARE,
	STEP_END_PREPARE,
	STEP_PRE_COMMIT,
	STEP_HOLD,
	STEP_COMMIT,
	STEP_RELEASE,
	STEP_POST_COMMIT,
	STEP_PRE_FINAL_COMMIT,
	STEP_POST_FINAL_COMMIT,
	STEP_ABORT,
	STEP_DELETE,
	_STEP_MAX,
} ProviderStep;

const char *provider_step_name(ProviderStep s);

typedef struct FaultTable FaultTable;

/* Parse a specification; -EINVAL names the bad entry in the log. */
int fault_table_parse(const char *spec, FaultTable **ret);
FaultTable *fault_table_free(FaultTable *t);

/* The injected result for this step and member: 0 when there is none (after
 * sleeping, for a delay), else a negative errno or a failing HRESULT. */
int fault_inject(FaultTable *t, ProviderStep step, unsigned member);
