#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-create.sh [BUILD_DIR]
#
# Time `vssadmin create shadow --for=SUBVOL` (talking to a private vssd)
# against a raw `btrfs subvolume snapshot -r SUBVOL DEST` of the same
# subvolume, 30 runs each, interleaved, on a scratch btrfs on a loop device.
# BUILD_DIR is the meson build directory (default "build"; relative paths are
# taken from the repository root). Must run as root. See bench/README.md.
set -euo pipefail

RUNS=${VSS_BENCH_RUNS:-30}
WARMUP=${VSS_BENCH_WARMUP:-3}
SAMPLES=${VSS_BENCH_SAMPLES:-}   # optional: write every sample to this CSV
NFILES=1000
DATA_MIB=200
IMG_SIZE=2G
PYTHON=/usr/bin/python3
export LC_ALL=C

ME=bench-create.sh
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "$ME: must run as root (it attaches a loop device, mounts btrfs and runs vssd)" >&2
	exit 1
fi

BUILD=${1:-build}
case $SAMPLES in
''|/*) ;;
*) SAMPLES=$PWD/$SAMPLES ;;
esac
case $BUILD in
/*) ;;
*) BUILD=$ROOT/$BUILD ;;
esac
VSSD=$BUILD/src/vssd/vssd
VSSADMIN=$BUILD/src/vssadmin/vssadmin
for b in "$VSSD" "$VSSADMIN"; do
	if [ ! -x "$b" ]; then
		echo "$ME: $b not found; build first (make build)" >&2
		exit 1
	fi
done
for t in btrfs mkfs.btrfs losetup mount umount findmnt "$PYTHON"; do
	command -v "$t" >/dev/null || { echo "$ME: $t not found" >&2; exit 1; }
done

T_START=$(date +%s%N)
TMP=
IMG=
MNT=
VSSD_PID=

cleanup() {
	local rc=$? dev
	trap - EXIT INT TERM
	set +e
	if [ -n "$VSSD_PID" ]; then
		if kill -TERM "$VSSD_PID" 2>/dev/null; then
			for _ in $(seq 100); do
				kill -0 "$VSSD_PID" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$VSSD_PID" 2>/dev/null; then
				echo "$ME: vssd ($VSSD_PID) ignored SIGTERM for 10 s; sending SIGKILL" >&2
				kill -KILL "$VSSD_PID"
			fi
		fi
		wait "$VSSD_PID" 2>/dev/null
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ] && [ -n "$TMP" ] && [ -s "$TMP/vssd.log" ]; then
		echo "$ME: vssd's log (last 30 lines):" >&2
		tail -n 30 "$TMP/vssd.log" | sed 's/^/  /' >&2
	fi
	if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
		if ! umount "$MNT"; then
			echo "$ME: umount $MNT failed; detaching lazily" >&2
			umount -l "$MNT"
		fi
	fi
	if [ -n "$IMG" ]; then
		for dev in $(losetup -j "$IMG" | cut -d: -f1); do
			losetup -d "$dev" || echo "$ME: losetup -d $dev failed" >&2
		done
	fi
	if [ -n "$TMP" ]; then
		if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
			echo "$ME: $MNT is still mounted; leaving $TMP in place" >&2
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/vss-bench.XXXXXX)
IMG=$TMP/btrfs.img
MNT=$TMP/mnt
SOCK=$TMP/vssd.sock

# --- scratch filesystem and data set
echo "$ME: setting up a $IMG_SIZE btrfs with $NFILES files / $DATA_MIB MiB..." >&2
truncate -s "$IMG_SIZE" "$IMG"
DEV=$(losetup -f --show "$IMG")
mkfs.btrfs -q "$DEV" >/dev/null 2>&1 || { echo "$ME: mkfs.btrfs $DEV failed" >&2; exit 1; }
mkdir "$MNT"
mount "$DEV" "$MNT"
btrfs -q subvolume create "$MNT/data" >/dev/null
mkdir "$MNT/raw"
"$PYTHON" "$HERE/driver.py" populate "$MNT/data" "$NFILES" "$DATA_MIB"
sync

# --- private vssd (empty config, so /etc/vss/vssd.conf cannot skew the run).
# In its own session (setsid execs in place, so $! is vssd's PID), so that a
# Ctrl-C reaches the driver, not vssd; cleanup() stops it with SIGTERM.
: >"$TMP/vssd.conf"
setsid "$VSSD" --socket "$SOCK" --state-dir "$TMP/state" --config "$TMP/vssd.conf" \
	>"$TMP/vssd.log" 2>&1 &
VSSD_PID=$!
for _ in $(seq 100); do
	if ! kill -0 "$VSSD_PID" 2>/dev/null; then
		echo "$ME: vssd exited during start-up" >&2
		exit 1
	fi
	if [ -S "$SOCK" ] && "$VSSADMIN" --socket "$SOCK" list providers >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done
if ! "$VSSADMIN" --socket "$SOCK" list providers >/dev/null; then
	echo "$ME: vssd did not answer on $SOCK within 10 s" >&2
	exit 1
fi
T_SETUP=$(date +%s%N)

# --- the bench
"$PYTHON" "$HERE/driver.py" run \
	--vssadmin "$VSSADMIN" --vssd "$VSSD" --socket "$SOCK" \
	--subvol "$MNT/data" --mnt "$MNT" --raw-dir "$MNT/raw" --device "$DEV" \
	--runs "$RUNS" --warmup "$WARMUP" --samples "$SAMPLES"

T_END=$(date +%s%N)
printf '  wall time: %.1f s (setup %.1f s)\n' \
	"$(( (T_END - T_START) / 1000000 ))e-3" "$(( (T_SETUP - T_START) / 1000000 ))e-3"
