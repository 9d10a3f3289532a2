/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-test-writer: a writer whose behaviour the integration tests choose.
 *
 *   vss-test-writer --name=NAME --level=front|back|system [--class=ID]
 *                   [--timeout=MS] [--log=FILE] [--files=PATH]...
 *                   [--fail=EVENT[:HRNAME]] [--hang=EVENT[:MS]] [--thread]
 *                   [--subscribe-twice] [--components=N]
 *
 * It logs "NAME EVENT MONOTONIC_US" to FILE at every event, prints "ready" on
 * stdout once subscribed, and runs until SIGTERM (then unsubscribes). EVENT
 * is identify, prepare_backup, prepare_snapshot, freeze, thaw, post_snapshot,
 * abort, backup_complete or backup_shutdown. --files puts PATH (recursively)
 * in a file-group component "data"; without it the writer names no files.
 * --thread runs events on vss_writer_start_thread() instead of its own poll
 * loop on vss_writer_get_fd(). --subscribe-twice subscribes the writer a
 * second time, which must fail. --components=N adds N file-group components
 * "cN" of 10 files each, with paths of some 200 bytes under the first
 * --files PATH (or /srv): a large Identify answer.
 */

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vss/vss.h>

static const char *name = "test", *log_path, *fail_event, *hang_event;
static vss_hr fail_hr = VSS_E_WRITERERROR_RETRYABLE;
static unsigned hang_ms = 3600 * 1000;
static char *files[16];
static int n_files;
static unsigned n_components;
static volatile sig_atomic_t stop;

/* One write with O_APPEND, so that writers sharing a log do not mix their
 * lines; opened each time, as tests remove the log between sets. */
static void note(const char *event)
{
	struct timespec ts;
	char line[256];
	int fd, n;

	if (!log_path)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%s %s %lld\n", name, event, (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	if (fd < 0)
		return;
	if (n > 0)
		(void)!write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	close(fd);
}

/* Stall in the callback of event e if asked; a signal ends the stall. */
static void hang(const char *e)
{
	if (hang_event && strcmp(hang_event, e) == 0) {
		struct timespec ts = { .tv_sec = hang_ms / 1000, .tv_nsec = (long)(hang_ms % 1000) * 1000000 };

		nanosleep(&ts, NULL);
		note("hang-ended");
	}
}

/* Log, then fail, hang or succeed as asked. */
static bool event(vss_writer *w, const char *e)
{
	note(e);
	hang(e);
	if (fail_event && strcmp(fail_event, e) == 0) {
		char msg[128];

		snprintf(msg, sizeof(msg), "%s fails %s as asked", name, e);
		vss_writer_set_failure(w, fail_hr, msg);
		return false;
	}
	return true;
}

static bool on_identify(vss_writer *w, vss_metadata_builder *md, void *u)
{
	(void)w, (void)u;
	if (n_files > 0) {
		vss_metadata_add_component(md, VSS_CT_FILEGROUP, NULL, "data", "the test data", true);
		for (int i = 0; i < n_files; i++)
			vss_metadata_add_files(md, NULL, "data", files[i], "*", true);
	}
	for (unsigned c = 0; c < n_components; c++) {
		char component[32], path[512];

		snprintf(component, sizeof(component), "c%u", c);
		vss_metadata_add_component(md, VSS_CT_FILEGROUP, "components", component, "one of many", true);
		for (int f = 0; f < 10; f++) {
			snprintf(path, sizeof(path), "%s/component-%06u/a-directory-whose-name-is-long-as-real-ones-"
				 "often-are/another-level-of-the-tree-of-this-application/file-%02d-of-this-component"
				 "-with-a-long-name", n_files > 0 ? files[0] : "/srv", c, f);
			vss_metadata_add_files(md, "components", component, path, "*.dat", false);
		}
	}
	note("identify");
	hang("identify");
	return !(fail_event && strcmp(fail_event, "identify") == 0);
}

