#!/bin/bash
# The README's first command (make demo), on private loop filesystems and a
# private vssd, everything undone on exit:
#  1. two ext4 volumes (image files on an XFS host) cut at one instant while a
#     writer keeps changing both, and the proof that the set is one instant;
#  2. a backup program (tar) reading that kind of set at the volumes' own
#     paths through vssadmin exec;
#  3. two btrfs subvolumes, which vss cannot freeze: crash-consistent each at
#     its own instant, and the set says so.
set -euo pipefail

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
VSSD="$BUILD/src/vssd/vssd"
VSSADMIN="$BUILD/src/vssadmin/vssadmin"
PYTHON=/usr/bin/python3

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (it makes loop devices and mounts them)" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/vss-demo.XXXXXX)
SOCK="$TMP/run/vssd.sock"
VSSD_PID=""
WRITER_PID=""

cleanup() {
	set +e
	[ -n "$WRITER_PID" ] && kill "$WRITER_PID" 2>/dev/null && wait "$WRITER_PID" 2>/dev/null
	if [ -n "$VSSD_PID" ]; then
		kill -TERM "$VSSD_PID" 2>/dev/null
		wait "$VSSD_PID" 2>/dev/null
	fi
	# Innermost first, each loop device detached with its mount: the
	# guests' devices keep the host's filesystem busy.
	findmnt -rn -o TARGET,SOURCE | grep "^$TMP/" | sort -r | while read -r target source; do
		umount "$target" 2>/dev/null || umount -l "$target"
		case $source in /dev/loop*) losetup -d "$source" 2>/dev/null ;; esac
	done
	[ -z "$(findmnt -rn -o TARGET | grep "^$TMP/")" ] && rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run_quiet() {   # a command whose chatter only matters when it fails
	if ! "$@" >"$TMP/quiet.log" 2>&1; then
		cat "$TMP/quiet.log" >&2
		return 1
	fi
}
vssadmin() { "$VSSADMIN" --socket="$SOCK" "$@"; }
filesystem() {  # FSTYPE SIZE IMAGE MOUNTPOINT
	truncate -s "$2" "$3"
	case $1 in
	xfs) run_quiet mkfs.xfs -q -f "$3" ;;
	ext4) run_quiet mkfs.ext4 -q -F "$3" ;;
	btrfs) run_quiet mkfs.btrfs -q -f "$3" ;;
	esac
	mkdir -p "$4"
	mount "$(losetup -f --show "$3")" "$4"
}

say "Two ext4 volumes, kept as image files on an XFS host (how VM disks are kept)"
filesystem xfs 2G "$TMP/host.img" "$TMP/host"
filesystem ext4 256M "$TMP/host/db.img" "$TMP/srv/db"
filesystem ext4 256M "$TMP/host/wal.img" "$TMP/srv/wal"
echo "  $TMP/srv/db and $TMP/srv/wal"

say "A private vssd on $SOCK"
mkdir -m 0700 "$TMP/run"
# The XFS host is itself an image on this machine's disk: allow one level
# more than the default of image in image.
printf '[vssd]\nMaxImageNesting = 2\nDpkgLock =\n' >"$TMP/vssd.conf"
"$VSSD" --socket="$SOCK" --state-dir="$TMP/state" --config="$TMP/vssd.conf" 2>"$TMP/vssd.log" &
VSSD_PID=$!
for _ in $(seq 1 100); do
	vssadmin list providers >/dev/null 2>&1 && break
	sleep 0.05
done
vssadmin list providers

say "A writer overwrites 8 counters, alternately on db and wal, each write numbered and durable"
"$PYTHON" - "$TMP/srv/db" "$TMP/srv/wal" "$TMP/writer-started" <<'EOF' &
import os, signal, sys
fds = [os.open(os.path.join(sys.argv[1 + i % 2], f"counter{i}"), os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o644)
       for i in range(8)]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
