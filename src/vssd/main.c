/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vss/backup.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "vssd/manager.h"

/* Where `meson install` puts the default configuration: SYSCONFDIR/vss. */
#ifndef VSS_CONFIG_FILE
#define VSS_CONFIG_FILE "/etc/vss/vssd.conf"
#endif

static void help(void)
{
	printf("Usage: vssd [OPTIONS]\n\n"
	       "The vss coordinator: creates snapshot sets for requestors over D-Bus.\n\n"
	       "  -s, --socket=PATH     listen on PATH (default " VSS_DEFAULT_SOCKET ")\n"
	       "  -r, --runtime-dir=DIR freeze marker and default exposures in DIR\n"
	       "                        (default: the socket's directory)\n"
	       "  -d, --state-dir=DIR   catalog and lock in DIR (default /var/lib/vss)\n"
	       "  -c, --config=FILE     configuration (default " VSS_CONFIG_FILE ")\n"
	       "      --log-level=LEVEL debug, info, notice, warning or err (default info)\n"
	       "  -h, --help            show this help\n"
	       "      --version         show the version\n");
}

static int parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING }, { "err", LOG_ERR },
	};

	for (size_t i = 0; i < ELEMENTSOF(levels); i++)
		if (streq(s, levels[i].name))
			return levels[i].level;
	return -1;
}

/* path, absolute: relative to the directory vssd was started in. */
static char *absolute(const char *path)
{
	_cleanup_free_ char *cwd = NULL;
	char *r;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd || asprintf(&r, "%s/%s", cwd, path) < 0)
		return NULL;
	return r;
}

/* A connection through the relay takes three descriptors, and MaxConnections
 * (1024) of them would not fit under the usual soft limit of 1024. vssd uses
 * epoll, never select(), so it may take what the hard limit allows; what it
 * starts (journalctl) needs no more than it does. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = MIN(rl.rlim_max, (rlim_t)65536);
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warning_errno(errno, "cannot raise the limit of open files to %llu: %m",
				  (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	const char *socket_path = VSS_DEFAULT_SOCKET, *state_dir = "/var/lib/vss", *runtime_dir = NULL;
	const char *config_path = VSS_CONFIG_FILE;
	_cleanup_free_ char *socket_abs = NULL, *state_abs = NULL, *config_abs = NULL, *runtime_abs = NULL;
	bool config_given = false;
	Manager *m = NULL;
	int c, r, level;

	log_set_prefix_ident("vssd");
	while ((c = getopt_long(argc, argv, "s:r:d:c:h", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'r':
			runtime_dir = optarg;
			break;
		case 'd':
			state_dir = optarg;
			break;
		case 'c':
			config_path = optarg;
			config_given = true;
			break;
		case 'L':
			level = parse_level(optarg);
			if (level < 0) {
				fprintf(stderr, "vssd: unknown log level \"%s\"\n", optarg);
				return EXIT_FAILURE;
			}
			log_set_max_level(level);
			break;
		case 'h':
			help();
			return EXIT_SUCCESS;
		case 'V':
			printf("vssd %s\n", VSS_VERSION);
			return EXIT_SUCCESS;
		default:
			return EXIT_FAILURE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vssd: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_FAILURE;
	}

	/* Nothing of vssd's may depend on where it was started (a relative
	 * path from a client is refused, never resolved here): its own paths
	 * are made absolute, and it works from "/". */
	socket_abs = absolute(socket_path);
	state_abs = absolute(state_dir);
	config_abs = absolute(config_path);
	runtime_abs = runtime_dir ? absolute(runtime_dir) : NULL;
	if (!socket_abs || !state_abs || !config_abs || (runtime_dir && !runtime_abs)) {
		log_error_errno(ENOMEM, "cannot start: %m");
		return EXIT_FAILURE;
	}
	if (chdir("/") < 0) {
		log_error_errno(errno, "cannot change to /: %m");
		return EXIT_FAILURE;
	}
	raise_fd_limit();
	r = manager_new(&m);
	if (r < 0) {
		log_error_errno(r, "cannot start: %m");
		return EXIT_FAILURE;
	}
	/* Schedules live beside the configuration unless it says where. */
	{
		_cleanup_free_ char *dir = path_parent(config_abs);
		char *schedules = NULL;

		if (!dir || asprintf(&schedules, "%s/schedules.d", streq(dir, "/") ? "" : dir) < 0) {
			log_error_errno(ENOMEM, "cannot start: %m");
			manager_free(m);
			return EXIT_FAILURE;
		}
		free(m->config.schedules_dir);
		m->config.schedules_dir = schedules;
	}
	r = config_load(&m->config, config_abs, config_given);
	if (r >= 0)
		r = manager_start(m, socket_abs, runtime_abs, state_abs);
	if (r >= 0)
		r = manager_run(m);
	manager_free(m);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
