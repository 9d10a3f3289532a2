/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/log.h"
#include "vssd/creation/crew.h"
#include "vssd/creation/engine.h"
#include "vssd/creation/freeze.h"

const char *consistency_to_string(Consistency c)
{
	switch (c) {
	case CONSISTENCY_CRASH_PER_VOLUME:
		return "crash-consistent per volume";
	case CONSISTENCY_CRASH_SET:
		return "crash-consistent across the set";
	default:
		return "none";
	}
}

int job_new(ProviderMember **members, size_t n, const JobLimits *limits, Job **ret)
{
	Job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->done_fd < 0) {
		free(j);
		return -errno;
	}
	pthread_mutex_init(&j->lock, NULL);
	j->members = *members;
	*members = NULL;
	j->n_members = n;
	for (size_t i = 0; i < n; i++)
		j->members[i].set_size = (unsigned)n;
	j->limits = *limits;
	j->result = VSS_S_ASYNC_PENDING;
	*ret = j;
	return 0;
}

Job *job_free(Job *j)
{
	if (!j)
		return NULL;
	job_join(j);
	for (size_t i = 0; i < j->n_members; i++)
		provider_member_free_fields(&j->members[i]);
	free(j->members);
	close(j->done_fd);
	pthread_mutex_destroy(&j->lock);
	free(j);
	return NULL;
}

bool job_cancel(Job *j)
{
	bool honoured;

	pthread_mutex_lock(&j->lock);
	j->cancel_requested = true;
	honoured = !j->committing;
	pthread_mutex_unlock(&j->lock);
	return honoured;
}

static bool cancelled(Job *j)
{
	bool c;

	pthread_mutex_lock(&j->lock);
	c = j->cancel_requested;
	pthread_mutex_unlock(&j->lock);
	return c;
}

/* The point of no return: from here a cancel request is refused. */
static bool enter_commit(Job *j)
{
	bool ok;

	pthread_mutex_lock(&j->lock);
	ok = !j->cancel_requested;
	if (ok)
		j->committing = true;
	pthread_mutex_unlock(&j->lock);
	return ok;
}

/* How long a failing thaw is tried again before the guard is asked to do
 * it and the set ends with VSS_E_REBOOT_REQUIRED. */
#define THAW_RETRY_USEC (1 * USEC_PER_SEC)
#define THAW_RETRY_INTERVAL_USEC (100 * USEC_PER_MSEC)
/* The guard thaws this long after the hold limit, if vssd has not. */
#define GUARD_GRACE_USEC (250 * USEC_PER_MSEC)

typedef struct Run Run;

typedef struct Slot {
	Run *run;
	size_t i;
} Slot;

struct Run {
	Job *job;
	Crew *crew;
	Slot *slots;
	void **items;
	int *results;
	bool *done;
	bool *begun;    /* saw begin_prepare: abort must reach it */
	bool *holders;  /* can hold writes */
	bool *first_only; /* selects worker 0 */
	int *commits;     /* commit_all's results */
	atomic_bool commit_given_up; /* past the hold limit: commit no more */
	bool writers_told; /* PHASE_PREPARE_SNAPSHOT ran: PHASE_ABORT is owed */
	size_t n_holders;
	bool commit_together; /* every provider lets commits run at once,
	                       * member by member */
	FreezeSet *freeze; /* says which members are held */
};

static vss_hr fail(Job *j, vss_hr hr, const char *fmt, ...) _printf_(3, 4);
static vss_hr fail(Job *j, vss_hr hr, const char *fmt, ...)
{
	va_list ap;

	/* The first reason wins: later ones are consequences. */
	if (j->message[0])
		return hr;
	va_start(ap, fmt);
	vsnprintf(j->message, sizeof(j->message), fmt, ap);
	va_end(ap);
	return hr;
}

/* One step of one member, on its worker: provider steps go to the provider,
 * holding and releasing writes are the engine's own. */
