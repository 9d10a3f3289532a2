#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-age.sh [BUILD_DIR]
#
# Measure how the hold window of a set of image volumes changes as the
# volumes age: N ext4 image volumes on a scratch XFS (reflink), each under a
# steady random writer (fio) for the whole run, a set of all of them every
# few seconds, at most a few sets kept (the oldest deleted after each
# create). Reports, per window of 20 sets, the sets that failed, the hold
# window, the extents of the live images and the clones, the host's free
# space, and the writers' latency against a baseline without sets.
# BUILD_DIR is the meson build directory (default "build"; relative paths are
# taken from the repository root). Must run as root. See bench/README.md.
set -euo pipefail

NVOL=${VSS_BENCH_VOLUMES:-8}
SETS=${VSS_BENCH_SETS:-200}
INTERVAL=${VSS_BENCH_INTERVAL:-2}
KEEP=${VSS_BENCH_KEEP:-5}
BASELINE=${VSS_BENCH_BASELINE_SEC:-20}
FILE_MIB=${VSS_BENCH_FILE_MIB:-32}
WINDOW=${VSS_BENCH_WINDOW:-20}
SAMPLES=${VSS_BENCH_SAMPLES:-}       # optional: write every sample to this CSV
FIO_JOB=${VSS_BENCH_FIO_JOB:---rw=randwrite --bs=4k --fsync=32 --rate=2m --ioengine=psync}
HOLD_TIMEOUT=${VSS_BENCH_HOLD_TIMEOUT_MSEC:-}   # optional: vssd's HoldTimeoutMSec
GUEST_MIB=64
STOP_AFTER=10                        # sets failed in a row that end the run

ME=bench-age.sh
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

bench_init "it attaches loop devices, mounts filesystems that vssd freezes and runs vssd" "${1:-build}"
bench_need_tools --hint "make deps installs it" mkfs.xfs mkfs.ext4 xfs_info xfs_spaceman xfs_db fsfreeze fio

number() {   # NAME VALUE MIN MAX: a whole number in [MIN, MAX]
	case $2 in
	''|*[!0-9]*) echo "$ME: $1 must be a whole number from $3 to $4 (got '$2')" >&2; exit 1 ;;
	esac
	if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
		echo "$ME: $1 must be a whole number from $3 to $4 (got '$2')" >&2
		exit 1
	fi
}
number VSS_BENCH_VOLUMES "$NVOL" 1 64
number VSS_BENCH_SETS "$SETS" 1 100000
number VSS_BENCH_KEEP "$KEEP" 1 100
number VSS_BENCH_BASELINE_SEC "$BASELINE" 1 3600
number VSS_BENCH_FILE_MIB "$FILE_MIB" 1 48
number VSS_BENCH_WINDOW "$WINDOW" 1 100000
if [ -n "$HOLD_TIMEOUT" ]; then
	number VSS_BENCH_HOLD_TIMEOUT_MSEC "$HOLD_TIMEOUT" 1 3600000
fi
case $INTERVAL in
''|.|*[!0-9.]*|*.*.*) echo "$ME: VSS_BENCH_INTERVAL must be a number of seconds (got '$INTERVAL')" >&2; exit 1 ;;
esac

# Every image may end up in KEEP + 1 full copies (the live one and one per
# kept clone, once random writes have unshared all of it), plus room for XFS.
HOST_MIB=$(( NVOL * GUEST_MIB * (KEEP + 2) + 2048 ))
if [ "$HOST_MIB" -lt 16384 ]; then
	HOST_MIB=16384
fi

FIO_PID=

# Thaw first: fio or vssd blocked on a frozen guest could not stop.
bench_hook_stop() {
	bench_thaw_guests
	bench_stop_pids fio "$FIO_PID"
	FIO_PID=
}

bench_hook_release() {
	if bench_failed "$1"; then
		bench_log_tail "$TMP/fio.log" 10 "fio's messages"
	fi
	bench_release_guests
}

bench_begin vss-bench-age

# --- host and guests: NVOL ext4 images on a scratch XFS, mounted at
# $TMP/v00.., each with its writer's file written once now, so that fio
# only overwrites, from its first write.
bench_image_volumes "${HOST_MIB}M" "${GUEST_MIB}M"
for i in $(seq 0 $((NVOL - 1))); do
	dd if=/dev/zero of="$(bench_guest "$i")/load.dat" bs=1M count="$FILE_MIB" status=none
done
sync

# --- private vssd. The host XFS is itself on a loop device, so the guest
# images are nested two levels deep. The dpkg lock is private, so that other
# vssd instances on the machine cannot make a set wait.
printf 'MaxImageNesting = 2\nDpkgLock = %s\n' "$TMP/dpkg-lock" >"$TMP/vssd.conf"
if [ -n "$HOLD_TIMEOUT" ]; then
	echo "HoldTimeoutMSec = $HOLD_TIMEOUT" >>"$TMP/vssd.conf"
fi
bench_start_vssd
sleep 1   # let the setup's writeback settle
T_SETUP=$(date +%s%N)

# --- the writers: one fio job per volume, for the whole run (baseline and
# sets), each write's completion latency logged with its time (ms since the
# epoch, so that the driver can cut the log by set window).
FIO_ARGS=()
for i in $(seq 0 $((NVOL - 1))); do
	FIO_ARGS+=("--name=$(basename "$(bench_guest "$i")")" "--filename=$(bench_guest "$i")/load.dat")
done
# shellcheck disable=SC2086
setsid fio --thread --size="${FILE_MIB}m" --time_based --runtime=1000000 $FIO_JOB \
	--write_lat_log="$TMP/lat" --log_avg_msec=0 --log_unix_epoch=1 --disable_slat=1 --disable_lat=1 \
	--output-format=json --output="$TMP/fio.json" "${FIO_ARGS[@]}" >"$TMP/fio.log" 2>&1 &
FIO_PID=$!
sleep 2
if ! kill -0 "$FIO_PID" 2>/dev/null; then
	echo "$ME: fio exited at start" >&2
	exit 1
fi

DRIVER=("$PYTHON" "$HERE/age.py")
"${DRIVER[@]}" run --tmp "$TMP" --vssadmin "$VSSADMIN" --socket "$SOCK" --hostdev "$DEV" \
	--fio-pid "$FIO_PID" --n "$NVOL" --sets "$SETS" --interval "$INTERVAL" --keep "$KEEP" \
	--window "$WINDOW" --baseline "$BASELINE" --stop-after "$STOP_AFTER" --out "$TMP/run.json"

# fio writes its latency logs and its summary when it stops; thaw first, in
# case anything were left frozen (vssd thaws every set it freezes).
bench_thaw_guests
bench_stop_pids fio "$FIO_PID"
FIO_PID=

rc=0
"${DRIVER[@]}" report --run "$TMP/run.json" --lat-prefix "$TMP/lat" --fio "$TMP/fio.json" \
	--vssd "$VSSD" --samples "$SAMPLES" \
	--fio-desc "one writer per volume, fio $FIO_JOB on a $FILE_MIB MiB file, time_based, for the whole run" \
	--host-desc "$HOST_MIB MiB sparse image on $DEV, XFS (reflink=1)" \
	--guest-desc "$NVOL x $GUEST_MIB MiB ext4 images on it, each on its own loop device" || rc=$?

bench_wall_time
# 2: the run was cut short by sets failing in a row (the report says so).
if [ "$rc" -ne 0 ]; then
	exit "$rc"
fi
