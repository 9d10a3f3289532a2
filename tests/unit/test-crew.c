/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/util.h"
#include "vssd/creation/crew.h"
#include "tests.h"

/*
 * The engine's worker crew: every selected worker runs its step at once, a
 * deadline leaves late ones running, and nothing gives a worker another step,
 * or frees the crew, before its late step ended. A late step blocks until the
 * test releases it, so no outcome depends on timing.
 */

#define N 4

typedef struct Item {
	int result;
	bool block;             /* until release() */
	bool running;
	unsigned calls, finished;
} Item;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool released;
static unsigned inside, rendezvous, overlaps;

static void reset(Item *items, void **ptrs)
{
	pthread_mutex_lock(&lock);
	released = false;
	inside = rendezvous = overlaps = 0;
	pthread_mutex_unlock(&lock);
	for (size_t i = 0; i < N; i++) {
		items[i] = (Item){ .result = (int)i * 10 };
		ptrs[i] = &items[i];
	}
}

static void wait_locked(bool (*pred)(void))
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	while (!pred())
		if (pthread_cond_timedwait(&cond, &lock, &ts) != 0)
			TEST_FAIL("a step waited 20 s: the crew does not run its workers at once");
}

static bool is_released(void)
{
	return released;
}

static bool all_inside(void)
{
	return inside >= rendezvous;
}

/* The step: userdata is added to the item's result, so each run tells. */
static int work(void *item, void *userdata)
{
	Item *it = item;
	int r;

	pthread_mutex_lock(&lock);
	/* A worker never runs two steps at once. */
	if (it->running)
		overlaps++;
	it->running = true;
	it->calls++;
	inside++;
	pthread_cond_broadcast(&cond);
	if (it->block)
		wait_locked(is_released);
	if (rendezvous)
		wait_locked(all_inside);
	it->running = false;
	it->finished++;
	r = it->result + (int)(intptr_t)userdata;
	pthread_mutex_unlock(&lock);
	return r;
}

