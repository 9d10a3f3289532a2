/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/macro.h"
#include "providers/provider.h"
#include "vssd/creation/crew.h"
#include "vssd/creation/engine.h"
#include "test-provider.h"
#include "tests.h"

/*
 * The DoSnapshotSet engine against the test provider: the protocol order,
 * all or nothing at every step of every member, the flush and hold limits,
 * cancellation, and the pauses where vssd talks to writers (the test plays
 * vssd there). No root and no filesystem: no member names a hold_path, so
 * nothing is frozen (the freeze layer needs root and real filesystems; the
 * integration tests cover it).
 *
 * The program is linked with --wrap=crew_run,--wrap=crew_wait_idle, so that it
 * sees the engine give up on late workers and start waiting for them: a step
 * that must outlive its deadline blocks until that moment, which makes every
 * deadline test independent of timing.
 */

size_t __real_crew_run(Crew *c, crew_fn fn, void **items, void *userdata, const bool *selected, int *results,
                       bool *done, usec_t deadline);
size_t __wrap_crew_run(Crew *c, crew_fn fn, void **items, void *userdata, const bool *selected, int *results,
                       bool *done, usec_t deadline);
void __real_crew_wait_idle(Crew *c);
void __wrap_crew_wait_idle(Crew *c);

/* Set: the next crew_run's workers start their step only once the engine
 * waits for them, i.e. after crew_run gave up and returned. */
static bool hold_next_run;
static crew_fn held_fn;

static int start_late(void *item, void *userdata)
{
	tp_wait_engine_waits();
	return held_fn(item, userdata);
}

size_t __wrap_crew_run(Crew *c, crew_fn fn, void **items, void *userdata, const bool *selected, int *results,
                       bool *done, usec_t deadline)
{
	size_t late;

	if (hold_next_run) {
		hold_next_run = false;
		held_fn = fn;
		fn = start_late;
	}
	late = __real_crew_run(c, fn, items, userdata, selected, results, done, deadline);
	if (late > 0)
		tp_log("late %zu", late);
	return late;
}

void __wrap_crew_wait_idle(Crew *c)
{
	tp_log("wait for workers");
	tp_engine_waits();
	__real_crew_wait_idle(c);
}

#if defined(__SANITIZE_ADDRESS__)
/* A step read from a returned frame is then reported, not just wrong. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_stack_use_after_return=1";
}
#endif

/* --- vssd's part: the limits and the writer pauses ----------------------- */

static const char *phase_name(JobPhase p)
{
	static const char *const names[] = {
		[PHASE_PREPARE_SNAPSHOT] = "PREPARE_SNAPSHOT",
		[PHASE_FREEZE] = "FREEZE",
		[PHASE_THAW] = "THAW",
		[PHASE_POST_SNAPSHOT] = "POST_SNAPSHOT",
		[PHASE_ABORT] = "ABORT",
	};

	return names[p];
}

typedef struct Writers {
	bool fail;
	JobPhase fail_at;
	vss_hr fail_hr;
	bool cancel;
	JobPhase cancel_at;
	bool cancel_honoured;
} Writers;

static vss_hr on_pause(Job *j, JobPhase phase, void *userdata)
{
	Writers *w = userdata;

	tp_log("pause %s", phase_name(phase));
	if (w->cancel && phase == w->cancel_at) {
		w->cancel_honoured = job_cancel(j);
		tp_log("cancel %s", w->cancel_honoured ? "honoured" : "refused");
	}
	if (w->fail && phase == w->fail_at)
		return w->fail_hr;
	return S_OK;
}

#define LONG_LIMIT (10 * USEC_PER_SEC)

static JobLimits limits(usec_t flush, usec_t hold, Writers *w)
{
	return (JobLimits){
		.flush_timeout = flush,
		.hold_timeout = hold,
		.pause = w ? on_pause : NULL,
		.pause_userdata = w,
	};
}

/* Three members: 1 and 3 of provider A, 2 of provider B. */
static const provider_ops *const ABA[] = { &tp_ops_a, &tp_ops_b, &tp_ops_a };

static Job *new_job(size_t n, const provider_ops *const *ops, const JobLimits *l)
{
	ProviderMember *ms = tp_members(n, ops);
	Job *j = NULL;

	ASSERT_OK(job_new(&ms, n, l, &j));
	ASSERT_NULL(ms);
	return j;
}

