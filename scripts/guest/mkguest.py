#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Make the QEMU guest's boot files from an unpacked Debian kernel package:

  mkguest.py vmlinux VMLINUZ OUT
      the uncompressed ELF kernel out of a bzImage, for QEMU's PVH entry
      (-kernel given an ELF skips the real-mode setup and the in-guest
      decompression, seconds under TCG)
  mkguest.py initramfs KERNEL_ROOT VERSION INIT BUSYBOX OUT
      an uncompressed newc cpio: busybox, INIT as /init, and only the
      modules the LVM tests need with what they depend on, in load order
      in /modules.load

No kmod is needed on the host: dependencies come from each module's own
.modinfo section (what depmod reads).
"""

import bz2
import gzip
import lzma
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import zlib

# What the guest loads at boot. The rest follows from .modinfo "depends";
# softdeps (crc32c for ext4 and libcrc32c) are named here.
WANTED = [
    "virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console",
    "9pnet_virtio", "9p", "overlay",
    "crc32c_generic", "crc32c_intel", "libcrc32c", "crc16",
    "ext4", "xfs", "loop",
    "dm_mod", "dm_snapshot", "dm_thin_pool", "dm_bufio", "dm_persistent_data", "dm_bio_prison",
]
# May not load on every CPU model (crc32c_intel needs SSE4.2): the init
# tolerates their failure.
OPTIONAL = {"crc32c_intel"}
# Loaded when first used (mount -t xfs: the kernel asks for "fs-xfs"), not
# at boot: xfs.ko alone takes over a second to load under TCG.
LAZY = {"xfs"}

# The kernel's request_module() runs "/sbin/modprobe -q -- NAME" with the
# initramfs as root (init runs the tests in a chrooted child, so its own
# root stays here). Only LAZY modules are asked for; their dependencies
# are loaded at boot.
MODPROBE = """#!/bin/sh
for a; do case $a in -*) ;; *) name=${a#fs-} ;; esac; done
[ -n "$name" ] && [ -f "/lib/modules/$name.ko" ] && exec insmod "/lib/modules/$name.ko"
exit 1
"""


def extract_vmlinux(vmlinuz, out):
    """Try every compressed payload a bzImage may carry until one
    decompresses to an ELF (what the kernel tree's extract-vmlinux does)."""
    data = pathlib.Path(vmlinuz).read_bytes()
    magics = [
        (b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(b)),
        (b"\x1f\x8b\x08", lambda b: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(b)),
        (b"\x5d\x00\x00", lambda b: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(b)),
        (b"BZh", lambda b: bz2.BZ2Decompressor().decompress(b)),
        (b"\x28\xb5\x2f\xfd", lambda b: subprocess.run(["zstd", "-dc"], input=b, capture_output=True).stdout),
    ]
    for magic, decompress in magics:
        pos = data.find(magic)
        while pos >= 0:
            try:
                elf = decompress(data[pos:])
            except Exception:
                elf = b""
            if elf[:4] == b"\x7fELF":
                tmp = pathlib.Path(str(out) + ".tmp")
                tmp.write_bytes(elf)
                tmp.replace(out)
                return
            pos = data.find(magic, pos + 1)
    sys.exit(f"mkguest: no compressed ELF kernel found in {vmlinuz}")


def modinfo(path):
    """The key=value strings of a module's .modinfo ELF section."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF")
    le = "little"
    shoff = int.from_bytes(data[0x28:0x30], le)
    shentsize = int.from_bytes(data[0x3A:0x3C], le)
    shnum = int.from_bytes(data[0x3C:0x3E], le)
    shstrndx = int.from_bytes(data[0x3E:0x40], le)

    def section(i):
        h = data[shoff + i * shentsize: shoff + (i + 1) * shentsize]
        return (int.from_bytes(h[0:4], le), int.from_bytes(h[0x18:0x20], le), int.from_bytes(h[0x20:0x28], le))

    _, stroff, strsize = section(shstrndx)
    names = data[stroff:stroff + strsize]
    info = {}
    for i in range(shnum):
        name_off, off, size = section(i)
        name = names[name_off:names.index(b"\0", name_off)]
        if name == b".modinfo":
            for entry in data[off:off + size].split(b"\0"):
                key, sep, value = entry.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
    return info


SIG_MAGIC = b"~Module signature appended~\n"


def strip_signature(data):
    """A module without its appended signature: the kernel (signatures
    not enforced) then skips the RSA check, seconds per boot under TCG."""
    if not data.endswith(SIG_MAGIC):
        return data
    info = data[-len(SIG_MAGIC) - 12:-len(SIG_MAGIC)]
    sig_len = int.from_bytes(info[8:12], "big")
    return data[:-len(SIG_MAGIC) - 12 - sig_len]


def norm(name):
    return name.replace("-", "_")


def resolve(moddir):
    """Modules of WANTED and their dependencies, dependencies first."""
    by_name = {norm(p.name[:-3]): p for p in moddir.rglob("*.ko")}
    builtin = set()
    builtin_file = moddir / "modules.builtin"
    if builtin_file.exists():
        builtin = {norm(pathlib.Path(line.strip()).name[:-3]) for line in builtin_file.read_text().splitlines() if line.strip()}
    order, seen = [], set()

    def visit(name, chain):
        name = norm(name)
        if name in seen or name in builtin:
            return
        if name not in by_name:
            sys.exit(f"mkguest: module {name} (needed by {' <- '.join(chain) or 'the guest'}) is not in {moddir}")
        seen.add(name)
        info = modinfo(by_name[name])
        for dep in ",".join(info.get("depends", [])).split(","):
            if dep:
                visit(dep, [name, *chain])
        order.append(name)

    for name in WANTED:
        visit(name, [])
    return [(name, by_name[name]) for name in order]


class Cpio:
    """A newc archive, written without the cpio program."""

    def __init__(self, out):
        self.f = open(out, "wb")
        self.ino = 1

    def _entry(self, name, mode, data=b""):
        name_b = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.f.write(header.encode() + name_b)
        self.f.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.f.write(data)
        self.f.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self):
        self._entry("TRAILER!!!", 0)
        self.f.close()


def make_initramfs(kroot, version, init, busybox, out):
    moddir = pathlib.Path(kroot) / "lib" / "modules" / version
    modules = resolve(moddir)
    tmp = pathlib.Path(str(out) + ".tmp")
    c = Cpio(tmp)
    for d in ("bin", "sbin", "dev", "proc", "sys", "run", "lower", "newroot", "ovl", "ctl", "lib", "lib/modules"):
        c.dir(d)
    c.file("bin/busybox", pathlib.Path(busybox).read_bytes(), 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("sbin/modprobe", MODPROBE.encode(), 0o755)
    c.file("init", pathlib.Path(init).read_bytes(), 0o755)
    lines = []
    for name, path in modules:
        c.file(f"lib/modules/{path.name}", strip_signature(path.read_bytes()))
        lines.append(path.name + (" optional" if name in OPTIONAL else " lazy" if name in LAZY else ""))
        if name in LAZY and path.name != f"{name}.ko":
            # Under its module name too, as request_module() asks for it.
            c.symlink(f"lib/modules/{name}.ko", path.name)
    c.file("modules.load", ("\n".join(lines) + "\n").encode())
    c.file("kernel-version", (version + "\n").encode())
    c.close()
    tmp.replace(out)
    print(f"mkguest: {len(modules)} modules: {' '.join(n for n, _ in modules)}")


def main(argv):
    if len(argv) == 4 and argv[1] == "vmlinux":
        extract_vmlinux(argv[2], argv[3])
    elif len(argv) == 7 and argv[1] == "initramfs":
        make_initramfs(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
