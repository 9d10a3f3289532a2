/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/spawn-util.h"

/* How long a program killed at its deadline gets to go: one stuck in the
 * kernel (a write to a frozen filesystem) may never go, and waiting for it
 * would stall the caller past every limit it has. */
#define KILL_GRACE_USEC (2 * USEC_PER_SEC)
#define POLL_EXIT_MSEC 10

extern char **environ;

static void close_fd(int *fd)
{
	*fd = safe_close(*fd);
}

int spawn_start(char *const argv[], const SpawnOptions *o, Spawn *ret)
{
	static const SpawnOptions none = { 0 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t all, empty;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	pid_t pid = -1;
	int r;

	o = o ?: &none;
	*ret = (Spawn){ .pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .input = o->input,
			.input_len = o->input ? strlen(o->input) : 0,
			.max_output = o->max_output ?: SPAWN_OUTPUT_MAX,
			.deadline = o->timeout && o->timeout != USEC_INFINITY ? now_usec(CLOCK_MONOTONIC) + o->timeout
									     : USEC_INFINITY };
	ret->result.out = calloc(1, 1);
	ret->result.err = calloc(1, 1);
	if (!ret->result.out || !ret->result.err) {
		spawn_result_clear(&ret->result);
		return -ENOMEM;
	}
	/* stdin is a socket so that writing to a program that stopped
	 * reading fails with EPIPE rather than raising SIGPIPE. */
	if ((o->input && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) ||
	    pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail_fds;
	}

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigfillset(&all);
	sigemptyset(&empty);
	r = -(o->input ? posix_spawn_file_actions_adddup2(&fa, in[1], STDIN_FILENO)
		       : posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0));
	r = r ?: -posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	r = r ?: -posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	r = r ?: -posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	r = r ?: -posix_spawn_file_actions_addchdir_np(&fa, "/");
	r = r ?: -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	r = r ?: -posix_spawnattr_setpgroup(&attr, 0);
	r = r ?: -posix_spawnattr_setsigmask(&attr, &empty);
	r = r ?: -posix_spawnattr_setsigdefault(&attr, &all);
	r = r ?: -(strchr(argv[0], '/') ? posix_spawn : posix_spawnp)(&pid, argv[0], &fa, &attr, argv,
									 o->envp ?: environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r < 0)
		goto fail_fds;
	ret->pid = pid;

	/* Without pidfds (valgrind does not know the call) spawn_run() polls
	 * for the exit instead; an event loop cannot drive such a Spawn. */
	ret->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (ret->pidfd < 0 && errno != ENOSYS) {
		r = -errno;
		spawn_done(ret);
		goto fail_fds;
	}
	close_fd(&in[1]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	ret->in_fd = in[0];
	ret->out_fd = out[0];
	ret->err_fd = err[0];
	if ((ret->in_fd >= 0 && fcntl(ret->in_fd, F_SETFL, O_NONBLOCK) < 0) || fcntl(ret->out_fd, F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(ret->err_fd, F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		spawn_done(ret);
		return r;
	}
	if (ret->in_fd >= 0 && ret->input_len == 0)
		close_fd(&ret->in_fd);
	return 0;

fail_fds:
	for (size_t i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
	}
	spawn_result_clear(&ret->result);
	return r;
}

/* Append what fd has now to buf, keeping at most max bytes. */
static int drain(int *fd, char **buf, size_t *len, size_t max, bool *truncated)
{
	char chunk[4096];

	for (;;) {
		ssize_t k = read(*fd, chunk, sizeof(chunk));

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			close_fd(fd);
			return 1;
		}
		if (k == 0) {
			close_fd(fd);
			return 1;
		}
		size_t keep = *len < max ? ((size_t)k < max - *len ? (size_t)k : max - *len) : 0;
		if (keep < (size_t)k)
			*truncated = true;
		if (keep > 0) {
			char *n = realloc(*buf, *len + keep + 1);

			if (!n) {
				*truncated = true;
				continue;
			}
			memcpy(n + *len, chunk, keep);
			*len += keep;
			n[*len] = '\0';
			*buf = n;
		}
	}
}

int spawn_io(Spawn *s, int fd)
{
	if (fd == s->out_fd)
		return drain(&s->out_fd, &s->result.out, &s->out_len, s->max_output, &s->result.truncated);
	if (fd == s->err_fd)
		return drain(&s->err_fd, &s->result.err, &s->err_len, s->max_output, &s->result.truncated);
	if (fd != s->in_fd || fd < 0)
		return 1;
	while (s->input_done < s->input_len) {
		ssize_t k = write(fd, s->input + s->input_done, s->input_len - s->input_done);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			break;
		}
		s->input_done += (size_t)k;
	}
	close_fd(&s->in_fd);
	return 1;
}

void spawn_kill(Spawn *s, bool deadline)
{
	if (s->pid <= 0)
		return;
	/* The group outlives its leader only while it has members; the leader
	 * is not reaped yet, so its pid (the group's id) is not reused. */
	(void)kill(-s->pid, SIGKILL);
	if (deadline)
		s->result.timed_out = true;
}

/* The program ended with status (as waitpid() gives it) and is reaped. */
static void reaped(Spawn *s, int status)
{
	s->pid = -1;
	s->result.status = status;
	close_fd(&s->pidfd);
	/* What the program wrote before it ended is in the pipes now; a
	 * writer that left the group is not waited for. */
	if (s->out_fd >= 0)
		(void)spawn_io(s, s->out_fd);
	if (s->err_fd >= 0)
		(void)spawn_io(s, s->err_fd);
	close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
}

int spawn_reap(Spawn *s)
{
	siginfo_t si = { 0 };
	int status;

	if (s->pid <= 0)
		return 0;
	spawn_kill(s, false);
	if (s->pidfd >= 0) {
		if (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED) < 0)
			return -errno;
		status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
	} else {
		while (waitpid(s->pid, &status, 0) < 0)
			if (errno != EINTR)
				return -errno;
	}
	reaped(s, status);
	return 0;
}