static void assert_log(const char *expected)
{
	char *s = tp_log_string();

	ASSERT_STREQ(expected, s);
	free(s);
}

static void assert_no_violation(void)
{
	if (tp_violations() > 0)
		TEST_FAIL("the engine broke a rule: %s", tp_first_violation());
	test_checks++;
}

/* Where member i's abort is in the log. */
static int find_abort(unsigned i)
{
	char e[32];

	snprintf(e, sizeof(e), "abort %u", i);
	return tp_log_find(e);
}

/* Start the job on its own thread and wait for done_fd, as vssd does. */
static void wait_done(Job *j)
{
	struct pollfd p = { .fd = j->done_fd, .events = POLLIN };

	ASSERT_EQ_INT(1, poll(&p, 1, (int)(TP_HANG_USEC / USEC_PER_MSEC)));
	job_join(j);
}

#define PREPARE_ABA "begin_prepare 1, begin_prepare 2, begin_prepare 3, end_prepare A 1,3, end_prepare B 2"
#define FLUSH_3 "pre_commit 1, pre_commit 2, pre_commit 3"
#define COMMIT_3 "commit 1, commit 2, commit 3"
#define FINISH_3                                                                                         \
	"post_commit 1, post_commit 2, post_commit 3, pre_final_commit 1, pre_final_commit 2, "          \
	"pre_final_commit 3, post_final_commit 1, post_final_commit 2, post_final_commit 3"
#define ABORT_3 "wait for workers, abort 1, abort 2, abort 3"

/* --- The protocol ------------------------------------------------------- */

static void test_protocol_order(void)
{
	Writers w = { 0 };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, &w);
	Job *j;

	tp_reset();
	/* The flush runs on every member at once: each waits for the others. */
	tp_set(STEP_PRE_COMMIT, 0, TP_RENDEZVOUS, 3);
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_S_ASYNC_FINISHED, job_run(j));
	assert_log("pause PREPARE_SNAPSHOT, " PREPARE_ABA ", pause FREEZE, " FLUSH_3 ", " COMMIT_3
		   ", pause THAW, " FINISH_3 ", pause POST_SNAPSHOT");
	assert_no_violation();
	ASSERT_HR(VSS_S_ASYNC_FINISHED, j->result);
	ASSERT_STREQ("", j->message);
	ASSERT_EQ_INT(CONSISTENCY_CRASH_PER_VOLUME, j->consistency);
	ASSERT_TRUE(j->created_us > 0);
	for (size_t i = 0; i < j->n_members; i++) {
		ASSERT_EQ_INT(VSS_SS_CREATED, j->members[i].state);
		/* post_final_commit released the provider's state. */
		ASSERT_NULL(j->members[i].priv);
	}
	job_free(j);
}

/* Without a writer, only the phases that hold the transaction managers are
 * paused for; a failure after the first skipped one still owes the abort. */
static void test_quiet_phases_are_not_paused(void)
{
	Writers w = { 0 };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, &w);
	Job *j;

	l.no_pause = 1u << PHASE_PREPARE_SNAPSHOT | 1u << PHASE_POST_SNAPSHOT;
	tp_reset();
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_S_ASYNC_FINISHED, job_run(j));
	assert_log(PREPARE_ABA ", pause FREEZE, " FLUSH_3 ", " COMMIT_3 ", pause THAW, " FINISH_3);
	assert_no_violation();
	job_free(j);

	tp_reset();
	tp_set(STEP_BEGIN_PREPARE, 2, TP_FAIL, -EIO);
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_E_UNEXPECTED_PROVIDER_ERROR, job_run(j));
	ASSERT_TRUE(tp_log_find("pause ABORT") > find_abort(1));
	ASSERT_EQ_INT(-1, tp_log_find("pause PREPARE_SNAPSHOT"));
	assert_no_violation();
	job_free(j);
}

