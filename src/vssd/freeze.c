/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "vssd/freeze.h"

/* Guard exit codes. */
enum {
	GUARD_RELEASED = 0, /* vssd released everything itself */
	GUARD_THAWED = 10,  /* the guard thawed (deadline or vssd gone) */
	GUARD_FAILED = 11,  /* the guard could not thaw some member */
};

struct FreezeSet {
	size_t n;
	int *fds;          /* -1 for members that are not held */
	atomic_bool *held; /* frozen by vssd and not thawed since; written by
	                    * the member's worker, read by the engine */
	char *marker;
	pid_t guard;
	int guard_fd;      /* write end of the guard's pipe */
};

int path_device(const char *path, dev_t *ret)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	*ret = st.st_dev;
	return 0;
}

static int write_marker(const char *marker, char *const *paths, size_t n)
{
	FILE *f;
	int r = 0;

	f = fopen(marker, "we");
	if (!f)
		return -errno;
	fputs("# vssd: these filesystems may be frozen; a starting vssd thaws them\n", f);
	for (size_t i = 0; i < n; i++)
		if (paths[i])
			fprintf(f, "%s\n", paths[i]);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

int freeze_set_new(char *const *paths, size_t n, const char *marker, FreezeSet **ret)
{
	FreezeSet *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n = n;
	s->guard = -1;
	s->guard_fd = -1;
	s->fds = malloc(sizeof(int) * (n ?: 1));
	s->held = calloc(n ?: 1, sizeof(atomic_bool));
	s->marker = strdup(marker);
	if (!s->fds || !s->held || !s->marker) {
		free(s->fds);
		free(s->held);
		free(s->marker);
		free(s);
		return -ENOMEM;
	}
	/* Every slot is closed by freeze_set_free(), also those after a
	 * failed open. */
	for (size_t i = 0; i < n; i++) {
		atomic_init(&s->held[i], false);
		s->fds[i] = -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!paths[i])
			continue;
		s->fds[i] = open(paths[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->fds[i] < 0) {
			r = -errno;
			freeze_set_free(s);
			return r;
		}
	}
	r = write_marker(marker, paths, n);
	if (r < 0) {
		log_error_errno(r, "cannot write the freeze marker %s: %m", marker);
		freeze_set_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int freeze_one(FreezeSet *s, size_t i)
{
	/* Held only once frozen: a release racing with this freeze either
	 * sees it frozen or leaves it to the release after the wait. EBUSY:
	 * someone else holds it frozen; it is not ours to thaw. */
	if (ioctl(s->fds[i], FIFREEZE, 0) < 0)
		return -errno;
	atomic_store(&s->held[i], true);
	return 0;
}

int thaw_one(FreezeSet *s, size_t i)
{
	if (ioctl(s->fds[i], FITHAW, 0) < 0 && errno != EINVAL)
		return -errno;
	atomic_store(&s->held[i], false);
	return 0;
}

bool freeze_held(FreezeSet *s, size_t i)
{
	return s && atomic_load(&s->held[i]);
}

static usec_t monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

/*
 * The guard, in the forked child. vssd has other threads, so only
 * async-signal-safe calls are allowed here: no malloc, no stdio, no logging.
 * Everything it needs was prepared before the fork.
 */
static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static _Noreturn void guard_main(FreezeSet *s, int in, usec_t deadline, const int *keep, size_t n_keep)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT };
	struct sigaction sa = { .sa_handler = SIG_IGN };
	unsigned first = 3;
	sigset_t all;
	bool failed = false;
	char c;

	/* Keep nothing of vssd's but the members and the pipe: not its
	 * sockets (their peers would not see vssd go) nor its state lock (a
	 * new vssd could not start while we run). */
	for (size_t i = 0; i < n_keep; i++) {
		if ((unsigned)keep[i] > first)
			close_range(first, (unsigned)keep[i] - 1, 0);
		first = (unsigned)keep[i] + 1;
	}
	close_range(first, ~0U, 0);

	/* Outlive whatever stops vssd, short of SIGKILL. */
	for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
		sigaction(ignored[i], &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_NAME, "vssd-guard", 0, 0, 0);

	for (;;) {
		usec_t now = monotonic();
		struct pollfd p = { .fd = in, .events = POLLIN };
		int timeout_ms, r;

		if (now >= deadline)
			break;
		timeout_ms = (int)((deadline - now + 999) / 1000);
		r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			break; /* the deadline */
		r = (int)read(in, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 1 && c == 'R')
			_exit(GUARD_RELEASED);
		break; /* EOF: vssd is gone, or asks us to thaw */
	}

	/* Thaw every member. A thaw that fails is tried again for a while:
	 * there is no one else left to do it. */
	for (size_t i = 0; i < s->n; i++) {
		if (s->fds[i] < 0)
			continue;
		for (int attempt = 0;; attempt++) {
			struct timespec pause = { .tv_nsec = 100 * 1000 * 1000 };

			if (ioctl(s->fds[i], FITHAW, 0) == 0 || errno == EINVAL)
				break;
			if (attempt == 50) {
				failed = true;
				break;
			}
			nanosleep(&pause, NULL);
		}
	}
	if (!failed)
		unlink(s->marker);
	_exit(failed ? GUARD_FAILED : GUARD_THAWED);
}

int freeze_guard_start(FreezeSet *s, usec_t deadline)
{
	int p[2], keep[s->n + 1];
	size_t n_keep = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* Prepared before the fork: the child may not allocate. */
	keep[n_keep++] = p[0];
	for (size_t i = 0; i < s->n; i++)
		if (s->fds[i] >= 0)
			keep[n_keep++] = s->fds[i];
	qsort(keep, n_keep, sizeof(int), cmp_int);
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[1]);
		guard_main(s, p[0], deadline, keep, n_keep);
	}
	close(p[0]);
	s->guard = pid;
	s->guard_fd = p[1];
	return 0;
}

