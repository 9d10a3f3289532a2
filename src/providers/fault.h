/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The fault-injection seam. Tests start vssd with VSS_FAULTS set to make a
 * chosen provider step fail or stall on a chosen member, or a chosen kernel or
 * library call fail or stall on its Nth use, while everything else runs for
 * real against the kernel:
 *
 *   VSS_FAULTS="ENTRY[,ENTRY...]"
 *   ENTRY   STEP:MEMBER:ACTION or POINT:CALL:ACTION or revert:N:ACTION
 *
 *   STEP    begin_prepare, end_prepare, pre_commit, hold, commit, release,
 *           post_commit, pre_final_commit, post_final_commit, abort, delete
 *   MEMBER  1-based position of the volume in the set, or * for every member
 *   POINT   a call vssd depends on (FaultPoint below): freeze, thaw, clone,
 *           sync, snapshot, remove, mount, umount, loop, catalog, fork, exec,
 *           space
 *   CALL    the Nth call of it since vssd started (1-based), or * for every one
 *   revert:N  step N (1-based, or * for every one) of a provider's revert,
 *           each time a revert (or its resumption at start) reaches it: the
 *           step is not taken when the action fails it; delay=MS then
 *           SIGKILL stops vssd just before it
 *   ACTION  an errno name (ENOSPC, EDQUOT, EIO, EROFS, ...): fail with it
 *           veto: fail with VSS_E_PROVIDER_VETO (STEP entries only)
 *           delay=MS: sleep MS milliseconds, then go on
 *           any of these followed by *N: only the first N times
 *
 * An injected point is logged ("VSS_FAULTS: injected ..."), so that a test
 * walking every call of a point knows when it has passed the last one.
 * Unset, it costs one pointer test per step or call.
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

/* The kernel and library calls the engine, delete, expose and start-up
 * depend on; the code making each asks fault_point() first. */
typedef enum FaultPoint {
	POINT_FREEZE,   /* FIFREEZE */
	POINT_THAW,     /* FITHAW (never in the guard: it is the last resort) */
	POINT_CLONE,    /* FICLONE of an image */
	POINT_SYNC,     /* syncfs, fdatasync, btrfs sync */
	POINT_SNAPSHOT, /* btrfs snapshot */
	POINT_REMOVE,   /* deleting a snapshot: btrfs subvolume delete, unlink */
	POINT_MOUNT,    /* mounting an exposure */
	POINT_UMOUNT,   /* unmounting one */
	POINT_LOOP,     /* attaching a loop device */
	POINT_CATALOG,  /* a write to the catalog */
	POINT_FORK,     /* fork() of the guard or of a helper program */
	POINT_EXEC,     /* exec of a helper program */
	POINT_SPACE,    /* a provider's measure of the space its snapshots take */
	_POINT_MAX,
} FaultPoint;

const char *fault_point_name(FaultPoint p);

typedef struct FaultTable FaultTable;

/* Parse a specification; -EINVAL names the bad entry in the log. */
int fault_table_parse(const char *spec, FaultTable **ret);
FaultTable *fault_table_free(FaultTable *t);

/* The injected result for this step and member: 0 when there is none (after
 * sleeping, for a delay), else a negative errno or a failing HRESULT. */
int fault_inject(FaultTable *t, ProviderStep step, unsigned member);

/* The table fault_point() consults: vssd's, set once at start-up before any
 * thread runs (NULL: none). Not owned. */
void fault_table_set_global(FaultTable *t);
/* Count one call of p and return what to inject into it: 0 (after sleeping,
 * for a delay) or a negative errno. Safe from any thread. */
int fault_point(FaultPoint p);
/* Called by a provider's revert before its step n (1, 2, ...), from any
 * thread: 0 (after sleeping, for a delay) or a negative errno to fail the
 * revert with, the step not taken. */
int fault_revert_step(unsigned n);
