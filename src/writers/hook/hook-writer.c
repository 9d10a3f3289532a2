/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-hook-writer: a writer that runs the executables of a directory with
 * "freeze" before a snapshot set and "thaw" after it, so that an application
 * without a writer of its own can still be quiesced by a script
 * (docs/man/vss-hook-writer.md).
 *
 * The directory follows qemu-guest-agent's fsfreeze-hook.d, so its scripts
 * work unchanged, but two habits of fsfreeze-hook are not kept: a script
 * that fails vetoes the set instead of being logged and ignored, and every
 * script whose freeze began is thawed, whether a later script, vssd, the
 * freeze timeout or SIGTERM ends the set.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <vss/vss.h>

/* The writer class: the same for every instance and every release. */
#define HOOK_WRITER_CLASS_ID "{554299a5-8fcd-4eac-b5d6-fc3111ac66f6}"
#define HOOK_WRITER_NAME "hooks"
#define DEFAULT_HOOKS_DIR "/etc/vss/hooks.d"
#define DEFAULT_SCRIPT_TIMEOUT_SEC 30u
#define DEFAULT_FREEZE_TIMEOUT_SEC 60u
#define MAX_TIMEOUT_SEC 86400u

/* How much of a failing script's stderr goes into the writer's failure. */
#define STDERR_TAIL 1024
/* Room for "SCRIPT EVENT: why: " and the tail, each byte of which may grow
 * to two when made printable on one line. */
#define MESSAGE_MAX (2 * STDERR_TAIL + 512)
/* A process killed with SIGKILL that has not ended by then is stuck in the
 * kernel: it is left behind rather than holding up the set. */
#define REAP_GRACE_MS 5000
/* Stderr pipes still held open by what exited scripts left running. */
#define MAX_LINGERING 32

static const char program[] = "vss-hook-writer";

extern char **environ;

typedef enum RunEnd {
	END_OK,
	END_EXIT,     /* exited with a status other than 0 */
	END_SIGNAL,   /* killed by a signal the writer did not send */
	END_TIMEOUT,  /* killed at its own deadline (--timeout) */
	END_BUDGET,   /* killed when the freeze scripts' shared time ran out */
	END_STOPPING, /* killed because the writer got SIGTERM or SIGINT */
	END_NOT_RUN,  /* could not even be started */
} RunEnd;

typedef struct RunResult {
	RunEnd end;
	int code; /* exit status, signal or errno */
	char tail[STDERR_TAIL];
	size_t tail_len;
	bool tail_cut;
} RunResult;

typedef struct Hooks {
	const char *dir;
	unsigned script_timeout_ms;
	unsigned freeze_timeout_ms;
	int signal_fd;
	bool stopping;

	/* Scripts whose freeze began, in the order they ran. */
	char **frozen;
	size_t n_frozen;

	int lingering[MAX_LINGERING];
	size_t n_lingering;
} Hooks;

/* A script's environment: the writer's own, plus the set. */
typedef struct Env {
	char **v;
	char *set_id, *volumes;
} Env;

/* With a syslog priority prefix, as vssd's, which journald reads. */
static void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_msg(int priority, const char *fmt, ...)
{
	char line[MESSAGE_MAX + 256];
	va_list ap;
	int n;

	/* One write per line, so that lines of scripts echoed in between do
	 * not cut into it. */
	n = snprintf(line, sizeof(line), "<%d>%s: ", priority, program);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* What qemu-guest-agent's fsfreeze-hook leaves alone, so that a directory
 * of its scripts runs here as it ran there: hidden files, and the copies
 * package managers, editors and administrators leave next to a script they
 * replace, which must not run as a second hook; ucf's copies (.ucf-old,
 * .ucf-dist, ...) as well. */