static void release(void)
{
	pthread_mutex_lock(&lock);
	released = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static unsigned get(const unsigned *v)
{
	unsigned x;

	pthread_mutex_lock(&lock);
	x = *v;
	pthread_mutex_unlock(&lock);
	return x;
}

static usec_t soon(void)
{
	return now_usec(CLOCK_MONOTONIC) + 1 * USEC_PER_MSEC;
}

/*
 * Release the blocked step once the calling thread sleeps (in the call that
 * must wait for it). Should the release come early, the call would not need
 * to wait, and the test would still pass: what it checks holds either way.
 */
static pid_t waiter;

static char thread_state(pid_t tid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void *release_once_waiting(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < 20000 && thread_state(waiter) != 'S'; i++)
		sleep_usec(1 * USEC_PER_MSEC);
	release();
	return NULL;
}

static pthread_t start_releaser(void)
{
	pthread_t t;

	waiter = gettid();
	ASSERT_EQ_INT(0, pthread_create(&t, NULL, release_once_waiting, NULL));
	return t;
}

static void test_all_at_once(void)
{
	Item items[N];
	void *ptrs[N];
	int results[N];
	bool done[N];
	Crew *c = NULL;

	reset(items, ptrs);
	ASSERT_OK(crew_new(N, &c));
	/* Each waits until all are inside: run one after another, they would not
	 * return. */
	rendezvous = N;
	ASSERT_EQ_UINT(0, crew_run(c, work, ptrs, (void *)(intptr_t)1, NULL, results, done, USEC_INFINITY));
	for (size_t i = 0; i < N; i++) {
		ASSERT_TRUE(done[i]);
		ASSERT_EQ_INT((int)i * 10 + 1, results[i]);
		ASSERT_EQ_UINT(1, items[i].calls);
	}
	rendezvous = 0;
	crew_free(c);
}

static void test_selected(void)
{
	const bool selected[N] = { true, false, true, false };
	Item items[N];
	void *ptrs[N];
	int results[N] = { -1, -1, -1, -1 };
	bool done[N];
	Crew *c = NULL;

	reset(items, ptrs);
	ASSERT_OK(crew_new(N, &c));
	ASSERT_EQ_UINT(0, crew_run(c, work, ptrs, (void *)(intptr_t)2, selected, results, done, USEC_INFINITY));
	for (size_t i = 0; i < N; i++) {
		ASSERT_EQ_INT(selected[i], done[i]);
		ASSERT_EQ_UINT(selected[i], items[i].calls);
		ASSERT_EQ_INT(selected[i] ? (int)i * 10 + 2 : -1, results[i]);
	}
	crew_free(c);
}

/* Many short runs: the hand-over between runs loses no step and no result. */
static void test_many_runs(void)
{
	Item items[N];
	void *ptrs[N];
	int results[N];
	bool done[N];
	Crew *c = NULL;

	reset(items, ptrs);
	ASSERT_OK(crew_new(N, &c));
	for (int k = 0; k < 500; k++) {
		ASSERT_EQ_UINT(0, crew_run(c, work, ptrs, (void *)(intptr_t)k, NULL, results, done, USEC_INFINITY));
		for (size_t i = 0; i < N; i++)
			if (!done[i] || results[i] != (int)i * 10 + k)
				TEST_FAIL("run %d: worker %zu done=%d result=%d", k, i, done[i], results[i]);
	}
	for (size_t i = 0; i < N; i++)
		ASSERT_EQ_UINT(500, items[i].calls);
	ASSERT_EQ_UINT(0, overlaps);
	crew_free(c);
}

/*
 * A deadline: the late worker is counted and left running; a run of other
 * members does not wait for it; a run that selects it waits until its late
 * step ended, then gives it the new one.
 */
static void test_deadline(void)
{
	const bool late_one[N] = { false, false, true, false };
	const bool others[N] = { true, true, false, true };
	Item items[N];
	void *ptrs[N];
	int results[N] = { -1, -1, -1, -1 };
	bool done[N];
	Crew *c = NULL;
	pthread_t t;

	reset(items, ptrs);
	ASSERT_OK(crew_new(N, &c));
	items[2].block = true;
	ASSERT_EQ_UINT(1, crew_run(c, work, ptrs, (void *)(intptr_t)1, late_one, results, done, soon()));
	ASSERT_FALSE(done[2]);
	ASSERT_EQ_INT(-1, results[2]);

	/* Worker 2 is still inside its step. */
	ASSERT_EQ_UINT(0, crew_run(c, work, ptrs, (void *)(intptr_t)3, others, results, done, USEC_INFINITY));
	for (size_t i = 0; i < N; i++) {
		ASSERT_EQ_INT(others[i], done[i]);
		if (others[i])
			ASSERT_EQ_UINT(1, items[i].calls);
	}
	/* (It may not even have started.) */
	ASSERT_EQ_UINT(0, get(&items[2].finished));

	/* All of them, worker 2 included: its late step ends first. */
	t = start_releaser();
	ASSERT_EQ_UINT(0, crew_run(c, work, ptrs, (void *)(intptr_t)5, NULL, results, done, USEC_INFINITY));
	ASSERT_EQ_INT(0, pthread_join(t, NULL));
	ASSERT_EQ_UINT(0, overlaps);
	for (size_t i = 0; i < N; i++) {
		ASSERT_TRUE(done[i]);
		/* The result of this run, not of the late one. */
		ASSERT_EQ_INT((int)i * 10 + 5, results[i]);
	}
	ASSERT_EQ_UINT(2, items[2].calls);
	ASSERT_EQ_UINT(2, items[2].finished);
	crew_free(c);
}

/* A deadline that has passed already: a blocked step is late however soon
 * the crew looks. */
static void test_deadline_passed(void)
{
	Item items[N];
	void *ptrs[N];
	int results[N];
	bool done[N];
	Crew *c = NULL;

	reset(items, ptrs);
	ASSERT_OK(crew_new(N, &c));
	for (size_t i = 0; i < N; i++)
		items[i].block = true;
	ASSERT_EQ_UINT(N, crew_run(c, work, ptrs, NULL, NULL, results, done, now_usec(CLOCK_MONOTONIC) - 1));
	for (size_t i = 0; i < N; i++)
		ASSERT_FALSE(done[i]);
	release();
	crew_wait_idle(c);
	for (size_t i = 0; i < N; i++)
		ASSERT_EQ_UINT(1, get(&items[i].finished));
	crew_free(c);
}

/* crew_wait_idle, and crew_free, with a late worker: each returns once the
 * step ended, and the step's item (the caller's) is not touched after. */
static void check_waits_for_late(bool free_it)
{
	const bool one[N] = { false, true, false, false };
	Item items[N];
	void *ptrs[N];
	int results[N];
	bool done[N];
	Crew *c = NULL;
	pthread_t t;

	reset(items, ptrs);
	ASSERT_OK(crew_new(N, &c));
	items[1].block = true;
	ASSERT_EQ_UINT(1, crew_run(c, work, ptrs, NULL, one, results, done, soon()));
	t = start_releaser();
	if (free_it)
		c = crew_free(c);
	else
		crew_wait_idle(c);
	ASSERT_EQ_UINT(1, get(&items[1].finished));
	ASSERT_FALSE(items[1].running);
	ASSERT_EQ_INT(0, pthread_join(t, NULL));
	crew_free(c);
}

static void test_wait_idle_waits(void)
{
	check_waits_for_late(false);
}

static void test_free_waits(void)
{
	check_waits_for_late(true);
}

/* Runs given to workers that may not have started yet: a worker must not
 * read what a run writes before it takes the crew's lock. */
static void test_run_at_once(void)
{
	Item items[N];
	void *ptrs[N];
	int results[N];
	bool done[N];

	reset(items, ptrs);
	for (int k = 0; k < 300; k++) {
		Crew *c = NULL;

		ASSERT_OK(crew_new(N, &c));
		/* Spread the runs over the time the workers take to start. */
		for (usec_t until = now_usec(CLOCK_MONOTONIC) + (usec_t)(k % 50); now_usec(CLOCK_MONOTONIC) < until;)
			;
		ASSERT_EQ_UINT(0, crew_run(c, work, ptrs, NULL, NULL, results, done, USEC_INFINITY));
		for (size_t i = 0; i < N; i++)
			ASSERT_TRUE(done[i]);
		crew_free(c);
	}
}

static void test_empty(void)
{
	Crew *c = NULL;
	int results[1];
	bool done[1];

	ASSERT_OK(crew_new(0, &c));
	ASSERT_EQ_UINT(0, crew_run(c, work, NULL, NULL, NULL, results, done, soon()));
	crew_wait_idle(c);
	ASSERT_NULL(crew_free(c));
	ASSERT_NULL(crew_free(NULL));
}

int main(void)
{
	/* A crew that never returns fails the test rather than hanging it. */
	alarm(60);
	RUN_TEST(test_all_at_once);
	RUN_TEST(test_selected);
	RUN_TEST(test_many_runs);
	RUN_TEST(test_deadline);
	RUN_TEST(test_deadline_passed);
	RUN_TEST(test_wait_idle_waits);
	RUN_TEST(test_free_waits);
	RUN_TEST(test_run_at_once);
	RUN_TEST(test_empty);
	TEST_SUMMARY();
	return 0;
}
