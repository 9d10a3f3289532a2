#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-writers.sh [BUILD_DIR]
#
# The cost of writer rounds: time `vssadmin create shadow --for=SUBVOL`
# (context app_rollback, so every registered writer gets Identify,
# PrepareBackup, PrepareSnapshot, Freeze, Thaw, PostSnapshot and
# BackupComplete) with 0, 1, 16, 64, 128 and 256 idle vss-test-writer processes
# registered with a private vssd, on a scratch btrfs on a loop device. The
# writers log every event with a CLOCK_MONOTONIC time stamp, from which the
# freeze and thaw rounds of each set are measured, and the CPU time vssd and
# the writers spent in each set (/proc/PID/schedstat). BUILD_DIR is the meson
# build directory (default "build"; relative paths are taken from the
# repository root). Must run as root. See bench/README.md.
set -euo pipefail

RUNS=${VSS_BENCH_RUNS:-20}
WARMUP=${VSS_BENCH_WARMUP:-3}
WRITERS=${VSS_BENCH_WRITERS:-0 1 16 64 128 256}
SAMPLES=${VSS_BENCH_SAMPLES:-}   # optional: write every sample to this CSV

ME=bench-writers.sh
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

bench_init "it attaches a loop device, mounts btrfs and runs vssd" "${1:-build}"
WRITER=$BUILD/tests/vss-test-writer
bench_need_built "$WRITER"
bench_need_tools btrfs mkfs.btrfs
if [ -z "${WRITERS// /}" ]; then
	echo "$ME: VSS_BENCH_WRITERS is empty" >&2
	exit 1
fi
for n in $WRITERS; do
	case $n in
	''|*[!0-9]*) echo "$ME: VSS_BENCH_WRITERS must be numbers, got '$n'" >&2; exit 1 ;;
	esac
done

# Writers the driver left behind (it stops its own, unless it was killed):
# only PIDs it recorded, and only while they still run the test writer, so
# that a reused PID is never hit. Before vssd, so that they leave it first.
bench_hook_stop() {
	local pid cmd pids=()
	[ -f "$TMP/writers.pids" ] || return 0
	while read -r pid; do
		cmd=$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
		[[ $cmd == "$WRITER "* ]] && pids+=("$pid")
	done <"$TMP/writers.pids"
	bench_stop_pids vss-test-writer "${pids[@]}"
}

bench_begin vss-bench

# --- scratch filesystem and data set (lib.sh; the same as bench-create.sh's)
bench_btrfs_setup

# --- private vssd. Its config names a private dpkg lock: vssd takes the
# package manager's lock around the writers' freeze in this context, and
# every other vssd on the machine (test suites) takes the same
# /var/lib/dpkg/lock-frontend; waiting for them (in 50 ms steps) would be
# noise here. The lock is still taken, so its cost is measured.
: >"$TMP/dpkg-lock"
printf 'DpkgLock = %s\n' "$TMP/dpkg-lock" >"$TMP/vssd.conf"
bench_start_vssd
T_SETUP=$(date +%s%N)

# --- the bench
: >"$TMP/writers.pids"
"$PYTHON" "$HERE/writers.py" \
	--vssadmin "$VSSADMIN" --vssd "$VSSD" --writer "$WRITER" --socket "$SOCK" \
	--subvol "$MNT/data" --mnt "$MNT" --tmp "$TMP" --pidfile "$TMP/writers.pids" \
	--device "$DEV" --vssd-log "$TMP/vssd.log" --vssd-pid "$VSSD_PID" --writers "$WRITERS" \
	--runs "$RUNS" --warmup "$WARMUP" --samples "$SAMPLES"

bench_wall_time
