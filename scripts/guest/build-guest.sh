#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Make the boot files of the LVM test guest from Debian packages, without
# installing a kernel on the host: download the kernel package Debian's
# linux-image-amd64 points at, unpack it, take the uncompressed vmlinux out
# of its vmlinuz (QEMU's PVH entry), and build a busybox initramfs with the
# device-mapper, 9p, virtio, overlay, ext4 and xfs modules.
#
#   scripts/guest/build-guest.sh [DIR]     (DIR: $VSS_GUEST_DIR, else build/guest)
#
# Prints two lines, "vmlinux PATH" and "initramfs PATH". What is in DIR is
# reused: the downloaded .deb and vmlinux while the version is the same, the
# initramfs while init, mkguest.py and busybox are unchanged. Fails (never
# skips) when a kernel cannot be had.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${VSS_GUEST_DIR:-$here/../../build/guest}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

die() {
	echo "build-guest: $*" >&2
	exit 1
}

for tool in qemu-system-x86_64 dpkg-deb apt-get apt-cache; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (scripts/install-deps.sh installs qemu-system-x86)"
done
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" --list 2>/dev/null | grep -qx insmod ||
	die "$busybox is missing or not busybox-static (scripts/install-deps.sh installs busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked' && die "$busybox is dynamically linked: install busybox-static"

# The flavour Debian's metapackage depends on now (6.1.0-N-amd64 on Debian 12).
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
if [ -z "$pkg" ]; then
	# No package lists (offline): what an earlier run downloaded will do.
	pkg=$(cat "$dir/current" 2>/dev/null || true)
	[ -z "$pkg" ] || [ -f "$dir/$pkg.deb" ] || pkg=
	[ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 (run apt-get update) and $dir has no kernel"
fi
version=${pkg#linux-image-}
deb=$dir/$pkg.deb
vmlinux=$dir/vmlinux-$version
# Rebuilt when what goes into it changes.
stamp=$(cat "$here/init" "$here/mkguest.py" "$busybox" | sha256sum | cut -c1-16)
initramfs=$dir/initramfs-$version-$stamp.cpio

if [ ! -f "$deb" ]; then
	echo "build-guest: downloading $pkg" >&2
	rm -rf "$dir/download"
	mkdir -p "$dir/download"
	(cd "$dir/download" && apt-get download -q "$pkg" >/dev/null 2>"$dir/download/apt.log") ||
		die "apt-get download $pkg failed: $(cat "$dir/download/apt.log")"
	mv "$dir"/download/"$pkg"_*.deb "$deb"
	rm -rf "$dir/download"
	for old in "$dir"/linux-image-*.deb; do
		[ "$old" = "$deb" ] || rm -f "$old"
	done
fi

if [ ! -f "$vmlinux" ] || [ ! -f "$initramfs" ]; then
	# Unpacked (400 MB) only while the boot files are made; the .deb stays.
	kroot=$(mktemp -d "$dir/unpack.XXXXXX")
	trap 'rm -rf "$kroot"' EXIT
	dpkg-deb -x "$deb" "$kroot"
	if [ ! -f "$vmlinux" ]; then
		rm -f "$dir"/vmlinux-*
		/usr/bin/python3 "$here/mkguest.py" vmlinux "$kroot/boot/vmlinuz-$version" "$vmlinux"
	fi
	if [ ! -f "$initramfs" ]; then
		rm -f "$dir"/initramfs-*.cpio
		/usr/bin/python3 "$here/mkguest.py" initramfs "$kroot" "$version" "$here/init" "$busybox" "$initramfs" >&2
	fi
	rm -rf "$kroot"
	trap - EXIT
fi
echo "$pkg" > "$dir/current"
echo "vmlinux $vmlinux"
echo "initramfs $initramfs"