static bool is_skipped_name(const char *name)
{
	static const char *const suffixes[] = {
		"~",         ".bak",      ".orig",     ".sample",    ".rpmnew",   ".rpmorig",     ".rpmsave",
		".dpkg-old", ".dpkg-new", ".dpkg-tmp", ".dpkg-dist", ".dpkg-bak", ".dpkg-backup", ".dpkg-remove",
	};

	if (name[0] == '.' || strstr(name, ".ucf-"))
		return true;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (has_suffix(name, suffixes[i]))
			return true;
	return false;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The scripts to run, in byte order of their names. Read again at every
 * freeze, so that a script installed while the writer runs is taken. */
static int list_scripts(const char *dir, char ***ret, size_t *ret_n)
{
	char **names = NULL;
	size_t n = 0, allocated = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return -errno;
	for (;;) {
		const char *why = NULL;
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (!de) {
			r = -errno;
			break;
		}
		if (is_skipped_name(de->d_name)) {
			if (de->d_name[0] != '.')
				log_msg(LOG_INFO, "skipping %s: a package manager's or editor's leftover", de->d_name);
			continue;
		}
		/* Symbolic links are followed, as run-parts does. */
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			why = strerror(errno);
		else if (!S_ISREG(st.st_mode))
			why = "not a regular file";
		else if (!(st.st_mode & 0111) || faccessat(dirfd(d), de->d_name, X_OK, 0) < 0)
			why = "not executable";
		if (why) {
			log_msg(LOG_NOTICE, "skipping %s: %s", de->d_name, why);
			continue;
		}
		if (n == allocated) {
			char **nn;

			allocated = allocated ? 2 * allocated : 16;
			nn = realloc(names, allocated * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (r < 0) {
		strv_free(names, n);
		return r;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), compare_names);
	*ret = names;
	*ret_n = n;
	return 0;
}

static bool env_make(Env *e, const vss_writer *w)
{
	const char *const *volumes = vss_writer_get_volumes(w);
	char id[VSS_ID_STRING_MAX];
	vss_id set_id = VSS_ID_NULL;
	size_t n = 0, k = 0, len = sizeof("VSS_VOLUMES=");
	char *p;

	*e = (Env){ 0 };
	(void)vss_writer_get_snapshot_set_id(w, &set_id);
	for (size_t i = 0; volumes[i]; i++)
		len += strlen(volumes[i]) + 1;
	while (environ[n])
		n++;
	e->volumes = malloc(len);
	e->v = calloc(n + 3, sizeof(char *));
	if (asprintf(&e->set_id, "VSS_SNAPSHOT_SET_ID=%s", vss_id_format(&set_id, id)) < 0)
		e->set_id = NULL;
	if (!e->volumes || !e->v || !e->set_id) {
		free(e->volumes);
		free(e->v);
		free(e->set_id);
		*e = (Env){ 0 };
		return false;
	}
	p = stpcpy(e->volumes, "VSS_VOLUMES=");
	for (size_t i = 0; volumes[i]; i++)
		p = stpcpy(stpcpy(p, i ? " " : ""), volumes[i]);
	/* Ours replace any the writer was started with. */
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "VSS_SNAPSHOT_SET_ID=", sizeof("VSS_SNAPSHOT_SET_ID=") - 1) != 0 &&
		    strncmp(environ[i], "VSS_VOLUMES=", sizeof("VSS_VOLUMES=") - 1) != 0)
			e->v[k++] = environ[i];
	e->v[k++] = e->set_id;
	e->v[k++] = e->volumes;
	e->v[k] = NULL;
	return true;
}

static void env_free(Env *e)
{
	free(e->v);
	free(e->set_id);
	free(e->volumes);
	*e = (Env){ 0 };
}

static void tail_add(RunResult *res, const char *buf, size_t n)
{
	if (n >= STDERR_TAIL) {
		res->tail_cut = res->tail_cut || res->tail_len > 0 || n > STDERR_TAIL;
		memcpy(res->tail, buf + n - STDERR_TAIL, STDERR_TAIL);
		res->tail_len = STDERR_TAIL;
		return;
	}
	if (res->tail_len + n > STDERR_TAIL) {
		size_t drop = res->tail_len + n - STDERR_TAIL;

		memmove(res->tail, res->tail + drop, res->tail_len - drop);
		res->tail_len -= drop;
		res->tail_cut = true;
	}
	memcpy(res->tail + res->tail_len, buf, n);
	res->tail_len += n;
}

/* Echo what is in a script's stderr pipe, and keep its tail if res is
 * given. Returns false at end of file (or error), true when the pipe is
 * merely empty for now. Reads at most a bounded amount, so that something
 * writing without end cannot keep the writer here. */
static bool pipe_drain(int fd, RunResult *res)
{
	char buf[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		(void)!write(STDERR_FILENO, buf, (size_t)n);
		if (res)
			tail_add(res, buf, (size_t)n);
	}
	return true;
}

static void lingering_add(Hooks *h, int fd)
{
	if (h->n_lingering == MAX_LINGERING) {
		/* Whatever still writes there gets EPIPE from now on. */
		close(h->lingering[0]);
		memmove(h->lingering, h->lingering + 1, (MAX_LINGERING - 1) * sizeof(int));
		h->n_lingering--;
	}
	h->lingering[h->n_lingering++] = fd;
}

static void lingering_remove(Hooks *h, size_t i)
{
	close(h->lingering[i]);
	memmove(h->lingering + i, h->lingering + i + 1, (h->n_lingering - i - 1) * sizeof(int));
	h->n_lingering--;
}

static _Noreturn void exec_script(const char *path, const char *arg, char *const envp[], int devnull, int err_fd)
{
	char *const argv[] = { (char *)path, (char *)arg, NULL };
	sigset_t none;
	int e;

	/* A process group of its own, so that a deadline kills all it started;
	 * the signals the writer takes through its signalfd unblocked, and
	 * SIGPIPE back to its default, as a script expects them. */
	(void)setpgid(0, 0);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGPIPE, SIG_DFL);
	if (dup2(devnull, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0 ||
	    dup2(err_fd, STDERR_FILENO) < 0)
		_exit(126);
	execve(path, argv, envp);
	e = errno;
	dprintf(STDERR_FILENO, "cannot execute %s: %s\n", path, strerror(e));
	/* The shell's statuses for "not found" and "cannot execute". */
	_exit(e == ENOENT ? 127 : 126);
}

/*
 * Run DIR/NAME ARG to its end or its deadline, echoing its stderr and
 * keeping the tail. The end of the script is its exit, not the end of its
 * stderr: a freeze script may leave a process running that holds the
 * application still until thaw (qemu-guest-agent's mysql-flush.sh does), and
 * that process keeps the pipe open. The pipe is then read from the main loop.
 */
static void run_script(Hooks *h, const char *name, const char *arg, char *const envp[], uint64_t deadline,
                       RunEnd at_deadline, bool stop_on_signal, RunResult *res)
{
	int err[2] = { -1, -1 }, devnull = -1, pidfd = -1, status = 0;
	bool exited = false, killed = false;
	uint64_t reap_deadline = 0;
	char *path = NULL;
	pid_t pid;

	*res = (RunResult){ .end = END_NOT_RUN };
	if (asprintf(&path, "%s/%s", h->dir, name) < 0) {
		path = NULL;
		res->code = ENOMEM;
		return;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(err, O_CLOEXEC) < 0) {
		res->code = errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		res->code = errno;
		goto out;
	}
	if (pid == 0)
		exec_script(path, arg, envp, devnull, err[1]);
	/* Also here, so that the group exists before any kill of it. */
	(void)setpgid(pid, pid);
	close(err[1]);
	err[1] = -1;
	(void)fcntl(err[0], F_SETFL, O_NONBLOCK);
	pidfd = pidfd_open(pid, 0);

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = err[0], .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
			{ .fd = stop_on_signal && !killed ? h->signal_fd : -1, .events = POLLIN },
		};
		uint64_t now = now_ms();
		int wait;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			exited = true;
			break;
		}
		if (!killed && now >= deadline) {
			kill(-pid, SIGKILL);
			killed = true;
			res->end = at_deadline;
			reap_deadline = now + REAP_GRACE_MS;
		}
		if (killed && now >= reap_deadline)
			break;
		wait = (int)((killed ? reap_deadline : deadline) - now);
		/* Without pidfds (before Linux 5.3), look for the exit often. */
		if (pidfd < 0 && wait > 50)
			wait = 50;
		if (poll(p, 3, wait) < 0)
			continue;
		if (p[0].revents && !pipe_drain(err[0], res)) {
			close(err[0]);
			err[0] = -1;
		}
		if (p[2].revents) {
			struct signalfd_siginfo si;

			/* Not worth finishing a freeze for a set the writer
			 * will leave at once; a thaw is never cut short. */
			if (read(h->signal_fd, &si, sizeof(si)) == sizeof(si)) {
				log_msg(LOG_NOTICE, "got SIG%s while %s %s ran: killing it",
					sigabbrev_np((int)si.ssi_signo) ?: "?", name, arg);
				h->stopping = true;
				kill(-pid, SIGKILL);
				killed = true;
				res->end = END_STOPPING;
				reap_deadline = now_ms() + REAP_GRACE_MS;
			}
		}
	}
	if (err[0] >= 0 && pipe_drain(err[0], res)) {
		lingering_add(h, err[0]);
		err[0] = -1;
	}
	if (!exited) {
		log_msg(LOG_ERR, "%s %s (pid %d) did not end after SIGKILL: leaving it behind", name, arg, (int)pid);
	} else if (!killed) {
		if (WIFEXITED(status)) {
			res->code = WEXITSTATUS(status);
			res->end = res->code ? END_EXIT : END_OK;
		} else {
			res->code = WTERMSIG(status);
			res->end = END_SIGNAL;
		}
	}
