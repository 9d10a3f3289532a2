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
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "providers/fault.h"
#include "vssd/creation/freeze.h"

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
	int dir_fd;        /* holds the marker */
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

static int write_marker(int dir_fd, const int *fds, char *const *paths, size_t n)
{
	int fd = -1;
	FILE *f;
	int r = 0;

	/* Created, never opened: nothing planted at the name (a symbolic
	 * link, a file of someone else's) is followed or written. A marker
	 * left from before was read at start-up. */
	for (int attempt = 0; fd < 0; attempt++) {
		fd = openat(dir_fd, FREEZE_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && (errno != EEXIST || attempt > 0 || unlinkat(dir_fd, FREEZE_MARKER, 0) < 0))
			return -errno;
	}
	f = fdopen(fd, "we");
	if (!f) {
		r = -errno;
		close(fd);
		return r;
	}
	fputs("# vssd: these filesystems may be frozen; a starting vssd thaws them\n", f);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (fds[i] < 0)
			continue;
		if (fstat(fds[i], &st) < 0) {
			r = -errno;
			break;
		}
		/* The device, so that a later vssd thaws only the same
		 * filesystem, whatever is at the path by then. */
		fprintf(f, "%u:%u %s\n", major(st.st_dev), minor(st.st_dev), paths[i] ?: "");
	}
	if (r == 0 && (fflush(f) != 0 || fsync(fileno(f)) < 0))
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

int freeze_set_new(const int *fds, char *const *paths, size_t n, int dir_fd, FreezeSet **ret)
{
	FreezeSet *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n = n;
	s->guard = -1;
	s->guard_fd = -1;
	s->dir_fd = -1;
	s->fds = malloc(sizeof(int) * (n ?: 1));
	s->held = calloc(n ?: 1, sizeof(atomic_bool));
	if (!s->fds || !s->held) {
		free(s->fds);
		free(s->held);
		free(s);
		return -ENOMEM;
	}
	/* Every slot is ours (or -1) before the first can fail: freeing
	 * closes only what this set opened. */
	for (size_t i = 0; i < n; i++) {
		atomic_init(&s->held[i], false);
		s->fds[i] = -1;
	}
	s->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
	if (s->dir_fd < 0) {
		r = -errno;
		freeze_set_free(s);
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		s->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (s->fds[i] < 0) {
			r = -errno;
			freeze_set_free(s);
			return r;
		}
	}
	r = write_marker(s->dir_fd, s->fds, paths, n);
	if (r < 0) {
		log_error_errno(r, "cannot write the freeze marker: %m");
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
	int r = fault_point(POINT_FREEZE);

	if (r == 0 && ioctl(s->fds[i], FIFREEZE, 0) < 0)
		r = -errno;
	if (r < 0)
		return r;
	atomic_store(&s->held[i], true);
	return 0;
}

int thaw_one(FreezeSet *s, size_t i)
{
	int r = fault_point(POINT_THAW);

	if (r == 0 && ioctl(s->fds[i], FITHAW, 0) < 0 && errno != EINVAL)
		r = -errno;
	if (r < 0)
		return r;
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
		unlinkat(s->dir_fd, FREEZE_MARKER, 0);
	_exit(failed ? GUARD_FAILED : GUARD_THAWED);
}

int freeze_guard_start(FreezeSet *s, usec_t deadline)
{
	int p[2], keep[s->n + 2];
	size_t n_keep = 0;
	pid_t pid;
	int r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* Prepared before the fork: the child may not allocate. */
	keep[n_keep++] = p[0];
	keep[n_keep++] = s->dir_fd;
	for (size_t i = 0; i < s->n; i++)
		if (s->fds[i] >= 0)
			keep[n_keep++] = s->fds[i];
	qsort(keep, n_keep, sizeof(int), cmp_int);
	/* The injected failure is taken before the fork, as a real one is. */
	r = fault_point(POINT_FORK);
	pid = r < 0 ? -1 : fork();
	if (pid < 0) {
		if (r == 0)
			r = -errno;
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
	if (s->dir_fd >= 0 && all_thawed)
		unlinkat(s->dir_fd, FREEZE_MARKER, 0);
	else if (s->dir_fd >= 0)
		log_crit("filesystems may still be frozen; the marker " FREEZE_MARKER
			 " is kept so that vssd thaws them when it starts");
	safe_close(s->dir_fd);
	free(s->fds);
	free(s->held);
	free(s);
	return NULL;
}

/* Thaw the filesystem of one marker line, "MAJ:MIN PATH": 0, or -1 when it
 * may still be frozen. */
static int recover_one(char *line)
{
	unsigned maj = 0, min = 0;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int pos = 0, r;

	/* A bare path: a marker of an older vssd, which did not record the
	 * device. */
	if (line[0] != '/' && (sscanf(line, "%u:%u %n", &maj, &min, &pos) != 2 || pos == 0 || line[pos] != '/')) {
		log_warning("freeze marker: cannot read the line \"%s\"; ignored", line);
		return 0;
	}
	/* The name was canonical when written: a symbolic link on the way
	 * is someone else's. */
	fd = open_no_symlinks(AT_FDCWD, line + pos, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		log_warning_errno(fd, "freeze marker: cannot open %s to thaw it: %m", line + pos);
		return 0;
	}
	if (fstat(fd, &st) < 0 || (pos > 0 && st.st_dev != makedev(maj, min))) {
		log_warning("freeze marker: %s is no longer the filesystem that was held; left alone", line + pos);
		return 0;
	}
	r = fault_point(POINT_THAW);
	if (r == 0)
		r = ioctl(fd, FITHAW, 0) == 0 ? 1 : errno == EINVAL ? 0 : -errno;
	if (r > 0)
		log_warning("freeze marker: %s was still frozen; thawed it", line + pos);
	else if (r < 0) {
		errno = -r;
		log_crit("freeze marker: cannot thaw %s: %m", line + pos);
		return -1;
	}
	return 0;
}

int freeze_recover(int dir_fd)
{
	_cleanup_free_ char *line = NULL;
	size_t size = 0;
	int n = 0, failed = 0, fd;
	struct stat st;
	ssize_t len;
	FILE *f;

	fd = openat(dir_fd, FREEZE_MARKER, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP) {
		log_warning("the freeze marker is a symbolic link, which vssd never makes; removed unread");
		unlinkat(dir_fd, FREEZE_MARKER, 0);
		return 0;
	}
	if (fd < 0)
		return errno == ENOENT ? 0 : log_error_errno(errno, "cannot read the freeze marker: %m");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0) {
		log_warning("the freeze marker is not a file vssd made; removed unread");
		close(fd);
		unlinkat(dir_fd, FREEZE_MARKER, 0);
		return 0;
	}
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return -errno;
	}
	while ((len = getline(&line, &size, f)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		n++;
		if (recover_one(line) < 0)
			failed++;
	}
	fclose(f);
	if (failed == 0)
		unlinkat(dir_fd, FREEZE_MARKER, 0);
	return n;
}
