/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A crew of worker threads, one per set member, started once per set so that
 * a step (flush, hold, commit, release) runs on every member at the same
 * time, under a deadline. A worker whose step outlives the deadline keeps
 * running; the engine decides what to do and waits for it before touching
 * that member again.
 */

#include <stdbool.h>
#include <stddef.h>

#include "basic/util.h"

typedef struct Crew Crew;
typedef int (*crew_fn)(void *item, void *userdata);

int crew_new(size_t n, Crew **ret);
/* Waits for running steps to end, then stops the threads. */
Crew *crew_free(Crew *c);

/*
 * Run fn(items[i], userdata) on worker i for every i with selected[i] (all
 * when selected is NULL), until each returned or the CLOCK_MONOTONIC deadline
 * passed (USEC_INFINITY: no deadline). For each selected worker that
 * returned, done[i] is set and results[i] holds its result.
 *
 * Return: how many selected workers were still running at the deadline.
 */
size_t crew_run(Crew *c, crew_fn fn, void **items, void *userdata, const bool *selected,
                int *results, bool *done, usec_t deadline);

/* Wait until no worker is running a step. */
void crew_wait_idle(Crew *c);
