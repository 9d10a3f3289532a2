# shellcheck shell=bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/lib.sh: the shell the bench-*.sh scripts share, sourced by each after
# it has set ME (its name, for messages), HERE (this directory) and SAMPLES
# (VSS_BENCH_SAMPLES). It sets nothing in motion when sourced; each script
# calls, in this order:
#
#   bench_init WHY BUILD_DIR     (root, build directory, vssd and vssadmin)
#   bench_need_built FILE...     (if it needs more of the build)
#   bench_need_tools [--hint TEXT] TOOL...
#   bench_begin PREFIX           (the EXIT/INT/TERM trap, $TMP and $SOCK)
#   bench_btrfs_setup, or bench_scratch_fs SIZE IMG MNT MKFS, or
#   bench_image_volumes HOST_SIZE GUEST_SIZE (with NVOL set)
#   bench_start_vssd             (after writing $TMP/vssd.conf)
#   bench_wall_time              (at the end, with T_SETUP set)
#
# A script that starts more than vssd, or mounts more than the one scratch
# filesystem, redefines bench_hook_stop and bench_hook_release after sourcing
# this (bench_thaw_guests and bench_release_guests undo image volumes).

PYTHON=/usr/bin/python3
# The wall-time printf and the parsing of tools' output expect C formats.
export LC_ALL=C
ROOT=$(cd "$HERE/.." && pwd)

# Empty until set, so that the trap knows what exists to be undone.
TMP=
IMG=
MNT=
DEV=
SOCK=
VSSD_PID=

# WHY says what needs root. A relative build directory is the repository's,
# wherever the script is run from; a relative samples file is the caller's,
# so it is taken from $PWD.
bench_init() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "$ME: must run as root ($1)" >&2
		exit 1
	fi
	BUILD=$2
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
	bench_need_built "$VSSD" "$VSSADMIN"
}

# A missing binary means an unbuilt tree: say how to build it.
bench_need_built() {
	local b
	for b in "$@"; do
		if [ ! -x "$b" ]; then
			echo "$ME: $b not found; build first (make build)" >&2
			exit 1
		fi
	done
}

# Fail before any setup rather than half way through it. The tools after the
# script's own are the ones this file uses.
bench_need_tools() {
	local t hint=
	if [ "${1:-}" = --hint ]; then
		hint=" ($2)"
		shift 2
	fi
	for t in "$@" losetup mount umount mountpoint findmnt "$PYTHON"; do
		command -v "$t" >/dev/null || { echo "$ME: $t not found$hint" >&2; exit 1; }
	done
}

# Whether PID still runs. A zombie does not: a dead driver's children (the
# writers) are reaped late by whoever inherits them, and waiting 10 s for
# those would only delay the cleanup.
bench_alive() {
	local stat
	stat=$( { cat "/proc/$1/stat"; } 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# Stop processes we started, by PID and all at once, so that nothing else on
# a shared machine is hit: SIGTERM, then SIGKILL after 10 s. Empty PIDs are
# skipped, so that callers need not check what they started.
bench_stop_pids() {
	local what=$1 pid left="" pids=()
	shift
	for pid in "$@"; do
		if [ -n "$pid" ]; then
			pids+=("$pid")
		fi
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 100); do
		left=
		for pid in "${pids[@]}"; do
			if bench_alive "$pid"; then
				left="$left $pid"
			fi
		done
		[ -n "$left" ] || break
		sleep 0.1
	done
	if [ -n "$left" ]; then
		echo "$ME: $what (${left# }) ignored SIGTERM for 10 s; sending SIGKILL" >&2
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
	fi
	# Reap the ones that are this shell's children (vssd, fio), so that none is
	# still running when the mounts go. For others, wait fails; that is fine.
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	return 0
}

# Interrupts (130, 143) are not failures: the logs would only be noise.
bench_failed() {
	[ "$1" -ne 0 ] && [ "$1" -ne 130 ] && [ "$1" -ne 143 ]
}

# After a failure, a daemon's own words are usually the explanation.
bench_log_tail() {
	local file=$1 n=$2 what=$3
	if [ -s "$file" ]; then
		echo "$ME: $what (last $n lines):" >&2
		tail -n "$n" "$file" | sed 's/^/  /' >&2
	fi
}

# A busy mount must not keep its loop device (and so the temp directory)
# forever: fall back to a lazy umount.
bench_umount() {
	if [ -n "$1" ] && mountpoint -q "$1"; then
		if ! umount "$1"; then
			echo "$ME: umount $1 failed; detaching lazily" >&2
			umount -l "$1"
		fi
	fi
}

# Only the loop devices of our own image: other users' devices are not ours.
bench_detach() {
	local dev
	[ -n "$1" ] && [ -e "$1" ] || return 0
	for dev in $(losetup -j "$1" | cut -d: -f1); do
		losetup -d "$dev" || echo "$ME: losetup -d $dev failed" >&2
	done
}

# The scratch filesystem's mount and loop device (not there yet is fine).
bench_release_scratch() {
	bench_umount "$MNT"
	bench_detach "$IMG"
}

# Hooks for what a script adds. bench_hook_stop runs before vssd is stopped
# (whatever might hold vssd up, or be blocked by it, goes first);
# bench_hook_release RC after, to undo mounts and loop devices.
bench_hook_stop() {
	:
}
bench_hook_release() {
	bench_release_scratch
}

# The EXIT trap: undo everything, whatever the exit (failure, Ctrl-C, kill),
# and keep the script's exit status.
bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	if [ -n "$TMP" ]; then
		bench_hook_stop
		bench_stop_pids vssd "$VSSD_PID"
		if bench_failed "$rc"; then
			bench_log_tail "$TMP/vssd.log" 30 "vssd's log"
		fi
		bench_hook_release "$rc"
		# rm -rf must not reach into a filesystem that is still mounted.
		if findmnt -rn -o TARGET | grep -qF "$TMP/"; then
			echo "$ME: something under $TMP is still mounted; leaving $TMP in place" >&2
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}

