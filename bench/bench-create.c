/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-bench-create: the in-process half of bench-create.sh. It times a whole
 * one-volume set made through libvss (no process start) against a bare
 * btrfs_util_create_snapshot() of the same subvolume, in interleaved pairs,
 * and prints one line per sample for driver.py to summarize:
 *
 *     vss-bench-create SUBVOL RAW_DIR RUNS WARMUP
 *
 *     sample PAIR POS KIND NSEC [PHASE=NSEC...]
 *
 * KIND is "vss" or "raw". The vss line also gives the time of each call of
 * the set, to show where it goes. vssd's socket is $VSS_SOCKET. After each
 * timed run the snapshot is deleted and the filesystem settled (committed,
 * deleted subvolumes cleaned), outside the timing, as bench-create.sh does for
 * its whole-process runs.
 */

#include <btrfsutil.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vss/vss.h>

#define SETTLE_TIMEOUT_NSEC (30ULL * 1000000000ULL)

static uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "vss-bench-create: %s: %s\n", what, why);
	exit(EXIT_FAILURE);
}

static void die_hr(const char *what, vss_hr hr)
{
	char why[1200];

	snprintf(why, sizeof(why), "%s (0x%08x): %s", vss_hr_name(hr), (unsigned)hr, vss_last_error_message());
	die(what, why);
}

static void die_btrfs(const char *what, enum btrfs_util_error e)
{
	char why[512];

	snprintf(why, sizeof(why), "%s (%s)", btrfs_util_strerror(e), strerror(errno));
	die(what, why);
}

/* An operation to its end, as a backup program would wait for it. */
static void run_async(const char *what, vss_hr (*start)(vss_backup *b, vss_async **ret), vss_backup *b)
{
	vss_hr hr, status = VSS_E_UNEXPECTED;
	vss_async *a;

	hr = start(b, &a);
	if (VSS_FAILED(hr))
		die_hr(what, hr);
	hr = vss_async_wait(a, VSS_INFINITE);
	if (VSS_SUCCEEDED(hr))
		hr = vss_async_query_status(a, &status);
	vss_async_release(a);
	if (VSS_FAILED(hr))
		die_hr(what, hr);
	if (status != VSS_S_ASYNC_FINISHED)
		die_hr(what, status);
}

enum {
	PHASE_CONNECT,	/* vss_create_backup_components */
	PHASE_INIT,	/* InitializeForBackup, SetContext, SetBackupState */
	PHASE_METADATA,	/* GatherWriterMetadata, waited for */
	PHASE_START,	/* StartSnapshotSet */
	PHASE_ADD,	/* AddToSnapshotSet */
	PHASE_PREPARE,	/* PrepareForBackup, waited for */
	PHASE_DO,	/* DoSnapshotSet, waited for */
	N_PHASES,
};

static const char *const phase_name[N_PHASES] = { "connect", "init", "metadata", "start", "add", "prepare", "do" };

/* Wait until the filesystem has committed and cleaned what was deleted, so
 * that no run pays for the one before. */
static void settle(int mnt_fd)
{
	uint64_t deadline = now_nsec() + SETTLE_TIMEOUT_NSEC;
	enum btrfs_util_error e;

	for (;;) {
		uint64_t *ids = NULL;
		size_t n = 0;

		e = btrfs_util_sync_fd(mnt_fd);
		if (e != BTRFS_UTIL_OK)
			die_btrfs("sync", e);
		e = btrfs_util_deleted_subvolumes_fd(mnt_fd, &ids, &n);
		free(ids);
		if (e != BTRFS_UTIL_OK)
			die_btrfs("list deleted subvolumes", e);
		if (n == 0)
			return;
		if (now_nsec() > deadline)
			die("settle", "deleted subvolumes not cleaned within 30 s");
		usleep(1000);
	}
}