static int run_step(void *item, void *userdata)
{
	const Slot *slot = item;
	Job *j = slot->run->job;
	ProviderStep step = (ProviderStep)(uintptr_t)userdata;
	ProviderMember *m = &j->members[slot->i];
	int r;

	switch (step) {
	case STEP_HOLD:
		r = fault_inject(j->limits.faults, step, m->index);
		return r ?: freeze_one(slot->run->freeze, slot->i);
	case STEP_RELEASE:
		/* Never thaw what vssd did not freeze. */
		if (!freeze_held(slot->run->freeze, slot->i))
			return 0;
		r = fault_inject(j->limits.faults, step, m->index);
		return r ?: thaw_one(slot->run->freeze, slot->i);
	default:
		return provider_invoke(j->limits.faults, step, m);
	}
}

/* The members of member i's provider, from i on, in group; 0 when an
 * earlier member has the same provider (its group has i already). */
static size_t provider_group(Job *j, size_t i, ProviderMember **group)
{
	size_t n = 0;

	for (size_t k = 0; k < i; k++)
		if (j->members[k].ops == j->members[i].ops)
			return 0;
	for (size_t k = i; k < j->n_members; k++)
		if (j->members[k].ops == j->members[i].ops)
			group[n++] = &j->members[k];
	return n;
}

/* Every member's commit, one after another, or for a provider that commits
 * its members as a group, the group's at its first member's turn; stopping
 * at the first failure. The results go to run->commits. */
static int commit_all(void *item, void *userdata)
{
	Run *run = userdata;
	Job *j = run->job;

	(void)item;
	for (size_t i = 0; i < j->n_members; i++)
		run->commits[i] = 0;
	for (size_t i = 0; i < j->n_members; i++) {
		ProviderMember *group[j->n_members];
		size_t n;
		int r;

		/* The set fails anyway: a snapshot made now, unheld, would only
		 * make the abort longer. */
		if (atomic_load(&run->commit_given_up)) {
			run->commits[i] = VSS_E_HOLD_WRITES_TIMEOUT;
			break;
		}
		if (!j->members[i].ops->commit_group) {
			run->commits[i] = provider_invoke(j->limits.faults, STEP_COMMIT, &j->members[i]);
			if (run->commits[i] < 0)
				break;
			continue;
		}
		n = provider_group(j, i, group);
		if (n == 0)
			continue;
		r = provider_invoke_commit_group(j->limits.faults, group, n);
		/* The first member carries the group's failure. */
		run->commits[i] = r;
		if (r < 0)
			break;
	}
	return 0;
}

static size_t crew_step(Run *run, ProviderStep step, const bool *selected, usec_t deadline)
{
	/* The step travels by value: a worker may start it after crew_run()
	 * gave up at the deadline and this frame is gone. */
	return crew_run(run->crew, run_step, run->items, (void *)(uintptr_t)step, selected, run->results, run->done,
			deadline);
}

static const char *step_who(const ProviderMember *m, ProviderStep step)
{
	return step == STEP_HOLD || step == STEP_RELEASE ? "vssd" : m->ops->name;
}

/* The first failure among the members that ran a step, mapped for the
 * requestor; S_OK when all succeeded. */
static vss_hr step_failure(Run *run, ProviderStep step, const bool *selected)
{
	Job *j = run->job;
	char buf[128];

	for (size_t i = 0; i < j->n_members; i++) {
		const ProviderMember *m = &j->members[i];
		int r = run->results[i];

		if ((selected && !selected[i]) || !run->done[i] || r >= 0)
			continue;
		/* A filesystem someone else keeps frozen is a known refusal. */
		if (step == STEP_HOLD && r == -EBUSY)
			return fail(j, VSS_E_PROVIDER_VETO, "%s is already frozen by someone else", m->hold_path);
		return fail(j, provider_result_to_hr(r), "%s: %s of %s failed: %s%s%s", step_who(m, step),
			    provider_step_name(step), m->volume, provider_result_string(r, buf, sizeof(buf)),
			    m->reason ? ": " : "", m->reason ?: "");
	}
	return S_OK;
}

