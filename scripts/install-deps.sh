#!/bin/sh
# Install what building, testing and the demo need, from Debian's packages.
# Runs apt-get only when something is missing, so repeated runs are quick.
set -eu

# clang and libclang-rt-dev: the fuzz targets (libFuzzer, sanitizer
# runtimes); clang-tools: scan-build; valgrind: the unit tests under it.
# libjson-c-dev: the LVM provider reads lvm's JSON reports. qemu-system-x86,
# busybox-static, lvm2, thin-provisioning-tools: the LVM suite, run in a
# QEMU guest (scripts/guest/) since this kernel may lack device-mapper; the
# guest's kernel is downloaded, not installed (scripts/guest/build-guest.sh).
# tzdata: the retention tests' local zones (Europe/Berlin, America/New_York).
PACKAGES="
  gcc meson ninja-build pkg-config
  libsystemd-dev libsqlite3-dev libbtrfsutil-dev libmount-dev libblkid-dev uuid-dev
  btrfs-progs e2fsprogs xfsprogs util-linux mount systemd
  python3 python3-pytest fio
  dbus-bin libglib2.0-bin python3-dbus
  clang libclang-rt-dev clang-tools valgrind
  postgresql libpq-dev
  mariadb-server libmariadb-dev libsmartcols-dev
  restic borgbackup samba samba-vfs-modules smbclient
  pandoc bash-completion groff-base python3-seccomp
  libjson-c-dev qemu-system-x86 busybox-static lvm2 thin-provisioning-tools
  tzdata
"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
