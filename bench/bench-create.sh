#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-create.sh [BUILD_DIR]
#
# Time `vssadmin create shadow --for=SUBVOL` (talking to a private vssd)
# against a raw `btrfs subvolume snapshot -r SUBVOL DEST` of the same
# subvolume, 30 runs each, interleaved, on a scratch btrfs on a loop device;
# and, in blocks between them, a whole set made in one process through libvss
# against a bare btrfs_util_create_snapshot() (vss-bench-create).
# BUILD_DIR is the meson build directory (default "build"; relative paths are
# taken from the repository root). Must run as root. See bench/README.md.
set -euo pipefail

RUNS=${VSS_BENCH_RUNS:-30}
WARMUP=${VSS_BENCH_WARMUP:-3}
SAMPLES=${VSS_BENCH_SAMPLES:-}   # optional: write every sample to this CSV

ME=bench-create.sh
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

bench_init "it attaches a loop device, mounts btrfs and runs vssd" "${1:-build}"
INPROC=$BUILD/bench/vss-bench-create
bench_need_built "$INPROC"
bench_need_tools btrfs mkfs.btrfs

bench_begin vss-bench

# --- scratch filesystem and data set (lib.sh)
bench_btrfs_setup
mkdir "$MNT/raw"

# --- private vssd (empty config, so /etc/vss/vssd.conf cannot skew the run)
: >"$TMP/vssd.conf"
bench_start_vssd
T_SETUP=$(date +%s%N)

# --- the bench
"$PYTHON" "$HERE/driver.py" run \
	--vssadmin "$VSSADMIN" --vssd "$VSSD" --socket "$SOCK" \
	--subvol "$MNT/data" --mnt "$MNT" --raw-dir "$MNT/raw" --device "$DEV" \
	--runs "$RUNS" --warmup "$WARMUP" --samples "$SAMPLES" --inproc "$INPROC"

bench_wall_time