/*
 * Release every held member, in parallel. A thaw that fails is an emergency:
 * it is tried again for a while, and if it still fails the guard is asked to
 * thaw (it gets the same ioctl, from a process that will keep at it), and the
 * set fails with VSS_E_REBOOT_REQUIRED. Waits for nothing else, so it can run
 * while a commit outlives its deadline.
 */
static vss_hr release_all(Run *run)
{
	Job *j = run->job;
	usec_t give_up = now_usec(CLOCK_MONOTONIC) + THAW_RETRY_USEC;
	bool any;

	for (;;) {
		/* A worker still busy with a late step cannot thaw: the
		 * engine's thread does it, one member after another. */
		any = false;
		for (size_t i = 0; i < j->n_members; i++) {
			int r;

			if (!freeze_held(run->freeze, i))
				continue;
			r = fault_inject(j->limits.faults, STEP_RELEASE, j->members[i].index);
			r = r ?: thaw_one(run->freeze, i);
			if (r < 0) {
				any = true;
				log_crit("cannot thaw %s: %s; trying again", j->members[i].hold_path,
					 provider_result_string(r, (char[128]){ 0 }, 128));
			}
		}
		if (!any)
			return S_OK;
		if (now_usec(CLOCK_MONOTONIC) >= give_up)
			break;
		sleep_usec(THAW_RETRY_INTERVAL_USEC);
	}

	log_release();
	if (freeze_guard_thaw(run->freeze) == 0)
		log_crit("vssd could not thaw a member of the set; its guard did");
	else
		log_crit("a member of the set may still be frozen; vssd will thaw it when it starts again");
	return fail(j, VSS_E_REBOOT_REQUIRED, "a held filesystem could not be thawed");
}

static vss_hr abort_all(Run *run)
{
	Job *j = run->job;
	vss_hr hr;

	/* Thaw first, even while a late step still runs, so that nothing stays
	 * held while we wait for it; then wait, then abort every member. */
	hr = release_all(run);
	crew_wait_idle(run->crew);
	if (hr == S_OK)
		hr = release_all(run);
	log_release();
	run->freeze = freeze_set_free(run->freeze);
	for (size_t i = 0; i < j->n_members; i++) {
		int r;

		if (!run->begun[i])
			continue;
		r = provider_invoke(j->limits.faults, STEP_ABORT, &j->members[i]);
		if (r < 0)
			log_error("%s: abort failed: %s", j->members[i].volume,
				  provider_result_string(r, (char[128]){ 0 }, 128));
		j->members[i].state = VSS_SS_ABORTED;
	}
	return hr;
}

static vss_hr pause_for(Run *run, JobPhase phase)
{
	Job *j = run->job;
	vss_hr hr;

	if (!j->limits.pause)
		return S_OK;
	/* Skipped or not, an abort after it is owed to the writers. */
	if (phase == PHASE_PREPARE_SNAPSHOT)
		run->writers_told = true;
	if (j->limits.no_pause & (1u << phase))
		return S_OK;
	hr = j->limits.pause(j, phase, j->limits.pause_userdata);
	return hr == S_OK ? S_OK : fail(j, hr, "%s", vss_hr_message(hr));
}

static vss_hr admit(Run *run)
{
	Job *j = run->job;
	char msg[sizeof(j->message)] = "";
	vss_hr hr;

	if (!j->limits.admit)
		return S_OK;
	hr = j->limits.admit(j->members, j->n_members, j->limits.admit_userdata, msg, sizeof(msg));
	return hr == S_OK ? S_OK : fail(j, hr, "%s", msg);
}

