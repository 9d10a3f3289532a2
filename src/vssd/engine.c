/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/log.h"
#include "vssd/crew.h"
#include "vssd/engine.h"

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

int job_new(ProviderMember **members, size_t n, usec_t flush_timeout, usec_t hold_timeout,
            const FaultTable *faults, Job **ret)
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
	j->flush_timeout = flush_timeout;
	j->hold_timeout = hold_timeout;
	j->faults = faults;
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

typedef struct Step {
	Job *job;
	ProviderStep step;
} Step;

static int run_step(void *item, void *userdata)
{
	const Step *s = userdata;

	return provider_invoke(s->job->faults, s->step, item);
}

typedef struct Run {
	Job *job;
	Crew *crew;
	void **items;
	int *results;
	bool *done;
	bool *begun;    /* saw begin_prepare: abort must reach it */
	bool *held;     /* holds writes now */
	bool *holders;  /* can hold writes */
	size_t n_holders;
} Run;

static vss_hr fail(Job *j, vss_hr hr, const char *fmt, ...) _printf_(3, 4);
static vss_hr fail(Job *j, vss_hr hr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->message, sizeof(j->message), fmt, ap);
	va_end(ap);
	return hr;
}

/* The first failure among the members that ran a step, mapped for the
 * requestor; S_OK when all succeeded. */
static vss_hr step_failure(Run *run, ProviderStep step, const bool *selected)
{
	Job *j = run->job;
	char buf[128];

	for (size_t i = 0; i < j->n_members; i++) {
		if ((selected && !selected[i]) || !run->done[i] || run->results[i] >= 0)
			continue;
		return fail(j, provider_result_to_hr(run->results[i]), "%s provider: %s of %s failed: %s",
			    j->members[i].ops->name, provider_step_name(step), j->members[i].volume,
			    provider_result_string(run->results[i], buf, sizeof(buf)));
	}
	return S_OK;
}

static void release_held(Run *run)
{
	Job *j = run->job;

	for (size_t i = 0; i < j->n_members; i++) {
		int r;

		if (!run->held[i])
			continue;
		r = provider_invoke(j->faults, STEP_RELEASE, &j->members[i]);
		if (r < 0)
			log_crit("%s: cannot release held writes: %s", j->members[i].volume,
				 provider_result_string(r, (char[128]){ 0 }, 128));
		else
			run->held[i] = false;
	}
}

static void abort_all(Run *run)
{
	Job *j = run->job;

	/* Steps that outlived a deadline must end before their member is
	 * aborted; a held member is released first so that nothing stays held
	 * while we wait. */
	release_held(run);
	crew_wait_idle(run->crew);
	release_held(run);
	for (size_t i = 0; i < j->n_members; i++) {
		int r;

		if (!run->begun[i])
			continue;
		r = provider_invoke(j->faults, STEP_ABORT, &j->members[i]);
		if (r < 0)
			log_error("%s: abort failed: %s", j->members[i].volume,
				  provider_result_string(r, (char[128]){ 0 }, 128));
	}
}

static vss_hr prepare(Run *run)
{
	Job *j = run->job;
	char buf[128];

	for (size_t i = 0; i < j->n_members; i++) {
		int r;

		run->begun[i] = true;
		r = provider_invoke(j->faults, STEP_BEGIN_PREPARE, &j->members[i]);
		if (r < 0)
			return fail(j, provider_result_to_hr(r), "%s provider: begin_prepare of %s failed: %s",
				    j->members[i].ops->name, j->members[i].volume,
				    provider_result_string(r, buf, sizeof(buf)));
	}

	/* end_prepare once per provider, with all of its members. */
	for (size_t i = 0; i < j->n_members; i++) {
		ProviderMember *group[j->n_members];
		size_t n = 0;
		bool first = true;
		int r;

		for (size_t k = 0; k < i; k++)
			if (j->members[k].ops == j->members[i].ops)
				first = false;
		if (!first)
			continue;
		for (size_t k = i; k < j->n_members; k++)
			if (j->members[k].ops == j->members[i].ops)
				group[n++] = &j->members[k];
		r = provider_invoke_end_prepare(j->faults, group, n);
		if (r < 0)
			return fail(j, provider_result_to_hr(r), "%s provider: end_prepare failed: %s",
				    j->members[i].ops->name, provider_result_string(r, buf, sizeof(buf)));
	}
	return S_OK;
}

static size_t crew_step(Run *run, ProviderStep step, const bool *selected, usec_t deadline)
{
	Step s = { .job = run->job, .step = step };

	return crew_run(run->crew, run_step, run->items, &s, selected, run->results, run->done, deadline);
}

