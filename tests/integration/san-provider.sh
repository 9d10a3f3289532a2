#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A command provider (docs/COMMAND-PROVIDER.md) that acts as a storage array
# would: its "LUNs" are the image files behind loop-mounted filesystems, and
# a snapshot is a reflink clone of one (cp --reflink=always), kept in the
# array's directory DIR as {snapshot-id}.img. For the tests.
#
#   san-provider.sh DIR STEP
#
# DIR/log gets one line per run ("STEP MEMBERS [frozen|thawed ...]": for a
# commit, whether each member's filesystem, then each listed in DIR/probe, is
# frozen). A line
# "STEP ACTION" in DIR/fail makes that step misbehave: exit:N (exit with N),
# hang (never end), garbage (print a line that is not KEY=VALUE and exit 0),
# partial (commit: make the first member's clone, then exit 1).
# Run as vssd runs it, the script leads its own process group.
set -u

dir=$1
step=$2
n=${VSS_MEMBERS:-1}

member() { # member VAR INDEX: the value of VSS_VAR_INDEX
	eval "printf '%s' \"\${VSS_$1_$2:-}\""
}

# Whether the filesystem at a mount point is frozen, without writing to it:
# FIFREEZE fails with EBUSY on a frozen filesystem; on a thawed one it works
# and is undone at once.
frozen() {
	if fsfreeze --freeze "$1" 2>/dev/null; then
		fsfreeze --unfreeze "$1"
		echo thawed
	else
		echo frozen
	fi
}

action=$(sed -n "s/^$step //p" "$dir/fail" 2>/dev/null | head -n1)

states=
if [ "$step" = commit ]; then
	i=1
	while [ "$i" -le "$n" ]; do
		states="$states $(frozen "$(member MOUNT_POINT "$i")")"
		i=$((i + 1))
	done
	# Other filesystems the test wants looked at (another provider's
	# members of the set), one mount point a line.
	if [ -f "$dir/probe" ]; then
		while read -r other; do
			states="$states $(frozen "$other")"
		done <"$dir/probe"
	fi
fi
echo "$step $n$states" >>"$dir/log"

case $action in
exit:*) echo "told to fail $step" >&2; exit "${action#exit:}" ;;
hang) echo "$step hangs in process group $$" >>"$dir/log"; sleep 1000; exit 0 ;;
garbage) echo "this is not what vss asked for"; exit 0 ;;
esac

case $step in
is-supported)
	# LUNs are loop devices here; anything else is not this array's.
	case ${VSS_DEVICE:-} in
	/dev/loop*) exit 0 ;;
	*) exit 1 ;;
	esac
	;;
prepare)
	# What an array reserves for a snapshot; abort and delete release it.
	: >"$dir/$VSS_SNAPSHOT_ID.reserved"
	;;
commit)
	i=1
	while [ "$i" -le "$n" ]; do
		id=$(member SNAPSHOT_ID "$i")
		dev=$(member DEVICE "$i")
		lun=$(cat "/sys/block/${dev#/dev/}/loop/backing_file") || exit 1
		cp --reflink=always "$lun" "$dir/$id.img" || exit 11
		# The array's tag: which set the snapshot is of.
		echo "$VSS_SET_ID" >"$dir/$id.set"
		echo "DEVICE_$i=$dir/$id.img"
		echo "DATA_$i=lun=$lun"
		if [ "$action" = partial ]; then
			echo "gave up after the first member" >&2
			exit 1
		fi
		i=$((i + 1))
	done
	;;
abort | delete)
	# Idempotent: what is already gone is no error.
	rm -f "$dir/$VSS_SNAPSHOT_ID.img" "$dir/$VSS_SNAPSHOT_ID.set" "$dir/$VSS_SNAPSHOT_ID.reserved"
	;;
list)
	# One record per snapshot the array holds for vss, by its tags.
	for set in "$dir"/*.set; do
		[ -e "$set" ] || continue
		id=$(basename "$set" .set)
		printf 'SNAPSHOT_ID=%s\nSET_ID=%s\nDEVICE=%s\n\n' "$id" "$(cat "$set")" "$dir/$id.img"
	done
	;;
esac
exit 0
