/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * RevertToSnapshot and QueryRevertStatus (docs/DBUS.md): a volume made to
 * hold what one of its snapshots holds, by its provider's revert_plan and
 * revert (providers/provider.h), each on a thread of its own while the loop
 * serves every other peer. The intent is in the catalog (its `reverts`
 * table) before the provider first touches the volume, and goes when the
 * revert is done; a revert cut short is finished from it at the next start
 * (revert_resume_all), before anything else touches the volume. A revert
 * that cannot be finished leaves its volume refusing sets and reverts
 * (VSS_E_REVERT_IN_PROGRESS) until it is.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "vssd/manager.h"

/* The methods of org.vss.Backup1. */
int method_revert_to_snapshot(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_query_revert_status(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* At start, before reconcile: every revert the catalog records is finished
 * (revert called again with its plan), or left recorded and its volume
 * blocked, the log saying what to do. 0, or a negative errno when the
 * catalog cannot be read. */
int revert_resume_all(Manager *m);
/* Whether a revert runs on volume or is left unfinished there: then
 * VSS_E_REVERT_IN_PROGRESS is set in error (saying which) and -EIO returned;
 * otherwise 0. What would make a set of the volume asks it. */
int revert_check_volume(Manager *m, const char *volume, sd_bus_error *error);
/* Whether volume has a revert running or unfinished: reconcile does not
 * look for its snapshots while it is not mounted, and none of them is
 * deleted (its store may be elsewhere meanwhile). */
bool revert_holds_volume(Manager *m, const char *volume);
/* Whether a revert's thread runs: vssd waits for it before it stops. */
bool revert_running(Manager *m);
/* The requestor object b is gone: a revert it asked for goes on, with
 * nobody to answer. */
void revert_abandon(BackupObject *b);
/* An operation QueryRevertStatus gave is released. */
void revert_async_gone(Manager *m, AsyncOp *a);
/* vssd stops: each running revert is waited for and recorded as it ended. */
void revert_stop(Manager *m);