void spawn_done(Spawn *s)
{
	if (s->pid > 0) {
		spawn_kill(s, false);
		(void)spawn_reap(s);
	}
	close_fd(&s->pidfd);
	close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	spawn_result_clear(&s->result);
}

void spawn_result_clear(SpawnResult *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int spawn_run(char *const argv[], const SpawnOptions *o, SpawnResult *ret)
{
	Spawn s;
	usec_t killed_at = 0;
	int r;

	*ret = (SpawnResult){ 0 };
	r = spawn_start(argv, o, &s);
	if (r < 0)
		return r;
	for (;;) {
		struct pollfd p[4] = {
			{ .fd = s.pidfd, .events = POLLIN },
			{ .fd = s.in_fd, .events = POLLOUT },
			{ .fd = s.out_fd, .events = POLLIN },
			{ .fd = s.err_fd, .events = POLLIN },
		};
		usec_t now = now_usec(CLOCK_MONOTONIC), until = killed_at ? killed_at + KILL_GRACE_USEC : s.deadline;
		int timeout = until == USEC_INFINITY ? -1 : until <= now ? 0 : (int)((until - now + 999) / 1000);
		int status;

		/* Without a pidfd, look for the exit every few milliseconds. */
		if (s.pidfd < 0 && (timeout < 0 || timeout > POLL_EXIT_MSEC))
			timeout = POLL_EXIT_MSEC;
		if (poll(p, 4, timeout) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (p[0].revents) {
			r = spawn_reap(&s);
			break;
		}
		if (s.pidfd < 0 && waitpid(s.pid, &status, WNOHANG) == s.pid) {
			/* What it left in its group goes with it. */
			spawn_kill(&s, false);
			reaped(&s, status);
			break;
		}
		for (size_t i = 1; i < 4; i++)
			if (p[i].revents)
				(void)spawn_io(&s, p[i].fd);
		now = now_usec(CLOCK_MONOTONIC);
		if (!killed_at && now >= s.deadline) {
			spawn_kill(&s, true);
			killed_at = now;
		} else if (killed_at && now >= killed_at + KILL_GRACE_USEC) {
			/* Left to whoever reaps vssd's children; the caller
			 * learns it timed out. */
			s.pid = -1;
			s.result.status = SIGKILL;
			r = 0;
			break;
		}
	}
	ret->status = s.result.status;
	ret->timed_out = s.result.timed_out;
	ret->truncated = s.result.truncated;
	ret->out = s.result.out;
	ret->err = s.result.err;
	s.result.out = s.result.err = NULL;
	spawn_done(&s);
	if (r < 0)
		spawn_result_clear(ret);
	return r;
}