static void test_protocol_on_thread_without_writers(void)
{
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, NULL);
	Job *j;

	tp_reset();
	j = new_job(3, ABA, &l);
	ASSERT_OK(job_start(j));
	wait_done(j);
	ASSERT_HR(VSS_S_ASYNC_FINISHED, j->result);
	assert_log(PREPARE_ABA ", " FLUSH_3 ", " COMMIT_3 ", " FINISH_3);
	assert_no_violation();
	/* Done: too late to cancel. */
	ASSERT_FALSE(job_cancel(j));
	job_free(j);
}

/* Without the optional steps the engine goes on, and without abort it
 * deletes what begin_prepare may have made at snapshot_path. */
static void test_bare_provider(void)
{
	static const provider_ops *const bare[] = { &tp_ops_bare, &tp_ops_bare };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, NULL);
	Job *j;

	tp_reset();
	j = new_job(2, bare, &l);
	ASSERT_HR(VSS_S_ASYNC_FINISHED, job_run(j));
	assert_log("begin_prepare 1, begin_prepare 2, pre_commit 1, pre_commit 2, commit 1, commit 2");
	job_free(j);

	tp_reset();
	tp_set(STEP_COMMIT, 2, TP_FAIL, -EIO);
	j = new_job(2, bare, &l);
	ASSERT_HR(VSS_E_UNEXPECTED_PROVIDER_ERROR, job_run(j));
	assert_log("begin_prepare 1, begin_prepare 2, pre_commit 1, pre_commit 2, commit 1, commit 2, "
		   "wait for workers, delete /vol1@snap, delete /vol2@snap");
	job_free(j);
}

/* --- All or nothing ----------------------------------------------------- */

/* What the requestor must see for each provider result (docs/PROVIDERS.md),
 * written out rather than taken from provider_result_to_hr(). */
static const struct {
	int r;
	vss_hr hr;
} results[] = {
	{ -ENOSPC, VSS_E_INSUFFICIENT_STORAGE },
	{ -EDQUOT, VSS_E_INSUFFICIENT_STORAGE },
	{ -ENOMEM, E_OUTOFMEMORY },
	{ -EIO, VSS_E_UNEXPECTED_PROVIDER_ERROR },
	{ -EROFS, VSS_E_UNEXPECTED_PROVIDER_ERROR },
	{ VSS_E_PROVIDER_VETO, VSS_E_PROVIDER_VETO },
	{ VSS_E_OBJECT_NOT_FOUND, VSS_E_OBJECT_NOT_FOUND },
	{ VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED },
	{ E_FAIL, VSS_E_UNEXPECTED_PROVIDER_ERROR },
	{ VSS_E_BAD_STATE, VSS_E_BAD_STATE },
};

static const ProviderStep steps[] = {
	STEP_BEGIN_PREPARE, STEP_END_PREPARE,      STEP_PRE_COMMIT,        STEP_COMMIT,
	STEP_POST_COMMIT,   STEP_PRE_FINAL_COMMIT, STEP_POST_FINAL_COMMIT,
};

/* How often step s ran on member i (1-based; end_prepare: the provider
 * groups it leads) when step f failed on member k of the ABA set. */
static unsigned expected_calls(size_t s, size_t f, unsigned k, unsigned i)
{
	ProviderStep step = steps[s];

	if (step == STEP_END_PREPARE && i == 3)
		return 0; /* member 3 is in A's group, led by 1 */
	if (s < f)
		return 1;
	if (s > f)
		return 0;
	/* The failing step itself. The flush runs everywhere at once; the
	 * others go member after member (end_prepare: A's group, then B's) and
	 * stop at the failure. */
	if (step == STEP_PRE_COMMIT)
		return 1;
	return i <= k;
}