static vss_hr prepare(Run *run)
{
	Job *j = run->job;
	char buf[128];

	for (size_t i = 0; i < j->n_members; i++) {
		const ProviderMember *m = &j->members[i];
		int r;

		run->begun[i] = true;
		r = provider_invoke(j->limits.faults, STEP_BEGIN_PREPARE, &j->members[i]);
		if (r < 0)
			return fail(j, provider_result_to_hr(r), "%s provider: begin_prepare of %s failed: %s%s%s",
				    m->ops->name, m->volume, provider_result_string(r, buf, sizeof(buf)),
				    m->reason ? ": " : "", m->reason ?: "");
	}

	/* end_prepare once per provider, with all of its members. */
	for (size_t i = 0; i < j->n_members; i++) {
		ProviderMember *group[j->n_members];
		size_t n = provider_group(j, i, group);
		int r;

		if (n == 0)
			continue;
		r = provider_invoke_end_prepare(j->limits.faults, group, n);
		if (r < 0) {
			/* The member the provider named a reason for, if any. */
			const ProviderMember *why = NULL;

			for (size_t k = 0; k < n && !why; k++)
				if (group[k]->reason)
					why = group[k];
			if (why)
				return fail(j, provider_result_to_hr(r), "%s provider: end_prepare failed: %s: %s: %s",
					    j->members[i].ops->name, provider_result_string(r, buf, sizeof(buf)),
					    why->volume, why->reason);
			return fail(j, provider_result_to_hr(r), "%s provider: end_prepare failed: %s",
				    j->members[i].ops->name, provider_result_string(r, buf, sizeof(buf)));
		}
	}
	return S_OK;
}

/* Freeze every member that can be held, all at once, under the guard. */
/* The marker and the guard, made before the flush so that neither the fsync
 * nor the fork sits right before the freezes. The guard's deadline is past
 * every deadline of the engine: the flush's, the hold's, the commit's. */
static vss_hr prepare_hold(Run *run)
{
	Job *j = run->job;
	char *paths[j->n_members ?: 1];
	int fds[j->n_members ?: 1];
	usec_t deadline;
	int r;

	if (run->n_holders == 0)
		return S_OK;
	/* What AddToSnapshotSet found, as it found it: nothing is looked up
	 * by name again, so a path changed since cannot redirect the freeze. */
	for (size_t i = 0; i < j->n_members; i++) {
		fds[i] = run->holders[i] ? j->members[i].hold_fd : -1;
		paths[i] = run->holders[i] ? j->members[i].hold_path : NULL;
	}
	r = freeze_set_new(fds, paths, j->n_members, j->limits.freeze_dir_fd, &run->freeze);
	if (r < 0)
		return fail(j, VSS_E_UNEXPECTED, "cannot prepare to hold writes: %s", strerror(-r));
	deadline = now_usec(CLOCK_MONOTONIC) + 2 * j->limits.flush_timeout + j->limits.hold_timeout +
		   GUARD_GRACE_USEC;
	r = freeze_guard_start(run->freeze, deadline);
	if (r < 0)
		return fail(j, VSS_E_UNEXPECTED, "cannot start the freeze guard: %s", strerror(-r));
	return S_OK;
}

static vss_hr hold(Run *run, usec_t *ret_hold_start)
{
	Job *j = run->job;
	usec_t start;
	size_t late;

	*ret_hold_start = now_usec(CLOCK_MONOTONIC);
	if (run->n_holders == 0)
		return S_OK;

	/* From here until every member is released nothing may write to a
	 * held filesystem, logging included. */
	log_hold();
	start = *ret_hold_start = now_usec(CLOCK_MONOTONIC);
	late = crew_step(run, STEP_HOLD, run->holders, start + j->limits.flush_timeout);
	if (late > 0)
		return fail(j, VSS_E_FLUSH_WRITES_TIMEOUT, "holding writes took longer than %llu ms",
			    (unsigned long long)(j->limits.flush_timeout / USEC_PER_MSEC));
	return step_failure(run, STEP_HOLD, run->holders);
}