seq = 0
while True:
    seq += 1
    os.pwrite(fds[seq % 8], b"%016d" % seq, 0)
    if seq == 1:
        open(sys.argv[3], "w").close()
EOF
WRITER_PID=$!
while [ ! -e "$TMP/writer-started" ]; do sleep 0.05; done
sleep 0.5

say "vssadmin create shadow --for=db --for=wal, while the writer runs"
vssadmin create shadow --for="$TMP/srv/db" --for="$TMP/srv/wal" --json >"$TMP/set.json"
"$PYTHON" - "$TMP/set.json" <<'EOF'
import json, sys
for s in json.load(open(sys.argv[1])):
    print(f"  {s['volume']}: shadow copy {s['id']}\n    {s['consistency']}, held {s['hold_window_us'] / 1000:.1f} ms")
print("  No application writer is registered, so the set is what a power cut at one instant")
print("  would leave on both volumes: crash-consistent across the set.")
EOF
SET_ID=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["set_id"])' "$TMP/set.json")

say "The proof: the set holds writes 1..k of both volumes and none after k"
vssadmin expose --set="$SET_ID" --at="$TMP/view" >/dev/null
"$PYTHON" - "$TMP/view$TMP/srv/db" "$TMP/view$TMP/srv/wal" <<'EOF'
import os, sys
got = [int(open(os.path.join(sys.argv[1 + i % 2], f"counter{i}")).read()) for i in range(8)]
k = max(got)
want = [max((s for s in range(1, k + 1) if s % 8 == i), default=0) for i in range(8)]
if got != want:
    sys.exit(f"demo: not one instant: the counters hold {got}, a cut after write {k} holds {want}")
print(f"  the last write in the set is number {k}; every counter holds the last write to it up to {k},")
print("  on both volumes: one instant, although the writer never stopped")
EOF
vssadmin unexpose --set="$SET_ID" >/dev/null

say "vssadmin exec: tar reads a new set at the volumes' own paths"
vssadmin exec --for="$TMP/srv/db" --for="$TMP/srv/wal" -- tar -cf "$TMP/backup.tar" "$TMP/srv/db" "$TMP/srv/wal"
tar -tf "$TMP/backup.tar" | grep counter | sort | head -3 | sed 's/^/  /'
echo "  ... (the set was made for tar and is gone: $(vssadmin list shadows --json | "$PYTHON" -c \
	'import json,sys; print(len(json.load(sys.stdin)))') shadow copies now, the first one kept)"
kill "$WRITER_PID"
wait "$WRITER_PID" 2>/dev/null || true
WRITER_PID=""

say "Two btrfs subvolumes: btrfs cannot be frozen"
filesystem btrfs 1G "$TMP/pool.img" "$TMP/pool"
btrfs -q subvolume create "$TMP/pool/data"
btrfs -q subvolume create "$TMP/pool/logs"
echo "hello" >"$TMP/pool/data/file"
vssadmin create shadow --for="$TMP/pool/data" --for="$TMP/pool/logs" --json >"$TMP/btrfs.json"
"$PYTHON" - "$TMP/btrfs.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  {s[0]['consistency']}: each subvolume's snapshot is of its own instant, since vss cannot")
print("  hold btrfs's writes across volumes; for one instant, keep the volumes in images")
EOF

say "vssadmin list shadows"
vssadmin list shadows

say "vssadmin delete shadows, every set"
for id in $(vssadmin list shadows --json | "$PYTHON" -c \
	'import json,sys; print(" ".join(sorted({s["set_id"] for s in json.load(sys.stdin)})))'); do
	vssadmin delete shadows --set="$id" --quiet
done
left=$(vssadmin list shadows --json | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))')
stores=$(find "$TMP/host/.vss" "$TMP/pool/.vss" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
if [ "$left" != 0 ] || [ "$stores" != 0 ]; then
	echo "demo: $left shadow copies and $stores store entries left" >&2
	exit 1
fi
echo "  no shadow copy left in the catalog or on disk"

say "Demo complete: cleaning up"
