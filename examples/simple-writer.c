/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * simple-writer DATADIR: an application made backup-consistent by a writer.
 * Every 5 ms it takes one step of an update that spans two files: raise the
 * counter and write it to DATADIR/a, then write it to DATADIR/b. A snapshot
 * cut between the two steps would keep the files disagreeing. As a writer,
 * the app hears of every snapshot set of its data: it stops at freeze, with
 * the update finished, and goes on at thaw.
 */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <vss/vss.h>

/* One id per application, the same every run: backup tools know it by this. */
static const vss_id app_class = { { 0x5a, 0x3c, 0x1e, 0x07, 0x9b, 0x42, 0x4d, 0x21,
				    0x8f, 0x60, 0x2a, 0x11, 0xc4, 0x73, 0xe5, 0x90 } };

static const char *data_dir;
static int fds[2];              /* DATADIR/a and DATADIR/b */
static unsigned long counter;
/* half_done: a holds counter, b not yet; frozen: the work loop honours it. */
static bool half_done, frozen;

static void work_step(void)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%020lu\n", half_done ? counter : ++counter);

	/* Fixed width, so a number is never torn; fsync, so each step is durable. */
	if (pwrite(fds[half_done], buf, n, 0) != n || fsync(fds[half_done]) < 0)
		perror("simple-writer: write");
	half_done = !half_done;
}

/* What the data is: a backup tool reads this to know what to copy. */
static bool on_identify(vss_writer *w, vss_metadata_builder *md, void *u)
{
	return VSS_SUCCEEDED(vss_metadata_add_component(md, VSS_CT_FILEGROUP, NULL, "counter", NULL, true)) &&
	       VSS_SUCCEEDED(vss_metadata_add_files(md, NULL, "counter", data_dir, "*", true));
}

/* Slow work belongs here, before the freeze window opens: an application
 * with buffered writes would flush the bulk of them now. */
static bool on_prepare_snapshot(vss_writer *w, void *u)
{
	return fsync(fds[0]) == 0 && fsync(fds[1]) == 0;
}

/* Callbacks run on this thread, between work steps: freeze finishes a
 * half-done update, flushes, and keeps the data so until thaw. */
static bool on_freeze(vss_writer *w, void *u)
{
	if (half_done)
		work_step();
	frozen = fsync(fds[0]) == 0 && fsync(fds[1]) == 0;
	if (!frozen) /* vssd then sends abort; the requestor may retry the set */
		vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE, "cannot flush the counter files");
	return frozen;
}

/* Thaw and abort both mean "write again": abort comes instead of thaw when
 * the set fails, or when the freeze outlasts the writer's timeout. */
static bool on_resume(vss_writer *w, void *u)
{
	frozen = false;
	return true;
}

int main(int argc, char **argv)
{
	vss_writer_callbacks cb = {
		.version = VSS_WRITER_CALLBACKS_VERSION, .identify = on_identify, .abort = on_resume,
		.prepare_snapshot = on_prepare_snapshot, .freeze = on_freeze, .thaw = on_resume,
	};
	struct itimerspec tick = { .it_interval.tv_nsec = 5000000, .it_value.tv_nsec = 5000000 };
	struct pollfd p[3] = { [0 ... 2] = { .events = POLLIN } };
	vss_writer *w = NULL;
	sigset_t sigs;
	uint64_t ticks;
	vss_hr hr;

	if (argc != 2 || !(data_dir = realpath(argv[1], NULL)) || chdir(data_dir) < 0 ||
	    (fds[0] = open("a", O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0 ||
	    (fds[1] = open("b", O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "usage: simple-writer DATADIR (a writable directory)\n");
		return 2;
	}
	/* SIGTERM as a descriptor: seen between events, never inside one. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	p[0].fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	p[1].fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (p[0].fd < 0 || p[1].fd < 0 || timerfd_settime(p[1].fd, 0, &tick, NULL) < 0) {
		perror("simple-writer");
		return 1;
	}
	/* The data directory as instance name tells two copies of the app apart. */
	hr = vss_writer_new(&app_class, "simple-writer", data_dir, VSS_UT_USERDATA, VSS_ST_OTHER,
			    VSS_APP_FRONT_END, 0, &w);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_set_callbacks(w, &cb, NULL);
	if (VSS_SUCCEEDED(hr))
		hr = vss_writer_subscribe(w); /* events may come from now on */
	if (VSS_FAILED(hr)) {
		fprintf(stderr, "simple-writer: %s: %s\n", vss_hr_name(hr), vss_last_error_message());
		vss_writer_free(w);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	/* One loop for both: vssd's events and the application's own work. */
	p[2].fd = vss_writer_get_fd(w);
	while (poll(p, 3, -1) >= 0 && !p[0].revents) {
		if (p[1].revents && read(p[1].fd, &ticks, sizeof(ticks)) > 0 && !frozen)
			work_step();
		/* Fails once vssd has gone (were we frozen, libvss has run abort
		 * and resumed us): work on, as an app must outlive its vssd. */
		if (p[2].revents && VSS_FAILED(vss_writer_process(w)))
			p[2].fd = -1;
	}
	/* Unsubscribes; had we been frozen, abort would run first and resume us. */
	vss_writer_free(w);
	return 0;
}