static void check_failure(size_t f, unsigned k, int r, vss_hr hr)
{
	Writers w = { 0 };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, &w);
	const char *name = provider_step_name(steps[f]);
	unsigned n_begun = steps[f] == STEP_BEGIN_PREPARE ? k : 3;
	int first_abort, abort_pause;
	char vol[16];
	Job *j;

	tp_reset();
	tp_set(steps[f], k, TP_FAIL, r);
	j = new_job(3, ABA, &l);
	ASSERT_HR(hr, job_run(j));
	ASSERT_HR(hr, j->result);
	ASSERT_HR(provider_result_to_hr(r), hr);
	assert_no_violation();

	/* The reason names the step, and the volume when it is a member's. */
	ASSERT_NOT_NULL(strstr(j->message, name));
	snprintf(vol, sizeof(vol), "/vol%u", k);
	if (steps[f] != STEP_END_PREPARE)
		ASSERT_NOT_NULL(strstr(j->message, vol));

	/* Nothing runs past the failure. */
	for (size_t s = 0; s < ELEMENTSOF(steps); s++)
		for (unsigned i = 1; i <= 3; i++)
			if (tp_count(steps[s], i) != expected_calls(s, f, k, i))
				TEST_FAIL("%s failing on member %u: %s ran %u times on member %u, expected %u", name, k,
					  provider_step_name(steps[s]), tp_count(steps[s], i), i,
					  expected_calls(s, f, k, i));

	/* Every member that saw begin_prepare is aborted once, and only those;
	 * after the workers are idle, and before the writers hear of it. */
	first_abort = find_abort(1);
	abort_pause = tp_log_find("pause ABORT");
	for (unsigned i = 1; i <= 3; i++) {
		bool begun = i <= n_begun;

		ASSERT_EQ_UINT(begun, tp_count(STEP_ABORT, i));
		ASSERT_EQ_INT(begun ? VSS_SS_ABORTED : VSS_SS_PREPARING, j->members[i - 1].state);
		ASSERT_NULL(j->members[i - 1].priv);
		if (begun) {
			ASSERT_TRUE(find_abort(i) >= first_abort);
			ASSERT_TRUE(find_abort(i) < abort_pause);
		}
	}
	ASSERT_TRUE(tp_log_find("wait for workers") < first_abort);
	ASSERT_TRUE(first_abort >= 0);
	ASSERT_TRUE(abort_pause >= 0);
	/* The writers' phases up to the failure, then their abort, once. */
	ASSERT_EQ_INT(0, tp_log_find("pause PREPARE_SNAPSHOT"));
	ASSERT_EQ_INT(steps[f] > STEP_END_PREPARE, tp_log_find("pause FREEZE") >= 0);
	ASSERT_EQ_INT(steps[f] > STEP_COMMIT, tp_log_find("pause THAW") >= 0);
	ASSERT_EQ_INT(-1, tp_log_find("pause POST_SNAPSHOT"));
	{
		char *s = tp_log_string();
		const char *tail = strstr(s, "pause ABORT");

		ASSERT_NOT_NULL(tail);
		ASSERT_STREQ("pause ABORT", tail);
		free(s);
	}
	ASSERT_EQ_INT(CONSISTENCY_NONE, j->consistency);
	job_free(j);
}

/* A provider's commit_group gets all of its members in one call, at its first
 * member's turn, inside the hold; a failing group fails the set and every
 * member is aborted. */
static void test_commit_group(void)
{
	static const provider_ops *const GAGB[] = { &tp_ops_group, &tp_ops_a, &tp_ops_group, &tp_ops_b };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, NULL);
	Job *j;
	int c;

	tp_reset();
	j = new_job(4, GAGB, &l);
	ASSERT_HR(VSS_S_ASYNC_FINISHED, job_run(j));
	c = tp_log_find("commit_group G 1,3");
	ASSERT_TRUE(c >= 0);
	ASSERT_TRUE(tp_log_find("commit 2") == c + 1);
	ASSERT_TRUE(tp_log_find("commit 4") == c + 2);
	ASSERT_EQ_UINT(1, tp_count(STEP_COMMIT, 1));
	ASSERT_EQ_UINT(0, tp_count(STEP_COMMIT, 3));
	ASSERT_EQ_INT(-1, tp_log_find("commit 1"));
	assert_no_violation();
	job_free(j);

	tp_reset();
	tp_set(STEP_COMMIT, 1, TP_FAIL, -EIO);
	j = new_job(4, GAGB, &l);
	ASSERT_HR(VSS_E_UNEXPECTED_PROVIDER_ERROR, job_run(j));
	/* The set stops at the group: no member after it is committed. */
	ASSERT_EQ_INT(-1, tp_log_find("commit 2"));
	for (unsigned i = 1; i <= 4; i++)
		ASSERT_TRUE(find_abort(i) >= 0);
	assert_no_violation();
	job_free(j);
}