out:
	if (pidfd >= 0)
		close(pidfd);
	if (err[0] >= 0)
		close(err[0]);
	if (err[1] >= 0)
		close(err[1]);
	if (devnull >= 0)
		close(devnull);
	free(path);
	/* Children of killed scripts that were stuck at the time. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Decode one UTF-8 sequence as sd-bus will check it (D-Bus strings must be
 * valid UTF-8, or the answer to vssd cannot be sent): its length, or 0. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
	uint32_t c;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
	    (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
		return 0;
	return len;
}

/* A script's stderr tail as one printable line of valid UTF-8: line breaks
 * become "; ", anything else that is not text "?". */
static void tail_to_line(const RunResult *res, char *out, size_t size)
{
	const unsigned char *s = (const unsigned char *)res->tail;
	size_t n = res->tail_len, i = 0, o = 0;
	bool pending_break = false;

	/* A cut tail may begin inside a character. */
	if (res->tail_cut) {
		while (i < n && (s[i] & 0xc0) == 0x80)
			i++;
		o = (size_t)snprintf(out, size, "...");
	}
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	while (i < n) {
		bool text;
		size_t len;

		if (s[i] == '\n' || s[i] == '\r') {
			pending_break = true;
			i++;
			continue;
		}
		len = utf8_valid_len(s + i, n - i);
		text = len > 1 || (len == 1 && s[i] >= 0x20 && s[i] != 0x7f);
		if (o + (pending_break ? 2 : 0) + (text ? len : 1) >= size)
			break;
		if (pending_break) {
			out[o++] = ';';
			out[o++] = ' ';
			pending_break = false;
		}
		if (!text) {
			out[o++] = s[i] == '\t' ? ' ' : '?';
			i++;
			continue;
		}
		memcpy(out + o, s + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
}

/* "SCRIPT EVENT: what happened: its stderr's tail". */
static void describe(const Hooks *h, const char *name, const char *arg, const RunResult *res, char *out,
                     size_t size)
{
	char tail[2 * STDERR_TAIL + 8];
	size_t o;

	o = (size_t)snprintf(out, size, "%s %s: ", name, arg);
	if (o >= size)
		return;
	switch (res->end) {
	case END_OK:
		snprintf(out + o, size - o, "success");
		break;
	case END_EXIT:
		snprintf(out + o, size - o, "exit %d", res->code);
		break;
	case END_SIGNAL:
		snprintf(out + o, size - o, "killed by SIG%s", sigabbrev_np(res->code) ?: "?");
		break;
	case END_TIMEOUT:
		snprintf(out + o, size - o, "still running after %u s: killed", h->script_timeout_ms / 1000);
		break;
	case END_BUDGET:
		snprintf(out + o, size - o, "still running when the freeze timeout (%u s) was nearly over: killed",
			 h->freeze_timeout_ms / 1000);
		break;
	case END_STOPPING:
		snprintf(out + o, size - o, "killed: the writer is stopping");
		break;
	case END_NOT_RUN:
		snprintf(out + o, size - o, "cannot run: %s", strerror(res->code));
		break;
	}
	tail_to_line(res, tail, sizeof(tail));
	o = strlen(out);
	if (*tail && o < size)
		snprintf(out + o, size - o, ": %s", tail);
}

/* Whether a retry may help is the script's to say: EX_TEMPFAIL (sysexits.h)
 * is "not now, try again", and a script that ran out of time may well finish
 * in time the next. Any other failure is taken to recur, so that a requestor
 * does not freeze the application over and over for nothing. */
static vss_hr failure_code(const RunResult *res)
{
	if ((res->end == END_EXIT && res->code == EX_TEMPFAIL) || res->end == END_TIMEOUT || res->end == END_BUDGET ||
	    res->end == END_STOPPING)
		return VSS_E_WRITERERROR_RETRYABLE;
	return VSS_E_WRITERERROR_NONRETRYABLE;
}

/*
 * Thaw every script whose freeze began, the last first, and forget them. All
 * of them run whatever each does: one application failing to thaw is no
 * reason to leave another frozen. Returns whether one failed; the first
 * failure goes to msg and hr.
 */
static bool thaw_frozen(Hooks *h, char *const envp[], const char *why, char *msg, size_t size, vss_hr *hr)
{
	size_t n = h->n_frozen;
	bool failed = false;

	for (size_t i = n; i-- > 0;) {
		char one[MESSAGE_MAX];
		RunResult res;

		run_script(h, h->frozen[i], "thaw", envp, now_ms() + h->script_timeout_ms, END_TIMEOUT, false, &res);
		if (res.end != END_OK) {
			describe(h, h->frozen[i], "thaw", &res, one, sizeof(one));
			log_msg(LOG_WARNING, "%s: %s", why, one);
			if (!failed && msg) {
				snprintf(msg, size, "%s", one);
				*hr = failure_code(&res);
			}
			failed = true;
		}
	}
	strv_free(h->frozen, n);
	h->frozen = NULL;
	h->n_frozen = 0;
	return failed;
}

/* The freeze scripts share the writer's freeze timeout, which is also how
 * long vssd waits for the answer to freeze: they stop a little before it,
 * so that the answer says which script was slow. */
static uint64_t freeze_budget_ms(const Hooks *h)
{
	unsigned margin = h->freeze_timeout_ms >= 2000 ? 1000 : h->freeze_timeout_ms / 2;

	return h->freeze_timeout_ms - margin;
}

static bool on_freeze(vss_writer *w, void *userdata)
{
	Hooks *h = userdata;
	char msg[MESSAGE_MAX];
	char **scripts = NULL;
	uint64_t budget_end;
	RunResult res;
	size_t n = 0, i;
	Env env;
	int r;

	/* Thaw or abort ends every freeze; should one not have, its scripts
	 * are not left frozen under the new list. */
	if (h->n_frozen > 0) {
		log_msg(LOG_WARNING, "freeze: %zu scripts of an earlier freeze are still frozen: thawing them",
			h->n_frozen);
		thaw_frozen(h, environ, "freeze", NULL, 0, NULL);
	}
	r = list_scripts(h->dir, &scripts, &n);
	/* Without a script that ran, no application was made consistent. */
	if (r == -ENOENT) {
		log_msg(LOG_NOTICE, "freeze: %s does not exist: no scripts to run", h->dir);
		vss_writer_set_nothing_frozen(w, "its directory does not exist: no scripts");
		return true;
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "cannot read %s: %s", h->dir, strerror(-r));
		log_msg(LOG_ERR, "freeze: %s", msg);
		vss_writer_set_failure(w,
				       r == -ENOMEM ? VSS_E_WRITERERROR_OUTOFRESOURCES : VSS_E_WRITERERROR_NONRETRYABLE,
				       msg);
		return false;
	}
	h->frozen = calloc(n ?: 1, sizeof(char *));
	if (!h->frozen || !env_make(&env, w)) {
		free(h->frozen);
		h->frozen = NULL;
		strv_free(scripts, n);
		vss_writer_set_failure(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
		return false;
	}
	if (n == 0)
		vss_writer_set_nothing_frozen(w, "no scripts to run");
	budget_end = now_ms() + freeze_budget_ms(h);
	for (i = 0; i < n; i++) {
		uint64_t deadline = now_ms() + h->script_timeout_ms;
		RunEnd at_deadline = END_TIMEOUT;

		if (budget_end < deadline) {
			deadline = budget_end;
			at_deadline = END_BUDGET;
		}
		/* Counted as frozen before it runs: a script whose freeze
		 * fails half-way gets thaw too, as VSS tells a writer whose
		 * freeze failed to abort. */
		h->frozen[h->n_frozen++] = scripts[i];
		scripts[i] = NULL;
		run_script(h, h->frozen[i], "freeze", env.v, deadline, at_deadline, true, &res);
		if (res.end != END_OK)
			break;
	}
	strv_free(scripts, n);
	if (i == n) {
		env_free(&env);
		log_msg(LOG_INFO, "freeze: ran %zu script%s", n, n == 1 ? "" : "s");
		return true;
	}

	describe(h, h->frozen[i], "freeze", &res, msg, sizeof(msg));
	log_msg(LOG_WARNING, "freeze: %s", msg);
	log_msg(LOG_WARNING, "freeze: vetoed; thawing %zu script%s", h->n_frozen, h->n_frozen == 1 ? "" : "s");
	thaw_frozen(h, env.v, "freeze", NULL, 0, NULL);
	env_free(&env);
	vss_writer_set_failure(w, failure_code(&res), msg);
	return false;
}

/* Thaw and abort: both undo what freeze did. */
static bool thaw_all(vss_writer *w, Hooks *h, const char *event)
{
	char msg[MESSAGE_MAX];
	size_t n = h->n_frozen;
	vss_hr hr = S_OK;
	bool failed;
	Env env;

	/* Without memory for the set's variables, thaw all the same. */
	if (!env_make(&env, w))
		env.v = NULL;
	failed = thaw_frozen(h, env.v ?: environ, event, msg, sizeof(msg), &hr);
	env_free(&env);
	log_msg(failed ? LOG_WARNING : LOG_INFO, "%s: ran %zu thaw script%s%s", event, n, n == 1 ? "" : "s",
		failed ? ", not all successfully" : "");
	if (!failed)
		return true;
	vss_writer_set_failure(w, hr, msg);
	return false;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
	return thaw_all(w, userdata, "thaw");
}

/* Abort may come without a freeze, after a freeze that thawed what it had
 * frozen when it failed, or twice: then there is nothing to do. */
static bool on_abort(vss_writer *w, void *userdata)
{
	Hooks *h = userdata;

	if (h->n_frozen == 0)
		return true;
	return thaw_all(w, h, "abort");
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--level=front|back|system] [--timeout=SEC] [--freeze-timeout=SEC] [DIR]\n"
		"\n"
		"A vss writer that runs the executables of DIR (default %s), in name\n"
		"order, with \"freeze\" before every snapshot set and with \"thaw\" after it, in\n"
		"reverse order. A script that fails vetoes the set.\n"
		"\n"
		"  --level=LEVEL         when the scripts freeze among writers: front, back\n"
		"                        (the default) or system\n"
		"  --timeout=SEC         how long one script may run (default %u)\n"
		"  --freeze-timeout=SEC  how long freeze may take, and then how long until thaw\n"
		"                        must come (default %u)\n"
		"  -h, --help            show this help\n"
		"  --version             show the version\n",
		program, DEFAULT_HOOKS_DIR, DEFAULT_SCRIPT_TIMEOUT_SEC, DEFAULT_FREEZE_TIMEOUT_SEC);
}

