/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/signalfd.h>
#include <sys/vfs.h>
#include <syslog.h>
#include <unistd.h>

#include <vss/vss.h>

#include "writer-support.h"

static const char *program = "vss-writer";

void ws_set_program(const char *name)
{
	program = name;
}

void ws_say(int priority, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "<%d>%s: ", priority, program);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool ws_path_is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return path[0] == '/';
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

char *ws_resolve(const char *base_or_null, const char *path)
{
	char *joined = NULL, *real;
	int saved;

	if (path[0] != '/' && base_or_null) {
		if (asprintf(&joined, "%s/%s", base_or_null, path) < 0) {
			errno = ENOMEM;
			return NULL;
		}
		path = joined;
	}
	real = realpath(path, NULL);
	saved = errno;
	free(joined);
	errno = saved;
	return real;
}

const char *ws_set_id_text(const vss_writer *w, char buf[VSS_ID_STRING_MAX])
{
	vss_id id;

	if (VSS_FAILED(vss_writer_get_snapshot_set_id(w, &id)))
		return "?";
	return vss_id_format(&id, buf);
}

/* The volume of the set that holds path: the deepest one above it. */
static const char *volume_of(const vss_writer *w, const char *path)
{
	const char *best = NULL;

	for (const char *const *v = vss_writer_get_volumes(w); *v; v++)
		if (ws_path_is_below(path, *v) && (!best || strlen(*v) > strlen(best)))
			best = *v;
	return best;
}

const char *ws_btrfs_cut_apart(const vss_writer *w, const char *const *paths, size_t n_paths,
			       size_t *ret_n_volumes)
{
	const char *vols[n_paths + 1];
	size_t n = 0;

	for (size_t i = 0; i < n_paths; i++) {
		const char *v = paths[i] ? volume_of(w, paths[i]) : NULL;
		bool seen = false;

		if (!v)
			continue;
		for (size_t k = 0; k < n; k++)
			seen = seen || strcmp(vols[k], v) == 0;
		if (!seen)
			vols[n++] = v;
	}
	*ret_n_volumes = n;
	for (size_t k = 0; n > 1 && k < n; k++) {
		struct statfs sf;

		if (statfs(vols[k], &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC)
			return vols[k];
	}
	return NULL;
}

bool ws_parse_freeze_timeout(const char *s, uint32_t *ret_ms)
{
	unsigned long sec;
	char *end;

	errno = 0;
	sec = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || sec == 0 || sec > UINT32_MAX / 1000)
		return false;
	*ret_ms = (uint32_t)sec * 1000;
	return true;
}

int ws_signals(void)
{
	sigset_t mask;
	int sfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		ws_say(LOG_ERR, "cannot handle signals: %s", strerror(errno));
		return -1;
	}
	return sfd;
}

vss_writer *ws_subscribe(const char *class_id, const char *name, const char *instance_or_null,
			 uint32_t freeze_timeout_ms, const vss_writer_callbacks *cb, void *userdata)
{
	vss_writer *w = NULL;
	vss_id id;
	vss_hr hr;

	hr = vss_id_parse(class_id, &id);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_new(&id, name, instance_or_null, VSS_UT_USERDATA, VSS_ST_TRANSACTEDDB, VSS_APP_BACK_END,
				    freeze_timeout_ms, &w);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_set_callbacks(w, cb, userdata);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_subscribe(w);
	if (VSS_FAILED(hr)) {
		ws_say(LOG_ERR, "cannot subscribe to vssd: %s: %s", vss_hr_name(hr), vss_last_error_message());
		vss_writer_free(w);
		return NULL;
	}
	ws_say(LOG_INFO, "subscribed for %s", instance_or_null ?: "?");
	return w;
}

bool ws_on_backup_complete(vss_writer *w, void *userdata)
{
	char buf[VSS_ID_STRING_MAX];

	(void)userdata;
	ws_say(LOG_INFO, "set %s complete", ws_set_id_text(w, buf));
	return true;
}

int ws_serve(vss_writer *w, int sfd)
{
	printf("ready\n");
	fflush(stdout);

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = vss_writer_get_fd(w), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ws_say(LOG_ERR, "poll: %s", strerror(errno));
			return EXIT_FAILURE;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				ws_say(LOG_INFO, "%s: unsubscribing", strsignal((int)si.ssi_signo));
			return EXIT_SUCCESS;
		}
		/* vssd is gone: the library has run abort already. */
		if (p[0].revents && VSS_FAILED(vss_writer_process(w))) {
			ws_say(LOG_ERR, "%s", vss_last_error_message());
			return EXIT_FAILURE;
		}
	}
}