static void test_failure_at_every_step(void)
{
	size_t e = 0;

	for (size_t f = 0; f < ELEMENTSOF(steps); f++)
		for (unsigned k = 1; k <= 3; k++) {
			/* end_prepare runs per provider: A's is led by 1, B's by 2. */
			if (steps[f] == STEP_END_PREPARE && k == 3)
				continue;
			for (size_t n = 0; n < 3; n++, e++)
				check_failure(f, k, results[e % ELEMENTSOF(results)].r,
					      results[e % ELEMENTSOF(results)].hr);
		}
	/* Every result at one step, so none depends on where it happens. */
	for (size_t i = 0; i < ELEMENTSOF(results); i++)
		check_failure(3, 2, results[i].r, results[i].hr);
}

/* An abort that fails is logged; the other members are still aborted and
 * the set fails for its first reason. */
static void test_failing_abort(void)
{
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, NULL);
	Job *j;

	tp_reset();
	tp_set(STEP_POST_COMMIT, 3, TP_FAIL, -ENOSPC);
	tp_set(STEP_ABORT, 1, TP_FAIL, -EIO);
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_E_INSUFFICIENT_STORAGE, job_run(j));
	assert_log(PREPARE_ABA ", " FLUSH_3 ", " COMMIT_3 ", post_commit 1, post_commit 2, post_commit 3, " ABORT_3);
	ASSERT_NOT_NULL(strstr(j->message, "post_commit of /vol3"));
	assert_no_violation();
	job_free(j);
}

/* --- Deadlines ---------------------------------------------------------- */

/* A flush past the limit fails the set; the late step is waited for, and
 * only then is any member aborted. */
static void test_flush_deadline(void)
{
	Writers w = { 0 };
	JobLimits l = limits(20 * USEC_PER_MSEC, LONG_LIMIT, &w);
	Job *j;

	tp_reset();
	tp_set(STEP_PRE_COMMIT, 2, TP_BLOCK_UNTIL_WAIT, 0);
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_E_FLUSH_WRITES_TIMEOUT, job_run(j));
	assert_no_violation();
	ASSERT_NOT_NULL(strstr(j->message, "flushing writes took longer than 20 ms"));
	ASSERT_TRUE(tp_log_find("wait for workers") < tp_log_find("end pre_commit 2"));
	for (unsigned i = 1; i <= 3; i++) {
		ASSERT_EQ_UINT(1, tp_count(STEP_PRE_COMMIT, i));
		ASSERT_EQ_UINT(0, tp_count(STEP_COMMIT, i));
		ASSERT_EQ_UINT(1, tp_count(STEP_ABORT, i));
		ASSERT_TRUE(find_abort(i) > tp_log_find("end pre_commit 2"));
	}
	ASSERT_EQ_INT(-1, tp_log_find("pause THAW"));
	ASSERT_TRUE(tp_log_find("pause ABORT") > find_abort(3));
	job_free(j);
}

/* A commit past the hold limit fails the set; no member is committed after
 * the engine gave up, and none is aborted before the late commit returned.
 * (Should the commits start only after the limit, on a busy machine, none
 * runs at all.) */
static void test_hold_deadline(void)
{
	Writers w = { 0 };
	JobLimits l = limits(LONG_LIMIT, 100 * USEC_PER_MSEC, &w);
	Job *j;

	tp_reset();
	tp_set(STEP_COMMIT, 2, TP_BLOCK_UNTIL_WAIT, 0);
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_E_HOLD_WRITES_TIMEOUT, job_run(j));
	assert_no_violation();
	ASSERT_NOT_NULL(strstr(j->message, "the commit took longer than the hold limit of 100 ms"));
	/* The commits run one after another, and the late one is the last. */
	ASSERT_TRUE(tp_count(STEP_COMMIT, 1) <= 1);
	ASSERT_TRUE(tp_count(STEP_COMMIT, 2) <= tp_count(STEP_COMMIT, 1));
	ASSERT_EQ_UINT(0, tp_count(STEP_COMMIT, 3));
	if (tp_count(STEP_COMMIT, 2) > 0) {
		ASSERT_TRUE(tp_log_find("wait for workers") < tp_log_find("end commit 2"));
		ASSERT_TRUE(tp_log_find("end commit 2") < find_abort(1));
	}
	for (unsigned i = 1; i <= 3; i++) {
		ASSERT_EQ_UINT(1, tp_count(STEP_ABORT, i));
		ASSERT_TRUE(find_abort(i) > tp_log_find("wait for workers"));
		ASSERT_TRUE(find_abort(i) < tp_log_find("pause ABORT"));
	}
	ASSERT_EQ_INT(-1, tp_log_find("pause THAW"));
	job_free(j);
}