# Interrupts go through exit, so that the EXIT trap cleans up once, with the
# usual 128+signal status.
bench_begin() {
	T_START=$(date +%s%N)
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	SOCK=$TMP/vssd.sock
}

# Every bench runs on a sparse image on a loop device of its own, so that it
# needs no spare disk and the trap can undo all of it (IMG, MNT, DEV).
bench_scratch_fs() {
	local size=$1 mkfs=$4
	IMG=$2
	MNT=$3
	truncate -s "$size" "$IMG"
	DEV=$(losetup -f --show "$IMG")
	"$mkfs" -q "$DEV" >/dev/null 2>&1 || { echo "$ME: $mkfs $DEV failed" >&2; exit 1; }
	mkdir "$MNT"
	mount "$DEV" "$MNT"
}

# The create and writers benches share one data set, so that their numbers
# compare: a subvolume "data" of 1000 files, 200 MiB in all, from a fixed
# seed, so that every run gets the same files.
bench_btrfs_setup() {
	local size=2G nfiles=1000 mib=200
	echo "$ME: setting up a $size btrfs with $nfiles files / $mib MiB..." >&2
	bench_scratch_fs "$size" "$TMP/btrfs.img" "$TMP/mnt" mkfs.btrfs
	btrfs -q subvolume create "$MNT/data" >/dev/null
	"$PYTHON" "$HERE/driver.py" populate "$MNT/data" "$nfiles" "$mib"
	sync
}

# Image volumes: NVOL guest ext4 filesystems in image files on a host XFS,
# guest I mounted at $TMP/vII from $TMP/host/img/gII.img.
NVOL=${NVOL:-0}
bench_guest() { printf '%s/v%02d' "$TMP" "$1"; }
bench_image() { printf '%s/host/img/g%02d.img' "$TMP" "$1"; }

# The host: a sparse image on a loop device, XFS with reflink (mkfs.xfs's
# default); on it NVOL guest images, ext4 made directly in each file (inode
# tables and journal written out now, so no lazy init runs later), each on
# its own loop device and mounted.
bench_image_volumes() {
	local host_size=$1 guest_size=$2 i g img dev
	echo "$ME: setting up a $host_size XFS host and $NVOL x $guest_size ext4 guests..." >&2
	bench_scratch_fs "$host_size" "$TMP/host.img" "$TMP/host" mkfs.xfs
	if ! xfs_info "$TMP/host" | grep -q 'reflink=1'; then
		echo "$ME: the host XFS has no reflink" >&2
		exit 1
	fi
	mkdir "$TMP/host/img"
	for i in $(seq 0 $((NVOL - 1))); do
		g=$(bench_guest "$i")
		img=$(bench_image "$i")
		truncate -s "$guest_size" "$img"
		mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$img" >/dev/null 2>&1 ||
			{ echo "$ME: mkfs.ext4 $img failed" >&2; exit 1; }
		dev=$(losetup -f --show "$img")
		mkdir "$g"
		mount "$dev" "$g"
	done
}

# FITHAW every guest, just in case: a write to a frozen filesystem hangs, so
# nothing may be left frozen. Thawing what is not frozen fails harmlessly.
bench_thaw_guests() {
	local i g
	[ -n "$TMP" ] || return 0
	for i in $(seq 0 $((NVOL - 1))); do
		g=$(bench_guest "$i")
		if mountpoint -q "$g"; then
			fsfreeze -u "$g" 2>/dev/null || true
		fi
	done
}

# Thaw again (vssd may have frozen a guest before it stopped): a frozen
# guest cannot be unmounted. Guests first, since their images are on the
# host; then the host.
bench_release_guests() {
	local i
	bench_thaw_guests
	for i in $(seq 0 $((NVOL - 1))); do
		bench_umount "$(bench_guest "$i")"
		bench_detach "$(bench_image "$i")"
	done
	bench_release_scratch
}

# A private vssd, with the config the script wrote to $TMP/vssd.conf, so that
# /etc/vss/vssd.conf and any other vssd on the machine cannot skew the run.
# In its own session (setsid execs in place, so $! is vssd's PID), so that a
# Ctrl-C reaches the driver, not vssd; bench_cleanup stops it with SIGTERM.
bench_start_vssd() {
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
}

# Setup apart, so that a slow setup is not read as a slow bench.
bench_wall_time() {
	local end
	end=$(date +%s%N)
	printf '  wall time: %.1f s (setup %.1f s)\n' \
		"$(( (end - T_START) / 1000000 ))e-3" "$(( (T_SETUP - T_START) / 1000000 ))e-3"
}
