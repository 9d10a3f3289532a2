/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Running a program for vssd or a provider (lvcreate, an external provider's
 * command, journalctl): with a deadline, its output captured, and nothing of
 * vssd's inherited.
 *
 * The child gets stdin from /dev/null (or a pipe carrying SpawnOptions.input),
 * stdout and stderr to pipes, no other fd, "/" as its working directory, every
 * signal at its default and unblocked, and a process group of its own. Output
 * goes to pipes and the working directory is "/" so that a program run while
 * filesystems are frozen writes to none of them by itself (what it opens is
 * its own business: a provider must run only programs that do not write to
 * the filesystems it holds). At the deadline, and when the program ends, its
 * whole process group is killed, so nothing it started outlives it.
 *
 * spawn_run() waits, on the calling thread: for the engine's threads. An event
 * loop drives a Spawn itself (spawn_start(), then spawn_io() when a pipe is
 * ready, spawn_reap() when pidfd is readable, spawn_kill() at the deadline).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "basic/util.h"

#define SPAWN_OUTPUT_MAX (64 * 1024)

typedef struct SpawnOptions {
	usec_t timeout;         /* from the start; 0 or USEC_INFINITY: none */
	char *const *envp;      /* NULL: the caller's environment */
	const char *input;      /* written to stdin, which then closes; NULL: /dev/null */
	size_t max_output;      /* bytes kept of each stream; 0: SPAWN_OUTPUT_MAX */
} SpawnOptions;

typedef struct SpawnResult {
	int status;             /* as waitpid() gives it */
	bool timed_out;         /* killed at the deadline */
	bool truncated;         /* a stream was longer than max_output */
	char *out, *err;        /* what it wrote, NUL-terminated; never NULL after
	                         * a successful spawn_run() */
} SpawnResult;

typedef struct Spawn {
	pid_t pid;
	int pidfd, in_fd, out_fd, err_fd;       /* -1 once closed; pidfd is -1
	                                         * from the start where pidfds
	                                         * are unknown (valgrind): then
	                                         * only spawn_run() can wait */
	const char *input;
	size_t input_len, input_done;
	size_t out_len, err_len, max_output;
	usec_t deadline;                        /* CLOCK_MONOTONIC; USEC_INFINITY: none */
	SpawnResult result;
} Spawn;

/* Start argv[0] (looked up in PATH when it has no '/'). 0, or a negative
 * errno when it could not be started (nothing is left running then). The
 * pipes are non-blocking. */
int spawn_start(char *const argv[], const SpawnOptions *o, Spawn *ret);
/* Move what is ready on fd (one of s's pipes): write input, read output.
 * Returns 1 when fd reached its end and was closed, 0 when more may come. */
int spawn_io(Spawn *s, int fd);
/* Kill the program's process group (at the deadline: marks timed_out). */
void spawn_kill(Spawn *s, bool deadline);
/* Once pidfd is readable: kill what the program left in its group, reap it,
 * read what remains in the pipes, and close them. 0 or a negative errno. */
int spawn_reap(Spawn *s);
/* Close whatever is open and free the result; kills and reaps a program
 * still running. */
void spawn_done(Spawn *s);

/* Run to the end or the deadline. 0 when the program ran (whatever its exit:
 * see ret->status and ret->timed_out), a negative errno when it could not be
 * started. ret is the caller's to spawn_result_clear(). */
int spawn_run(char *const argv[], const SpawnOptions *o, SpawnResult *ret);
void spawn_result_clear(SpawnResult *r);

/* Whether a result is an exit with status 0. */
static inline bool spawn_succeeded(const SpawnResult *r)
{
	return !r->timed_out && (r->status & 0x7f) == 0 && ((r->status >> 8) & 0xff) == 0;
}