static vss_hr cut(Run *run)
{
	Job *j = run->job;
	usec_t hold_start, t;
	size_t late;
	vss_hr hr;
	int r;

	hr = prepare_hold(run);
	if (hr != S_OK)
		return hr;

	/* Flush: every member writes out its dirty data, in parallel. */
	t = now_usec(CLOCK_MONOTONIC);
	if (crew_step(run, STEP_PRE_COMMIT, NULL, t + j->limits.flush_timeout) > 0)
		return fail(j, VSS_E_FLUSH_WRITES_TIMEOUT, "flushing writes took longer than %llu ms",
			    (unsigned long long)(j->limits.flush_timeout / USEC_PER_MSEC));
	hr = step_failure(run, STEP_PRE_COMMIT, NULL);
	if (hr != S_OK)
		return hr;
	j->flush_us = now_usec(CLOCK_MONOTONIC) - t;
	/* The flush wrote to the hosts: the last look before the snapshots. */
	hr = admit(run);
	if (hr != S_OK)
		return hr;

	/* Let the flush's tail (writeback finishing below the filesystems,
	 * journal threads) end before freezing, rather than inside the hold
	 * where writers wait for it: measured here, it shortens the hold of a
	 * single volume by about a quarter (docs/BENCHMARKS.md). */
	if (run->n_holders > 0 && j->limits.hold_settle > 0)
		sleep_usec(j->limits.hold_settle);
	if (!enter_commit(j))
		return fail(j, VSS_S_ASYNC_CANCELLED, "cancelled by the requestor");

	hr = hold(run, &hold_start);
	if (hr != S_OK)
		return hr;

	/* The point in time: every member that can be is held now. Unless
	 * every provider of the set lets its commits run at once, the
	 * snapshots are made one after another, on one worker: whole clones
	 * or snapshots made at once contend in the host filesystem and take
	 * longer in all. */
	j->created_us = (int64_t)now_usec(CLOCK_REALTIME);
	if (run->commit_together) {
		late = crew_step(run, STEP_COMMIT, NULL, hold_start + j->limits.hold_timeout);
	} else {
		late = crew_run(run->crew, commit_all, run->items, run, run->first_only, run->results, run->done,
				hold_start + j->limits.hold_timeout);
		for (size_t i = 0; late == 0 && i < j->n_members; i++) {
			run->results[i] = run->commits[i];
			run->done[i] = true;
		}
	}
	if (late > 0) {
		atomic_store(&run->commit_given_up, true);
		return fail(j, VSS_E_HOLD_WRITES_TIMEOUT, "the commit took longer than the hold limit of %llu ms",
			    (unsigned long long)(j->limits.hold_timeout / USEC_PER_MSEC));
	}
	hr = step_failure(run, STEP_COMMIT, NULL);
	if (hr != S_OK)
		return hr;

	if (run->n_holders > 0) {
		crew_step(run, STEP_RELEASE, run->holders, USEC_INFINITY);
		/* Whatever did not thaw at once gets the emergency treatment. */
		hr = release_all(run);
		j->hold_window_us = now_usec(CLOCK_MONOTONIC) - hold_start;
		log_release();
		if (hr != S_OK)
			return hr;
		r = freeze_guard_stop(run->freeze);
		if (r != 0)
			/* The guard thawed first: the commit may have run
			 * unheld at its end. */
			return fail(j, VSS_E_HOLD_WRITES_TIMEOUT, "the freeze guard thawed before vssd released");
		run->freeze = freeze_set_free(run->freeze);
	} else {
		j->hold_window_us = now_usec(CLOCK_MONOTONIC) - hold_start;
	}

	/* Writes flow again: now the applications. */
	hr = pause_for(run, PHASE_THAW);
	if (hr != S_OK)
		return hr;

	j->consistency = run->n_holders == j->n_members ? CONSISTENCY_CRASH_SET : CONSISTENCY_CRASH_PER_VOLUME;
	return S_OK;
}

static vss_hr finish(Run *run)
{
	static const ProviderStep steps[] = { STEP_POST_COMMIT, STEP_PRE_FINAL_COMMIT, STEP_POST_FINAL_COMMIT };
	Job *j = run->job;
	char buf[128];

	for (size_t s = 0; s < ELEMENTSOF(steps); s++)
		for (size_t i = 0; i < j->n_members; i++) {
			int r = provider_invoke(j->limits.faults, steps[s], &j->members[i]);

			if (r < 0)
				return fail(j, provider_result_to_hr(r), "%s provider: %s of %s failed: %s",
					    j->members[i].ops->name, provider_step_name(steps[s]),
					    j->members[i].volume, provider_result_string(r, buf, sizeof(buf)));
		}
	for (size_t i = 0; i < j->n_members; i++)
		j->members[i].state = VSS_SS_CREATED;
	return S_OK;
}