/* The engine gave up on the flush before any worker started it (a flush
 * limit of 1 ms on a busy machine): each still runs the flush, not whatever
 * the engine's stack holds by then. */
static void test_step_started_after_deadline(void)
{
	JobLimits l = limits(1 * USEC_PER_MSEC, LONG_LIMIT, NULL);
	Job *j;

	tp_reset();
	hold_next_run = true;
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_E_FLUSH_WRITES_TIMEOUT, job_run(j));
	assert_log(PREPARE_ABA ", late 3, wait for workers, " FLUSH_3 ", abort 1, abort 2, abort 3");
	assert_no_violation();
	job_free(j);
}

/* Neither preparing nor finishing has a limit. */
static void test_prepare_has_no_limit(void)
{
	JobLimits l = limits(300 * USEC_PER_MSEC, 300 * USEC_PER_MSEC, NULL);
	Job *j;

	tp_reset();
	tp_set(STEP_BEGIN_PREPARE, 2, TP_STALL, 400);
	tp_set(STEP_POST_FINAL_COMMIT, 1, TP_STALL, 400);
	j = new_job(3, ABA, &l);
	ASSERT_HR(VSS_S_ASYNC_FINISHED, job_run(j));
	assert_log(PREPARE_ABA ", " FLUSH_3 ", " COMMIT_3 ", " FINISH_3);
	job_free(j);
}

/* --- Cancellation ------------------------------------------------------- */

static void check_cancel_in_pause(JobPhase phase, bool honoured)
{
	Writers w = { .cancel = true, .cancel_at = phase };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, &w);
	Job *j;

	tp_reset();
	j = new_job(3, ABA, &l);
	job_run(j);
	ASSERT_EQ_INT(honoured, w.cancel_honoured);
	assert_no_violation();
	if (honoured) {
		ASSERT_HR(VSS_S_ASYNC_CANCELLED, j->result);
		ASSERT_STREQ("cancelled by the requestor", j->message);
		for (unsigned i = 1; i <= 3; i++) {
			ASSERT_EQ_UINT(0, tp_count(STEP_COMMIT, i));
			ASSERT_EQ_UINT(1, tp_count(STEP_ABORT, i));
		}
		ASSERT_TRUE(tp_log_find("pause ABORT") > 0);
	} else {
		ASSERT_HR(VSS_S_ASYNC_FINISHED, j->result);
		for (unsigned i = 1; i <= 3; i++)
			ASSERT_EQ_UINT(0, tp_count(STEP_ABORT, i));
		ASSERT_EQ_INT(-1, tp_log_find("pause ABORT"));
	}
	job_free(j);
}

static void test_cancel_in_pauses(void)
{
	check_cancel_in_pause(PHASE_PREPARE_SNAPSHOT, true);
	/* Cancelled as the writers prepare: the providers' prepare is undone
	 * before the writers are frozen. */
	ASSERT_EQ_INT(-1, tp_log_find("pause FREEZE"));
	check_cancel_in_pause(PHASE_FREEZE, true);
	check_cancel_in_pause(PHASE_THAW, false);
	check_cancel_in_pause(PHASE_POST_SNAPSHOT, false);
}

/* Cancel from another thread while the job is inside a step. */
static void check_cancel_during(ProviderStep step, bool honoured)
{
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, NULL);
	Job *j;

	tp_reset();
	tp_set(step, 2, TP_BLOCK, 0);
	j = new_job(3, ABA, &l);
	ASSERT_OK(job_start(j));
	tp_wait_entered(step, 2);
	ASSERT_EQ_INT(honoured, job_cancel(j));
	/* Asking again changes nothing. */
	ASSERT_EQ_INT(honoured, job_cancel(j));
	tp_release(step, 2);
	wait_done(j);
	assert_no_violation();
	for (unsigned i = 1; i <= 3; i++) {
		ASSERT_EQ_UINT(honoured ? 0 : 1, tp_count(STEP_COMMIT, i));
		ASSERT_EQ_UINT(honoured ? 1 : 0, tp_count(STEP_ABORT, i));
		ASSERT_EQ_INT(honoured ? VSS_SS_ABORTED : VSS_SS_CREATED, j->members[i - 1].state);
	}
	ASSERT_HR(honoured ? VSS_S_ASYNC_CANCELLED : VSS_S_ASYNC_FINISHED, j->result);
	job_free(j);
}

