/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Holding writes: FIFREEZE and FITHAW of the filesystems of a set's members,
 * made so that a freeze can never stick (docs/ENGINE.md):
 *
 *  - a marker file in vssd's runtime directory lists what may be frozen
 *    before anything is, and goes only once all is thawed, so that a vssd
 *    that starts again thaws first (freeze_recover());
 *  - a guard process, forked before the first freeze, thaws everything when
 *    vssd dies (its pipe closes) or when the hold deadline passes, whatever
 *    vssd is doing.
 *
 * Nothing here writes to a frozen filesystem: vssd refuses a volume that
 * holds its runtime or state directory, or its log.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "basic/util.h"

typedef struct FreezeSet FreezeSet;

/* The marker's name in vssd's runtime directory. */
#define FREEZE_MARKER "frozen"

/* Take (duplicate) fds[i], a file of each member's filesystem (-1 for
 * members that are not held; paths[i] names it, for the marker and logs),
 * and write the marker in dir_fd, vssd's own runtime directory. Nothing is
 * opened by name. On failure nothing of the caller's is closed. */
int freeze_set_new(const int *fds, char *const *paths, size_t n, int dir_fd, FreezeSet **ret);
/* Thaws nothing: the caller releases first. Removes the marker when every
 * member is known to be thawed. */
FreezeSet *freeze_set_free(FreezeSet *s);

/* Fork the guard; it thaws every member at deadline (CLOCK_MONOTONIC) or
 * when vssd dies. */
int freeze_guard_start(FreezeSet *s, usec_t deadline);
/* Tell the guard that everything was released and wait for it. Returns 1 if
 * the guard had to thaw (its deadline passed first), 0 if not, negative when
 * it could not thaw. */
int freeze_guard_stop(FreezeSet *s);
/* Let the guard thaw everything now (vssd could not) and wait for it: 0 when
 * it thawed every member, negative otherwise. */
int freeze_guard_thaw(FreezeSet *s);

/* FIFREEZE / FITHAW of member i: 0 or a negative errno. Thawing what is not
 * frozen succeeds. Safe to call for different members from different
 * threads. */
int freeze_one(FreezeSet *s, size_t i);
int thaw_one(FreezeSet *s, size_t i);
/* Whether vssd froze member i and has not thawed it (false for a NULL set). */
bool freeze_held(FreezeSet *s, size_t i);

/* At start-up: thaw whatever the marker in dir_fd lists (each only if it is
 * still the filesystem recorded), and remove it. A marker that is not a
 * regular file of root's is removed unread. Returns how many filesystems
 * were listed. */
int freeze_recover(int dir_fd);

/* The device of the filesystem holding path (st_dev), for the rule that vssd
 * must not freeze where it writes. */
int path_device(const char *path, dev_t *ret);