vss_hr job_run(Job *j)
{
	size_t n = j->n_members;
	Slot slots[n ?: 1];
	void *items[n ?: 1];
	int results[n ?: 1];
	int commits[n ?: 1];
	bool done[n ?: 1], begun[n ?: 1], holders[n ?: 1], first_only[n ?: 1];
	Run run = {
		.job = j, .slots = slots, .items = items, .results = results, .done = done,
		.begun = begun, .holders = holders, .first_only = first_only, .commits = commits,
	};
	usec_t t0 = now_usec(CLOCK_MONOTONIC);
	vss_hr hr, abort_hr;
	int r;

	for (size_t i = 0; i < n; i++) {
		slots[i] = (Slot){ .run = &run, .i = i };
		items[i] = &slots[i];
		begun[i] = false;
		first_only[i] = i == 0;
		holders[i] = j->members[i].hold_fd >= 0 && (j->members[i].ops->flags & PROVIDER_HOLDS_WRITES);
		run.n_holders += holders[i];
	}
	run.commit_together = n > 1;
	for (size_t i = 0; i < n; i++)
		run.commit_together = run.commit_together && (j->members[i].ops->flags & PROVIDER_COMMITS_CONCURRENTLY) &&
				      !j->members[i].ops->commit_group;
	r = crew_new(n, &run.crew);
	if (r < 0) {
		j->result = fail(j, VSS_E_UNEXPECTED, "cannot start worker threads: %s", strerror(-r));
		return j->result;
	}

	/* Each phase returns S_OK to go on; anything else, a failure or
	 * VSS_S_ASYNC_CANCELLED, stops the set. Writers prepare before the
	 * providers, and freeze before the flush. */
	hr = pause_for(&run, PHASE_PREPARE_SNAPSHOT);
	if (hr == S_OK)
		hr = prepare(&run);
	/* Before writers freeze for nothing. */
	if (hr == S_OK)
		hr = admit(&run);
	j->prepare_us = now_usec(CLOCK_MONOTONIC) - t0;
	if (hr == S_OK && cancelled(j))
		hr = fail(j, VSS_S_ASYNC_CANCELLED, "cancelled by the requestor");
	if (hr == S_OK)
		hr = pause_for(&run, PHASE_FREEZE);
	if (hr == S_OK)
		hr = cut(&run);
	if (hr == S_OK)
		hr = finish(&run);
	if (hr == S_OK)
		(void)pause_for(&run, PHASE_POST_SNAPSHOT);

	if (hr != S_OK) {
		abort_hr = abort_all(&run);
		/* A filesystem that could not be thawed outranks the reason the
		 * set failed. */
		if (abort_hr != S_OK)
			hr = abort_hr;
		/* Writers hear of it after every member is aborted. */
		if (run.writers_told)
			(void)pause_for(&run, PHASE_ABORT);
		j->consistency = CONSISTENCY_NONE;
	}
	log_release();
	crew_free(run.crew);
	j->total_us = now_usec(CLOCK_MONOTONIC) - t0;
	j->result = hr == S_OK ? VSS_S_ASYNC_FINISHED : hr;
	return j->result;
}

static void *job_thread(void *arg)
{
	Job *j = arg;
	uint64_t one = 1;

	job_run(j);
	if (write(j->done_fd, &one, sizeof(one)) < 0)
		log_error_errno(errno, "cannot signal the end of a job: %m");
	return NULL;
}

int job_start(Job *j)
{
	int r = pthread_create(&j->thread, NULL, job_thread, j);

	if (r != 0)
		return -r;
	j->started = true;
	return 0;
}

void job_join(Job *j)
{
	if (j->started) {
		pthread_join(j->thread, NULL);
		j->started = false;
	}
}
