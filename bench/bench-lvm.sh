#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-lvm.sh
#
# The hold window and `create shadow` time of sets of 1, 4 and 16 thin LVs
# and of 4 classic LVs, against `lvcreate -s` of the same LVs one after
# another, in the LVM test guest (QEMU, software emulation: this machine's
# kernel has no device-mapper). Needs the build tree (make build) and what
# the guest needs (scripts/install-deps.sh). VSS_BENCH_RUNS rounds (3).
# See bench/README.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
echo "bench-lvm: 1-minute load before: $(cut -d' ' -f1 /proc/loadavg)" >&2
"$here/../scripts/guest/run-guest" --disks 2 --disk-size 4G --timeout "${VSS_GUEST_TIMEOUT:-900}" \
	--command -- /usr/bin/python3 "$here/lvm.py"
echo "bench-lvm: 1-minute load after: $(cut -d' ' -f1 /proc/loadavg)" >&2
