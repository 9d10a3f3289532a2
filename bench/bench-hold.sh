#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-hold.sh [BUILD_DIR]
#
# Measure how long vss holds writes when it cuts a set of image volumes
# (hold_window_us of sets of 1, 4, 16 and 64 loop-mounted ext4 volumes)
# against a hand-made FIFREEZE -> FICLONE -> FITHAW of one volume, idle and
# under a fio write load, on a scratch XFS (reflink) on a loop device.
# BUILD_DIR is the meson build directory (default "build"; relative paths are
# taken from the repository root). Must run as root. See bench/README.md.
set -euo pipefail

RUNS=${VSS_BENCH_RUNS:-20}
WARMUP=${VSS_BENCH_WARMUP:-1}
SAMPLES=${VSS_BENCH_SAMPLES:-}       # optional: write every sample to this CSV
LOADED=${VSS_BENCH_LOADED:-16}       # fio writers, on v00..: the 16-volume set
FIO_JOB=${VSS_BENCH_FIO_JOB:---rw=write --bs=16k --rate=2m --fsync=8 --ioengine=psync}
BREAKDOWN=${VSS_BENCH_BREAKDOWN:-1}  # 0: skip "where the time goes"
NVOL=64
GUEST_SIZE=64M
LOAD_MIB=16                          # each writer's file
HOST_SIZE=16G

ME=bench-hold.sh
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

bench_init "it attaches loop devices, mounts and freezes filesystems and runs vssd" "${1:-build}"
bench_need_tools --hint "make deps installs it" mkfs.xfs mkfs.ext4 xfs_info filefrag fsfreeze fio
case $LOADED in
''|*[!0-9]*) echo "$ME: VSS_BENCH_LOADED must be a number from 1 to $NVOL" >&2; exit 1 ;;
esac
if [ "$LOADED" -lt 1 ] || [ "$LOADED" -gt "$NVOL" ]; then
	echo "$ME: VSS_BENCH_LOADED must be a number from 1 to $NVOL" >&2
	exit 1
fi

FIO_PID=

# Thaw first: fio or vssd blocked on a frozen guest could not stop.
bench_hook_stop() {
	bench_thaw_guests
	bench_stop_pids fio "$FIO_PID"
}

bench_hook_release() {
	if bench_failed "$1"; then
		bench_log_tail "$TMP/fio.log" 10 "fio's messages"
	fi
	bench_release_guests
}

bench_begin vss-bench-hold

# --- host and guests: 64 ext4 images on a scratch XFS, mounted at
# $TMP/v00..v63.
bench_image_volumes "$HOST_SIZE" "$GUEST_SIZE"
mkdir "$TMP/host/raw"
# The writers' files exist from the start, so the idle and the loaded phase
# see the same images, and fio only overwrites.
for i in $(seq 0 $((LOADED - 1))); do
	dd if=/dev/zero of="$(bench_guest "$i")/load.dat" bs=1M count="$LOAD_MIB" status=none
done
sync

# --- private vssd. The host XFS is itself on a loop device, so the guest
# images are nested two levels deep.
echo "MaxImageNesting = 2" >"$TMP/vssd.conf"
bench_start_vssd
sleep 1   # let the setup's writeback settle
T_SETUP=$(date +%s%N)

DRIVER=("$PYTHON" "$HERE/hold.py")
COMMON=(--tmp "$TMP" --vssadmin "$VSSADMIN" --socket "$SOCK" --runs "$RUNS" --warmup "$WARMUP")

# --- idle
"${DRIVER[@]}" measure "${COMMON[@]}" --phase idle --out "$TMP/idle.json"

# --- under load: one fio writer per loaded volume, in the background for
# this phase only.
FIO_ARGS=()
for i in $(seq 0 $((LOADED - 1))); do
	FIO_ARGS+=("--name=$(basename "$(bench_guest "$i")")" "--filename=$(bench_guest "$i")/load.dat")
done
# shellcheck disable=SC2086
setsid fio --thread --size="${LOAD_MIB}m" --time_based --runtime=3600 $FIO_JOB \
	--output-format=json --output="$TMP/fio.json" "${FIO_ARGS[@]}" >"$TMP/fio.log" 2>&1 &
FIO_PID=$!
sleep 3
if ! kill -0 "$FIO_PID" 2>/dev/null; then
	echo "$ME: fio exited at start" >&2
	exit 1
fi
"${DRIVER[@]}" measure "${COMMON[@]}" --phase load --out "$TMP/load.json"
if ! kill -0 "$FIO_PID" 2>/dev/null; then
	echo "$ME: fio stopped during the loaded phase" >&2
	exit 1
fi
bench_stop_pids fio "$FIO_PID"
FIO_PID=
# Clones make each later overwrite a copy-on-write, so the loaded images
# fragment on the host, and FICLONE's cost grows with their extents.
extents() { filefrag "$1" | sed 's/.*: \([0-9]*\) extents\{0,1\} found$/\1/'; }
FRAG="after the loaded phase, v00's image is in $(extents "$(bench_image 0)") extent(s) on the host, v$((NVOL - 1))'s in $(extents "$(bench_image $((NVOL - 1)))")"
sync
sleep 2   # the writers' last data written out: idle again

# --- where the time goes (idle)
if [ "$BREAKDOWN" != 0 ]; then
	"${DRIVER[@]}" breakdown --tmp "$TMP" --n "$NVOL" --runs "$RUNS" --out "$TMP/breakdown.json"
fi

LAST=$((LOADED - 1))
"${DRIVER[@]}" report --vssd "$VSSD" --idle "$TMP/idle.json" --load "$TMP/load.json" \
	--breakdown "$([ "$BREAKDOWN" != 0 ] && echo "$TMP/breakdown.json")" --fio "$TMP/fio.json" \
	--samples "$SAMPLES" \
	--load-desc "$LOADED fio writer(s), one on each of v00-v$(printf %02d "$LAST") (the sets of 1 to $LOADED volumes are all written to; $LOADED of the $NVOL)" \
	--fio-desc "one per volume, fio $FIO_JOB on a $LOAD_MIB MiB file, rewritten in a loop" \
	--frag-desc "$FRAG" \
	--host-desc "$HOST_SIZE sparse image on $DEV, XFS (reflink=1)" \
	--guest-desc "$NVOL x $GUEST_SIZE ext4 images on it, each on its own loop device"

bench_wall_time
