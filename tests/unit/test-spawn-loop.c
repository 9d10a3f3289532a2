/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * loop_spawn(): a program run from an event loop that keeps turning: its
 * result comes to done on the loop, a deadline kills it, and freeing it
 * early kills it without calling done.
 */

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "vssd/spawn-loop.h"
#include "tests.h"

typedef struct Outcome {
	sd_event *event;
	bool called;
	int status;
	bool timed_out;
	char out[64];
	unsigned ticks;         /* timer runs while the program does */
} Outcome;

static void done(const SpawnResult *r, void *userdata)
{
	Outcome *o = userdata;

	o->called = true;
	o->status = r->status;
	o->timed_out = r->timed_out;
	snprintf(o->out, sizeof(o->out), "%s", r->out ?: "");
	sd_event_exit(o->event, 0);
}

static int tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	Outcome *o = userdata;

	o->ticks++;
	sd_event_source_set_time(s, usec + 10 * USEC_PER_MSEC);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static int stop(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s, (void)usec;
	return sd_event_exit(userdata, 0);
}

static void run(const char *script, usec_t timeout, Outcome *o)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)script, NULL };
	sd_event_source *t = NULL;

	ASSERT_OK(sd_event_default(&o->event));
	ASSERT_OK(sd_event_add_time_relative(o->event, &t, CLOCK_MONOTONIC, 0, 1, tick, o));
	ASSERT_OK(loop_spawn(o->event, argv, &(SpawnOptions){ .timeout = timeout, .input = "in\n" }, done, o, NULL));
	ASSERT_OK(sd_event_loop(o->event));
	sd_event_source_disable_unref(t);
	o->event = sd_event_unref(o->event);
}

static void test_result_on_the_loop(void)
{
	Outcome o = { 0 };

	run("read x; sleep 0.2; echo \"$x out\"; exit 4", 0, &o);
	ASSERT_TRUE(o.called);
	ASSERT_TRUE(WIFEXITED(o.status));
	ASSERT_EQ_INT(4, WEXITSTATUS(o.status));
	ASSERT_STREQ("in out\n", o.out);
	/* The loop turned while the program slept (every 10 ms for 200). */
	ASSERT_TRUE(o.ticks > 3);
}

static void test_deadline(void)
{
	Outcome o = { 0 };

	run("sleep 30", 100 * USEC_PER_MSEC, &o);
	ASSERT_TRUE(o.called);
	ASSERT_TRUE(o.timed_out);
	ASSERT_TRUE(WIFSIGNALED(o.status));
	ASSERT_EQ_INT(SIGKILL, WTERMSIG(o.status));
}

static void test_free_early(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"sleep 30", NULL };
	Outcome o = { 0 };
	sd_event_source *t = NULL;
	LoopSpawn *s = NULL;
	pid_t pid;

	ASSERT_OK(sd_event_default(&o.event));
	ASSERT_OK(loop_spawn(o.event, argv, NULL, done, &o, &s));
	ASSERT_NOT_NULL(s);
	pid = *(pid_t *)s;      /* Spawn.pid, the first field */
	ASSERT_TRUE(kill(pid, 0) == 0);
	s = loop_spawn_free(s);
	ASSERT_NULL(s);
	/* Reaped: the pid names nothing of ours any more. */
	ASSERT_TRUE(waitpid(pid, NULL, WNOHANG) < 0);
	ASSERT_OK(sd_event_add_time_relative(o.event, &t, CLOCK_MONOTONIC, 100 * USEC_PER_MSEC, 0, stop, o.event));
	ASSERT_OK(sd_event_loop(o.event));
	ASSERT_FALSE(o.called);
	sd_event_source_disable_unref(t);
	sd_event_unref(o.event);
}

int main(void)
{
	/* The loop waits on a pidfd; valgrind does not know the call. */
	if (syscall(SYS_pidfd_open, getpid(), 0) < 0 && errno == ENOSYS) {
		printf("no pidfd_open(): skipped\n");
		return 77;
	}
	RUN_TEST(test_result_on_the_loop);
	RUN_TEST(test_deadline);
	RUN_TEST(test_free_early);
	TEST_SUMMARY();
	return 0;
}
