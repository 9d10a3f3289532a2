/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A provider for unit tests: two tables (tp_ops_a, tp_ops_b, so that a set can
 * have two providers) whose steps touch no disk and need no root, and a third
 * (tp_ops_bare) with only the required steps, to exercise the engine's
 * defaults. Each step
 *
 *  - appends "STEP INDEX" to a log (end_prepare: "end_prepare NAME I,J,..."),
 *    so a test compares the calls the engine made with the protocol;
 *  - checks the rules the engine promises a provider, and counts a violation
 *    when one breaks: no two steps of one member at once (in particular, no
 *    abort while the member's own late step still runs), nothing after a
 *    member's abort, no two commits at once;
 *  - does what the test told it for that step and member: succeed, fail with
 *    a result (a negative errno or a failing HRESULT), stall, block until the
 *    test releases it, block until the engine waits for its late workers
 *    (tp_engine_waits(), called by a test that wraps crew_wait_idle), or meet
 *    the other members of the step at a rendezvous (proving they run at once).
 *
 * Waits never hang: after TP_HANG_USEC a wait gives up and counts a
 * violation, so a broken engine fails the test instead of stalling it.
 *
 * Members carry only what the provider needs (tp_member()), set with
 * designated initializers, so that fields added to ProviderMember later keep
 * their zero defaults.
 */

#include <stdbool.h>

#include "providers/provider.h"

#define TP_HANG_USEC (20 * USEC_PER_SEC)
#define TP_MAX_MEMBERS 8

typedef enum TpAction {
	TP_RUN,            /* succeed */
	TP_FAIL,           /* return arg */
	TP_STALL,          /* sleep arg ms, then succeed */
	TP_BLOCK,          /* wait for tp_release(), then succeed */
	TP_BLOCK_UNTIL_WAIT, /* wait for tp_engine_waits(), then succeed */
	TP_RENDEZVOUS,     /* wait until arg calls of this step are inside it */
} TpAction;

extern const provider_ops tp_ops_a, tp_ops_b, tp_ops_bare;
/* A provider that commits its members as one group (log: "commit_group G
 * I,J,..."), with no end_prepare and no post_commit. */
extern const provider_ops tp_ops_group;

/* Forget the log, the actions and the counters; call before each test. */
void tp_reset(void);
/* What step does for member (1-based; 0: every member). For end_prepare the
 * member is the first of the provider's group. */
void tp_set(ProviderStep step, unsigned member, TpAction action, int arg);

/* A member of index (1-based) served by ops, for job_new(). */
ProviderMember tp_member(const provider_ops *ops, unsigned index);
/* An array of n members for job_new(); ops[i] serves member i + 1. */
ProviderMember *tp_members(size_t n, const provider_ops *const *ops);

/* Append an entry to the log (pauses, wrappers); thread-safe. */
void tp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The log as one string, entries separated by ", ", with each run of
 * consecutive pre_commit entries sorted (the flush runs in parallel). */
char *tp_log_string(void);
/* Position of the first entry equal to entry, or -1. */
int tp_log_find(const char *entry);

/* How often step ran for member (1-based; for end_prepare, groups whose
 * first member it is). */
unsigned tp_count(ProviderStep step, unsigned member);
/* Broken rules so far; the first one in words. */
unsigned tp_violations(void);
const char *tp_first_violation(void);

/* Block until step was entered for member; then release it (TP_BLOCK). */
void tp_wait_entered(ProviderStep step, unsigned member);
void tp_release(ProviderStep step, unsigned member);

/* The engine is waiting for its late workers: TP_BLOCK_UNTIL_WAIT steps go
 * on, and so does tp_wait_engine_waits(). */
void tp_engine_waits(void);
void tp_wait_engine_waits(void);