static vss_hr cut(Run *run)
{
	Job *j = run->job;
	usec_t hold_start, deadline, t;
	vss_hr hr;

	/* Flush: every member writes out its dirty data, in parallel. */
	t = now_usec(CLOCK_MONOTONIC);
	if (crew_step(run, STEP_PRE_COMMIT, NULL, t + j->flush_timeout) > 0)
		return fail(j, VSS_E_FLUSH_WRITES_TIMEOUT, "flushing writes took longer than %llu ms",
			    (unsigned long long)(j->flush_timeout / USEC_PER_MSEC));
	hr = step_failure(run, STEP_PRE_COMMIT, NULL);
	if (VSS_FAILED(hr))
		return hr;
	j->flush_us = now_usec(CLOCK_MONOTONIC) - t;

	if (!enter_commit(j))
		return fail(j, VSS_S_ASYNC_CANCELLED, "cancelled by the requestor");

	/* Hold writes on every member that can, all at once. Nothing below
	 * may write to a held filesystem, logging included. */
	log_hold();
	hold_start = now_usec(CLOCK_MONOTONIC);
	if (run->n_holders > 0) {
		size_t late = crew_step(run, STEP_HOLD, run->holders, hold_start + j->flush_timeout);

		for (size_t i = 0; i < j->n_members; i++)
			run->held[i] = run->holders[i] && run->done[i] && run->results[i] >= 0;
		if (late > 0)
			return fail(j, VSS_E_FLUSH_WRITES_TIMEOUT, "holding writes took longer than %llu ms",
				    (unsigned long long)(j->flush_timeout / USEC_PER_MSEC));
		hr = step_failure(run, STEP_HOLD, run->holders);
		if (VSS_FAILED(hr))
			return hr;
	}

	/* The point in time. */
	j->created_us = (int64_t)now_usec(CLOCK_REALTIME);
	deadline = hold_start + j->hold_timeout;
	if (crew_step(run, STEP_COMMIT, NULL, deadline) > 0)
		return fail(j, VSS_E_HOLD_WRITES_TIMEOUT, "the commit took longer than the hold limit of %llu ms",
			    (unsigned long long)(j->hold_timeout / USEC_PER_MSEC));
	hr = step_failure(run, STEP_COMMIT, NULL);
	if (VSS_FAILED(hr))
		return hr;

	if (run->n_holders > 0) {
		crew_step(run, STEP_RELEASE, run->held, USEC_INFINITY);
		for (size_t i = 0; i < j->n_members; i++)
			if (run->held[i] && run->done[i] && run->results[i] >= 0)
				run->held[i] = false;
		hr = step_failure(run, STEP_RELEASE, run->holders);
		if (VSS_FAILED(hr))
			return hr;
	}
	j->hold_window_us = now_usec(CLOCK_MONOTONIC) - hold_start;
	log_release();

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
			int r = provider_invoke(j->faults, steps[s], &j->members[i]);

			if (r < 0)
				return fail(j, provider_result_to_hr(r), "%s provider: %s of %s failed: %s",
					    j->members[i].ops->name, provider_step_name(steps[s]),
					    j->members[i].volume, provider_result_string(r, buf, sizeof(buf)));
		}
	return S_OK;
}

vss_hr job_run(Job *j)
{
	size_t n = j->n_members;
	void *items[n ?: 1];
	int results[n ?: 1];
	bool done[n ?: 1], begun[n ?: 1], held[n ?: 1], holders[n ?: 1];
	Run run = {
		.job = j, .items = items, .results = results, .done = done,
		.begun = begun, .held = held, .holders = holders,
	};
	usec_t t0 = now_usec(CLOCK_MONOTONIC);
	vss_hr hr;
	int r;

	for (size_t i = 0; i < n; i++) {
		items[i] = &j->members[i];
		begun[i] = held[i] = false;
		holders[i] = j->members[i].ops->flags & PROVIDER_CAN_HOLD_WRITES;
		run.n_holders += holders[i];
	}
	r = crew_new(n, &run.crew);
	if (r < 0) {
		j->result = fail(j, VSS_E_UNEXPECTED, "cannot start worker threads: %s", strerror(-r));
		return j->result;
	}

	/* Each phase returns S_OK to go on; anything else, a failure or
	 * VSS_S_ASYNC_CANCELLED, stops the set. */
	hr = prepare(&run);
	j->prepare_us = now_usec(CLOCK_MONOTONIC) - t0;
	if (hr == S_OK && cancelled(j))
		hr = fail(j, VSS_S_ASYNC_CANCELLED, "cancelled by the requestor");
	if (hr == S_OK)
		hr = cut(&run);
	/* After a failed cut the log may still be held; what follows may log. */
	log_release();
	if (hr == S_OK)
		hr = finish(&run);

	if (hr != S_OK) {
		abort_all(&run);
		log_release();
		j->consistency = CONSISTENCY_NONE;
	}
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