static bool parse_seconds(const char *option, const char *s, unsigned *ret_ms)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || v < 1 || v > MAX_TIMEOUT_SEC) {
		fprintf(stderr, "%s: --%s needs a whole number of seconds from 1 to %u, not '%s'\n", program, option,
			MAX_TIMEOUT_SEC, s);
		return false;
	}
	*ret_ms = (unsigned)v * 1000;
	return true;
}

static const char *level_name(vss_application_level level)
{
	return level == VSS_APP_FRONT_END ? "front" : level == VSS_APP_SYSTEM ? "system" : "back";
}

enum { OPT_LEVEL = 0x100, OPT_TIMEOUT, OPT_FREEZE_TIMEOUT, OPT_VERSION };

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "freeze-timeout", required_argument, NULL, OPT_FREEZE_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{},
	};
	const vss_writer_callbacks callbacks = {
		.version = VSS_WRITER_CALLBACKS_VERSION,
		.freeze = on_freeze,
		.thaw = on_thaw,
		.abort = on_abort,
	};
	Hooks h = {
		.dir = DEFAULT_HOOKS_DIR,
		.script_timeout_ms = DEFAULT_SCRIPT_TIMEOUT_SEC * 1000,
		.freeze_timeout_ms = DEFAULT_FREEZE_TIMEOUT_SEC * 1000,
		.signal_fd = -1,
	};
	vss_application_level level = VSS_APP_BACK_END;
	vss_writer *w = NULL;
	struct stat st;
	sigset_t mask;
	vss_id class;
	int c, ret = EXIT_SUCCESS;
	vss_hr hr;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_LEVEL:
			if (strcmp(optarg, "front") == 0)
				level = VSS_APP_FRONT_END;
			else if (strcmp(optarg, "back") == 0)
				level = VSS_APP_BACK_END;
			else if (strcmp(optarg, "system") == 0)
				level = VSS_APP_SYSTEM;
			else {
				fprintf(stderr, "%s: --level must be front, back or system, not '%s'\n", program,
					optarg);
				return 2;
			}
			break;
		case OPT_TIMEOUT:
			if (!parse_seconds("timeout", optarg, &h.script_timeout_ms))
				return 2;
			break;
		case OPT_FREEZE_TIMEOUT:
			if (!parse_seconds("freeze-timeout", optarg, &h.freeze_timeout_ms))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case OPT_VERSION:
			printf("%s %s\n", program, VSS_VERSION);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "%s: one directory at most, not %d\n", program, argc - optind);
		return 2;
	}
	if (optind < argc)
		h.dir = argv[optind];
	if (!*h.dir) {
		fprintf(stderr, "%s: the directory is an empty string\n", program);
		return 2;
	}
	if (stat(h.dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s is not a directory\n", program, h.dir);
		return 2;
	}
	/* A package may install the service before any hook: the directory
	 * is read at every freeze. */
	if (access(h.dir, F_OK) < 0)
		log_msg(LOG_WARNING, "%s: %s; sets go ahead without scripts until it exists", h.dir, strerror(errno));

	/* SIGTERM and SIGINT through a descriptor: the writer leaves from its
	 * loop, never from inside a callback halfway through the scripts. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (h.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_msg(LOG_ERR, "cannot set up signals: %s", strerror(errno));
		return EXIT_FAILURE;
	}
	/* Stderr may be a pipe whose reader goes: not a reason to die frozen. */
	signal(SIGPIPE, SIG_IGN);

	hr = vss_id_parse(HOOK_WRITER_CLASS_ID, &class);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_new(&class, HOOK_WRITER_NAME, h.dir, VSS_UT_OTHER, VSS_ST_OTHER, level,
				    h.freeze_timeout_ms, &w);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_set_callbacks(w, &callbacks, &h);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_subscribe(w);
	if (VSS_FAILED(hr)) {
		const char *where = getenv("VSS_SOCKET"), *why = vss_last_error_message();

		/* The socket is named here: libvss's message may be empty. */
		log_msg(LOG_ERR, "cannot register with vssd at %s: %s (0x%08x)%s%s",
			where && *where ? where : "/run/vss/vssd.sock", vss_hr_name(hr), (unsigned)hr,
			why && *why ? ": " : "", why ?: "");
		vss_writer_free(w);
		close(h.signal_fd);
		return EXIT_FAILURE;
	}
	printf("ready\n");
	fflush(stdout);
	log_msg(LOG_INFO, "running the scripts of %s (level %s, %u s per script, freeze timeout %u s)",
		h.dir, level_name(level), h.script_timeout_ms / 1000, h.freeze_timeout_ms / 1000);

	while (!h.stopping) {
		struct pollfd p[2 + MAX_LINGERING];
		size_t n = h.n_lingering;

		p[0] = (struct pollfd){ .fd = vss_writer_get_fd(w), .events = POLLIN };
		p[1] = (struct pollfd){ .fd = h.signal_fd, .events = POLLIN };
		for (size_t i = 0; i < n; i++)
			p[2 + i] = (struct pollfd){ .fd = h.lingering[i], .events = POLLIN };
		if (poll(p, 2 + n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_ERR, "poll: %s", strerror(errno));
			ret = EXIT_FAILURE;
			break;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(h.signal_fd, &si, sizeof(si)) == sizeof(si)) {
				log_msg(LOG_INFO, "got SIG%s: leaving vssd", sigabbrev_np((int)si.ssi_signo) ?: "?");
				break;
			}
		}
		for (size_t i = n; i-- > 0;)
			if (p[2 + i].revents && !pipe_drain(h.lingering[i], NULL))
				lingering_remove(&h, i);
		if (p[0].revents) {
			hr = vss_writer_process(w);
			if (VSS_FAILED(hr)) {
				log_msg(LOG_ERR, "%s", vss_last_error_message());
				ret = EXIT_FAILURE;
				break;
			}
		}
	}
	/* Leaving while frozen thaws first, through abort. */
	vss_writer_free(w);
	while (h.n_lingering > 0)
		lingering_remove(&h, h.n_lingering - 1);
	close(h.signal_fd);
	return ret;
}
