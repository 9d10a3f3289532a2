#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-catalog.sh [BUILD_DIR]
#
# A catalog of 100,000 real btrfs snapshots over 200 volumes (made through
# vssd by bench/gen-catalog), against an empty catalog on the same
# filesystem: vssd's start-up with reconciliation, `list shadows --json`,
# `list shadows --for=ONE`, `create shadow --for=ONE` and vssd's memory,
# interleaved. BUILD_DIR is the meson build directory (default "build").
# Must run as root. See bench/README.md.
#
# VSS_BENCH_CATALOG_DIR=DIR keeps the generated filesystem image and
# catalog in DIR (mounted at DIR/mnt while the bench runs), and reuses them
# when they are there, so that generation is paid once.
# VSS_BENCH_IMAGE_DIR=DIR puts the image there instead (/dev/shm: a btrfs
# snapshot commits a transaction, and on a loaded disk 100,000 of them take
# an hour).
set -euo pipefail

RUNS=${VSS_BENCH_RUNS:-10}
STARTS=${VSS_BENCH_STARTS:-3}
SNAPSHOTS=${VSS_BENCH_SNAPSHOTS:-100000}
VOLUMES=${VSS_BENCH_VOLUMES:-200}
PER_SET=${VSS_BENCH_PER_SET:-50}
CATALOG_DIR=${VSS_BENCH_CATALOG_DIR:-}
IMAGE_DIR=${VSS_BENCH_IMAGE_DIR:-}
SAMPLES=

ME=bench-catalog.sh
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

bench_init "it attaches a loop device, mounts btrfs and runs vssd" "${1:-build}"
bench_need_tools btrfs mkfs.btrfs

# The driver's vssds, should it die before stopping them.
bench_hook_stop() {
	local f pids=()
	for f in "$TMP"/full/vssd.pid "$TMP"/empty/vssd.pid; do
		if [ -s "$f" ]; then
			pids+=("$(cat "$f")")
		fi
	done
	bench_stop_pids "the driver's vssd" "${pids[@]}"
}

# An image outside $TMP goes too, unless it is kept for the next run.
bench_hook_release() {
	bench_release_scratch
	if [ -z "$CATALOG_DIR" ] && [ -n "$IMAGE_DIR" ] && [ -n "$IMG" ] && [ -z "$(losetup -j "$IMG")" ]; then
		rm -f "$IMG"
		rmdir "$IMAGE_DIR" 2>/dev/null || true
	fi
}

# 100k snapshots copy 100k tree roots: 4 KiB nodes and single metadata keep
# that to about 0.5 GiB.
mkfs_catalog() {
	mkfs.btrfs -n 4096 -m single "$@"
}

bench_begin vss-bench-catalog
if [ -n "$CATALOG_DIR" ]; then
	mkdir -p "$CATALOG_DIR"
	CATALOG_DIR=$(cd "$CATALOG_DIR" && pwd)
	STATE=$CATALOG_DIR/state
	IMG=${IMAGE_DIR:-$CATALOG_DIR}/btrfs.img
	MNT=$CATALOG_DIR/mnt
else
	STATE=$TMP/state
	IMG=${IMAGE_DIR:-$TMP}/btrfs.img
	MNT=$TMP/mnt
fi
if [ -n "$IMAGE_DIR" ]; then
	mkdir -p "$IMAGE_DIR"
fi
mkdir -p "$TMP/full" "$TMP/empty"
: >"$TMP/full/vssd.conf"
: >"$TMP/empty/vssd.conf"

if [ -n "$CATALOG_DIR" ] && [ -f "$IMG" ] && [ -f "$STATE/catalog.db" ]; then
	echo "$ME: reusing the catalog in $CATALOG_DIR" >&2
	DEV=$(losetup -f --show "$IMG")
	mkdir -p "$MNT"
	mount "$DEV" "$MNT"
else
	rm -rf "$STATE"
	rm -f "$IMG"
	bench_scratch_fs 64G "$IMG" "$MNT" mkfs_catalog
fi
# Generate, or top up a kept catalog whose generation was interrupted. The
# host-reserve watch of the generating vssd looks once a minute: it reads
# the catalog again after every change, and sets come several a second.
SOCK=$TMP/full/vssd.sock
echo "HostReserveCheckMSec = 60000" >"$TMP/gen.conf"
setsid "$VSSD" --socket "$SOCK" --state-dir "$STATE" --config "$TMP/gen.conf" \
	>"$TMP/vssd.log" 2>&1 &
VSSD_PID=$!
for _ in $(seq 1200); do
	[ -S "$SOCK" ] && "$VSSADMIN" --socket "$SOCK" list providers >/dev/null 2>&1 && break
	sleep 0.1
done
echo "$ME: generating $SNAPSHOTS snapshots over $VOLUMES volumes, $PER_SET a set..." >&2
T_GEN=$(date +%s%N)
"$PYTHON" "$HERE/gen-catalog" --vssadmin "$VSSADMIN" --socket "$SOCK" --mnt "$MNT" \
	--volumes "$VOLUMES" --per-set "$PER_SET" --snapshots "$SNAPSHOTS"
bench_stop_pids vssd "$VSSD_PID"
VSSD_PID=
sync
printf '  generation (or check of a kept catalog): %.1f s\n' "$(( ($(date +%s%N) - T_GEN) / 1000000 ))e-3"
T_SETUP=$(date +%s%N)

"$PYTHON" "$HERE/catalog.py" run --vssd "$VSSD" --vssadmin "$VSSADMIN" --mnt "$MNT" \
	--full "$TMP/full" --full-state "$STATE" --empty "$TMP/empty" \
	--volume "$MNT/vol001" --list-volume "$MNT/vol000" \
	--runs "$RUNS" --starts "$STARTS" --expect "$SNAPSHOTS"

bench_wall_time
