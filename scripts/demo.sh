#!/bin/bash
# The README's first command (make demo): one snapshot set of two btrfs
# subvolumes while a process keeps writing to both, end to end, on a private
# loop-mounted filesystem and a private vssd. Everything is undone on exit.
set -euo pipefail

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
VSSD="$BUILD/src/vssd/vssd"
VSSADMIN="$BUILD/src/vssadmin/vssadmin"
PYTHON=/usr/bin/python3

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (it makes a loop device and mounts it)" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/vss-demo.XXXXXX)
IMG="$TMP/pool.img"
MNT="$TMP/pool"
SOCK="$TMP/vssd.sock"
VSSD_PID=""
WRITER_PID=""

cleanup() {
	set +e
	[ -n "$WRITER_PID" ] && kill "$WRITER_PID" 2>/dev/null && wait "$WRITER_PID" 2>/dev/null
	if [ -n "$VSSD_PID" ]; then
		kill -TERM "$VSSD_PID" 2>/dev/null
		wait "$VSSD_PID" 2>/dev/null
	fi
	if mountpoint -q "$MNT"; then
		umount "$MNT" || umount -l "$MNT"
	fi
	for dev in $(losetup -j "$IMG" | cut -d: -f1); do
		losetup -d "$dev"
	done
	mountpoint -q "$MNT" || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
vssadmin() { "$VSSADMIN" --socket="$SOCK" "$@"; }

say "A 1 GiB btrfs on a loop device, with two subvolumes: data and logs"
truncate -s 1G "$IMG"
DEV=$(losetup -f --show "$IMG")
mkfs.btrfs -q "$DEV"
mkdir "$MNT"
mount "$DEV" "$MNT"
btrfs -q subvolume create "$MNT/data"
btrfs -q subvolume create "$MNT/logs"
for i in $(seq 1 100); do head -c 65536 /dev/urandom >"$MNT/data/file$i"; done
echo "$DEV mounted on $MNT"

say "A private vssd on $SOCK"
"$VSSD" --socket="$SOCK" --state-dir="$TMP/state" --config=/dev/null 2>"$TMP/vssd.log" &
VSSD_PID=$!
for _ in $(seq 1 100); do
	vssadmin list providers >/dev/null 2>&1 && break
	sleep 0.05
done
vssadmin list providers

say "A writer appends numbered records to data/journal and logs/app.log"
(
	n=0
	while :; do
		echo "record $n" >>"$MNT/data/journal"
		echo "record $n" >>"$MNT/logs/app.log"
		n=$((n + 1))
	done
) &
WRITER_PID=$!
sleep 0.5

say "vssadmin create shadow --for=data --for=logs (while the writer runs)"
vssadmin create shadow --for="$MNT/data" --for="$MNT/logs"
sleep 0.3
kill "$WRITER_PID"
wait "$WRITER_PID" 2>/dev/null || true
WRITER_PID=""

say "vssadmin list shadows"
vssadmin list shadows

say "The snapshots hold the data as of the commit"
vssadmin list shadows --json >"$TMP/shadows.json"
SET_ID=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["set_id"])' "$TMP/shadows.json")
"$PYTHON" - "$TMP/shadows.json" "$MNT" <<'EOF'
import json, os, sys
shadows = json.load(open(sys.argv[1]))
live = {"data": "journal", "logs": "app.log"}
for s in shadows:
    name = os.path.basename(s["volume"])
    f = live[name]
    snap = open(os.path.join(s["snapshot_path"], f)).read()
    now = open(os.path.join(s["volume"], f)).read()
    n_snap, n_now = snap.count("\n"), now.count("\n")
    assert now.startswith(snap), f"{name}: the snapshot is not a prefix of the live file"
    assert n_now > n_snap, f"{name}: the writer went on after the set"
    assert snap.splitlines() == [f"record {i}" for i in range(n_snap)], f"{name}: torn or reordered records"
    print(f"  {name}/{f}: snapshot has records 0..{n_snap - 1}, intact; "
          f"the live file went on to {n_now - 1}")
    print(f"  {s['snapshot_path']}: created {s['created']}, hold window {s['hold_window_us']} us, "
          f"{s['consistency']}")
EOF

say "The snapshots are read-only"
SNAP=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["snapshot_path"])' "$TMP/shadows.json")
if touch "$SNAP/new-file" 2>"$TMP/touch.err"; then
	echo "demo: a snapshot accepted a write" >&2
	exit 1
fi
echo "  touch $SNAP/new-file: $(sed 's/.*: //' "$TMP/touch.err")"
echo "  btrfs property: $(btrfs property get "$SNAP" ro)"

say "vssadmin delete shadows --set=$SET_ID"
vssadmin delete shadows --set="$SET_ID" --quiet
vssadmin list shadows
if [ -n "$(ls -A "$MNT/.vss")" ]; then
	echo "demo: snapshots left in $MNT/.vss" >&2
	exit 1
fi

say "Demo complete: cleaning up"