#define EVENT_CB(x)                                            \
	static bool on_##x(vss_writer *w, void *u)             \
	{                                                      \
		(void)u;                                       \
		return event(w, #x);                           \
	}
EVENT_CB(prepare_backup)
EVENT_CB(prepare_snapshot)
EVENT_CB(freeze)
EVENT_CB(thaw)
EVENT_CB(post_snapshot)
EVENT_CB(abort)
/* And what the requestor said of the data component, when it said something. */
static bool on_backup_complete(vss_writer *w, void *u)
{
	bool ok = event(w, "backup_complete"), succeeded;

	(void)u;
	if (n_files > 0 && vss_writer_get_backup_succeeded(w, NULL, "data", &succeeded) == S_OK)
		note(succeeded ? "data-backed-up" : "data-not-backed-up");
	return ok;
}
EVENT_CB(backup_shutdown)

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "name", required_argument, NULL, 'n' },   { "level", required_argument, NULL, 'l' },
		{ "class", required_argument, NULL, 'c' },  { "timeout", required_argument, NULL, 't' },
		{ "log", required_argument, NULL, 'o' },    { "files", required_argument, NULL, 'f' },
		{ "fail", required_argument, NULL, 'F' },   { "hang", required_argument, NULL, 'H' },
		{ "thread", no_argument, NULL, 'T' },       { "subscribe-twice", no_argument, NULL, 'S' },
		{ "components", required_argument, NULL, 'C' },
		{},
	};
	vss_writer_callbacks cb = {
		.version = VSS_WRITER_CALLBACKS_VERSION,
		.identify = on_identify,
		.prepare_backup = on_prepare_backup,
		.prepare_snapshot = on_prepare_snapshot,
		.freeze = on_freeze,
		.thaw = on_thaw,
		.post_snapshot = on_post_snapshot,
		.abort = on_abort,
		.backup_complete = on_backup_complete,
		.backup_shutdown = on_backup_shutdown,
	};
	vss_application_level level = VSS_APP_FRONT_END;
	vss_id class = { { 0x7e, 0x57, 0x00, 0x01 } };
	unsigned timeout = 0;
	bool thread = false, twice = false;
	vss_writer *w;
	vss_hr hr;
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		char *colon;

		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'l':
			level = strcmp(optarg, "system") == 0 ? VSS_APP_SYSTEM
				: strcmp(optarg, "back") == 0 ? VSS_APP_BACK_END
							       : VSS_APP_FRONT_END;
			break;
		case 'c':
			if (VSS_FAILED(vss_id_parse(optarg, &class)))
				return 2;
			break;
		case 't':
			timeout = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			log_path = optarg;
			break;
		case 'f':
			if (n_files < 16)
				files[n_files++] = optarg;
			break;
		case 'F':
			fail_event = optarg;
			colon = strchr(optarg, ':');
			if (colon) {
				*colon = '\0';
				if (VSS_FAILED(vss_hr_from_name(colon + 1, &fail_hr)))
					return 2;
			}
			break;
		case 'H':
			hang_event = optarg;
			colon = strchr(optarg, ':');
			if (colon) {
				*colon = '\0';
				hang_ms = (unsigned)strtoul(colon + 1, NULL, 10);
			}
			break;
		case 'T':
			thread = true;
			break;
		case 'S':
			twice = true;
			break;
		case 'C':
			n_components = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	hr = vss_writer_new(&class, name, NULL, VSS_UT_USERDATA, VSS_ST_OTHER, level, timeout, &w);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_set_callbacks(w, &cb, NULL);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_subscribe(w);
	if (VSS_SUCCEEDED(hr) && twice)
		hr = vss_writer_subscribe(w);
	if (VSS_SUCCEEDED(hr) && thread)
		hr = vss_writer_start_thread(w);
	if (VSS_FAILED(hr)) {
		fprintf(stderr, "%s: %s: %s\n", name, vss_hr_name(hr), vss_last_error_message());
		vss_writer_free(w);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		struct pollfd p = { .fd = vss_writer_get_fd(w), .events = POLLIN };

		if (thread) {
			pause();
			continue;
		}
		if (poll(&p, 1, -1) > 0 && VSS_FAILED(hr = vss_writer_process(w))) {
			fprintf(stderr, "%s: %s: %s\n", name, vss_hr_name(hr), vss_last_error_message());
			vss_writer_free(w);
			return 1;
		}
	}
	vss_writer_free(w);
	return 0;
}