static int guard_wait(FreezeSet *s)
{
	int status;

	while (waitpid(s->guard, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	s->guard = -1;
	if (!WIFEXITED(status))
		return -ECHILD;
	switch (WEXITSTATUS(status)) {
	case GUARD_RELEASED:
		return 0;
	case GUARD_THAWED:
		for (size_t i = 0; i < s->n; i++)
			atomic_store(&s->held[i], false);
		return 1;
	default:
		return -EIO;
	}
}

int freeze_guard_stop(FreezeSet *s)
{
	if (s->guard < 0)
		return 0;
	if (write(s->guard_fd, "R", 1) < 0)
		log_warning_errno(errno, "cannot tell the freeze guard: %m");
	close(s->guard_fd);
	s->guard_fd = -1;
	return guard_wait(s);
}

int freeze_guard_thaw(FreezeSet *s)
{
	int r;

	if (s->guard < 0)
		return -ESRCH;
	close(s->guard_fd);
	s->guard_fd = -1;
	r = guard_wait(s);
	return r == 1 ? 0 : r < 0 ? r : -EIO;
}

FreezeSet *freeze_set_free(FreezeSet *s)
{
	bool all_thawed = true;

	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		all_thawed = all_thawed && !atomic_load(&s->held[i]);
	/* A guard still running is told to thaw whatever may be frozen. */
	if (s->guard >= 0 && (all_thawed ? freeze_guard_stop(s) : freeze_guard_thaw(s)) >= 0)
		all_thawed = true;
	for (size_t i = 0; i < s->n; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	/* A member that may still be frozen keeps the marker, so that the
	 * next vssd thaws it. */
	if (all_thawed)
		unlink(s->marker);
	else
		log_crit("filesystems may still be frozen; %s is kept so that vssd thaws them when it starts",
			 s->marker);
	free(s->fds);
	free(s->held);
	free(s->marker);
	free(s);
	return NULL;
}

int freeze_recover(const char *marker)
{
	_cleanup_free_ char *line = NULL;
	size_t size = 0;
	int n = 0, failed = 0;
	ssize_t len;
	FILE *f;

	f = fopen(marker, "re");
	if (!f)
		return errno == ENOENT ? 0 : log_error_errno(errno, "cannot read %s: %m", marker);
	while ((len = getline(&line, &size, f)) >= 0) {
		int fd;

		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		n++;
		fd = open(line, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			log_warning_errno(errno, "freeze marker: cannot open %s to thaw it: %m", line);
			continue;
		}
		if (ioctl(fd, FITHAW, 0) == 0)
			log_warning("freeze marker: %s was still frozen; thawed it", line);
		else if (errno != EINVAL) {
			log_crit("freeze marker: cannot thaw %s: %m", line);
			failed++;
		}
		close(fd);
	}
	fclose(f);
	if (failed == 0)
		unlink(marker);
	return n;
}