static void test_cancel_during_steps(void)
{
	check_cancel_during(STEP_BEGIN_PREPARE, true);
	check_cancel_during(STEP_PRE_COMMIT, true);
	/* The point of no return is the commit. */
	check_cancel_during(STEP_COMMIT, false);
	check_cancel_during(STEP_POST_COMMIT, false);
}

/* --- The writers' phases ------------------------------------------------ */

static void check_failing_pause(JobPhase phase, vss_hr hr, const char *expected_log)
{
	Writers w = { .fail = true, .fail_at = phase, .fail_hr = hr };
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, &w);
	Job *j;

	tp_reset();
	j = new_job(3, ABA, &l);
	ASSERT_HR(phase == PHASE_POST_SNAPSHOT ? VSS_S_ASYNC_FINISHED : hr, job_run(j));
	assert_log(expected_log);
	assert_no_violation();
	if (phase != PHASE_POST_SNAPSHOT)
		ASSERT_STREQ(vss_hr_message(hr), j->message);
	job_free(j);
}

static void test_failing_pauses(void)
{
	/* The writers heard PrepareSnapshot, so they hear Abort. */
	check_failing_pause(PHASE_PREPARE_SNAPSHOT, VSS_E_WRITER_NOT_RESPONDING,
			    "pause PREPARE_SNAPSHOT, wait for workers, pause ABORT");
	/* Transactions that cannot be frozen stop the set before the flush. */
	check_failing_pause(PHASE_FREEZE, VSS_E_TRANSACTION_FREEZE_TIMEOUT,
			    "pause PREPARE_SNAPSHOT, " PREPARE_ABA ", pause FREEZE, " ABORT_3 ", pause ABORT");
	/* Held too long: the snapshots made are undone. */
	check_failing_pause(PHASE_THAW, VSS_E_TRANSACTION_THAW_TIMEOUT,
			    "pause PREPARE_SNAPSHOT, " PREPARE_ABA ", pause FREEZE, " FLUSH_3 ", " COMMIT_3
			    ", pause THAW, " ABORT_3 ", pause ABORT");
	/* The set is made by then: PostSnapshot cannot unmake it. */
	check_failing_pause(PHASE_POST_SNAPSHOT, VSS_E_WRITER_NOT_RESPONDING,
			    "pause PREPARE_SNAPSHOT, " PREPARE_ABA ", pause FREEZE, " FLUSH_3 ", " COMMIT_3
			    ", pause THAW, " FINISH_3 ", pause POST_SNAPSHOT");
}

/* A job freed before it ran frees its members. */
static void test_free_unstarted(void)
{
	JobLimits l = limits(LONG_LIMIT, LONG_LIMIT, NULL);

	tp_reset();
	job_free(new_job(3, ABA, &l));
	assert_log("");
}

int main(void)
{
	RUN_TEST(test_protocol_order);
	RUN_TEST(test_quiet_phases_are_not_paused);
	RUN_TEST(test_protocol_on_thread_without_writers);
	RUN_TEST(test_bare_provider);
	RUN_TEST(test_commit_group);
	RUN_TEST(test_failure_at_every_step);
	RUN_TEST(test_failing_abort);
	RUN_TEST(test_flush_deadline);
	RUN_TEST(test_hold_deadline);
	RUN_TEST(test_step_started_after_deadline);
	RUN_TEST(test_prepare_has_no_limit);
	RUN_TEST(test_cancel_in_pauses);
	RUN_TEST(test_cancel_during_steps);
	RUN_TEST(test_failing_pauses);
	RUN_TEST(test_free_unstarted);
	tp_reset();
	TEST_SUMMARY();
	return 0;
}
