/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A program run from vssd's event loop without blocking it (basic/spawn-util.h
 * runs one on the calling thread): its output is read as it comes, it is
 * killed at its deadline, and done is called on the loop when it has ended.
 */

#include <systemd/sd-event.h>

#include "basic/spawn-util.h"

typedef struct LoopSpawn LoopSpawn;

/* Start argv. done (may be NULL) gets the result once the program ended or
 * was killed at o->timeout; the LoopSpawn then frees itself, unless freed
 * before. ret may be NULL: nobody can free it early then. 0 or a negative
 * errno (nothing left running): -ENOSYS without pidfds. */
int loop_spawn(sd_event *e, char *const argv[], const SpawnOptions *o,
               void (*done)(const SpawnResult *r, void *userdata), void *userdata, LoopSpawn **ret);
/* Kill and reap a program still running; done is not called. */
LoopSpawn *loop_spawn_free(LoopSpawn *s);