static uint64_t vss_once(const char *subvol, uint64_t phase[N_PHASES])
{
	vss_id set_id, snap_id, failed;
	int32_t deleted = 0;
	vss_backup *b;
	uint64_t t0, t;
	vss_hr hr;

	t0 = t = now_nsec();
#define STEP(p, call)                                        \
	do {                                                 \
		hr = (call);                                 \
		if (VSS_FAILED(hr))                          \
			die_hr(phase_name[p], hr);           \
		phase[p] = now_nsec() - t;                   \
		t += phase[p];                               \
	} while (0)
	STEP(PHASE_CONNECT, vss_create_backup_components(&b));
	hr = vss_backup_initialize_for_backup(b, NULL);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_set_context(b, VSS_CTX_APP_ROLLBACK);
	STEP(PHASE_INIT, VSS_FAILED(hr) ? hr : vss_backup_set_backup_state(b, false, false, VSS_BT_COPY, false));
	run_async("GatherWriterMetadata", vss_backup_gather_writer_metadata, b);
	phase[PHASE_METADATA] = now_nsec() - t;
	t += phase[PHASE_METADATA];
	STEP(PHASE_START, vss_backup_start_snapshot_set(b, &set_id));
	STEP(PHASE_ADD, vss_backup_add_to_snapshot_set(b, subvol, NULL, &snap_id));
	run_async("PrepareForBackup", vss_backup_prepare_for_backup, b);
	phase[PHASE_PREPARE] = now_nsec() - t;
	t += phase[PHASE_PREPARE];
	run_async("DoSnapshotSet", vss_backup_do_snapshot_set, b);
	phase[PHASE_DO] = now_nsec() - t;
	t += phase[PHASE_DO];
#undef STEP

	hr = vss_backup_delete_snapshots(b, &set_id, VSS_OBJECT_SNAPSHOT_SET, true, &deleted, &failed);
	if (VSS_FAILED(hr) || deleted != 1)
		die_hr("DeleteSnapshots", VSS_FAILED(hr) ? hr : VSS_E_UNEXPECTED);
	vss_backup_release(b);
	return t - t0;
}

static uint64_t raw_once(int subvol_fd, int raw_fd, unsigned n)
{
	enum btrfs_util_error e;
	char name[32];
	uint64_t t0, t1;

	snprintf(name, sizeof(name), "inproc-%04u", n);
	t0 = now_nsec();
	e = btrfs_util_create_snapshot_fd2(subvol_fd, raw_fd, name, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL);
	t1 = now_nsec();
	if (e != BTRFS_UTIL_OK)
		die_btrfs("btrfs_util_create_snapshot", e);
	e = btrfs_util_delete_subvolume_fd(raw_fd, name, 0);
	if (e != BTRFS_UTIL_OK)
		die_btrfs("btrfs_util_delete_subvolume", e);
	return t1 - t0;
}

static unsigned parse_count(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 100000)
		die(what, "not a count");
	return (unsigned)v;
}

int main(int argc, char *argv[])
{
	int subvol_fd, raw_fd;
	unsigned runs, warmup, raw_n = 0;

	if (argc != 5) {
		fprintf(stderr, "Usage: vss-bench-create SUBVOL RAW_DIR RUNS WARMUP\n");
		return EXIT_FAILURE;
	}
	subvol_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (subvol_fd < 0)
		die(argv[1], strerror(errno));
	raw_fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (raw_fd < 0)
		die(argv[2], strerror(errno));
	runs = parse_count(argv[3], "RUNS");
	warmup = parse_count(argv[4], "WARMUP");

	for (unsigned i = 0; i < warmup + runs; i++) {
		bool counted = i >= warmup;
		unsigned pair = i - warmup;

		/* AB, BA, AB...: neither kind always runs first. */
		for (unsigned pos = 0; pos < 2; pos++) {
			bool vss = (pos == 0) == (i % 2 == 0);
			uint64_t phase[N_PHASES], dt;

			if (vss)
				dt = vss_once(argv[1], phase);
			else
				dt = raw_once(subvol_fd, raw_fd, ++raw_n);
			settle(raw_fd);
			if (!counted)
				continue;
			printf("sample %u %u %s %" PRIu64, pair, pos, vss ? "vss" : "raw", dt);
			if (vss)
				for (unsigned p = 0; p < N_PHASES; p++)
					printf(" %s=%" PRIu64, phase_name[p], phase[p]);
			printf("\n");
		}
	}
	if (fflush(stdout) != 0)
		die("stdout", strerror(errno));
	return EXIT_SUCCESS;
}
