# SPDX-License-Identifier: LGPL-2.1-or-later
"""The clone of an image volume is made in passes: the whole image while the
volume is live, the ranges written since after the flush, and inside the hold
what changed since (docs/ENGINE.md, "The image clone"). Proof, block by block,
that a set is still one instant, while a writer overwrites random blocks of
two volumes.

One writer, one write at a time, alternating between a file on volume A and
one on volume B, each write a whole block that names itself (its sequence
number and place) and is durable on return (O_DSYNC). At any instant the two
files hold exactly what the writes 1..k left, for some k. So must every set:
the highest sequence number seen in a set is k, and every block of both files
must hold the last write to it up to k. A block an earlier pass missed (still
holding an older write) breaks it, and so does a block from after the cut."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

NESTING = "MaxImageNesting = 2\n"
SETS = int(os.environ.get("VSS_INSTANT_SETS", "12"))
BLOCK = 4096
BLOCKS = 2048  # 8 MiB per file

# argv: BLOCKS FIRST OUT FILE...: blocks FIRST.. FIRST+BLOCKS-1 of each FILE.
WRITER = r"""
import os, random, signal, struct, sys, json
BLOCK, BLOCKS, FIRST = 4096, int(sys.argv[1]), int(sys.argv[2])
out = sys.argv[3]
fds = [os.open(p, os.O_WRONLY | os.O_DSYNC) for p in sys.argv[4:]]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
log = []  # log[seq - 1] = (file, block)
while not stop:
    f = len(log) % len(fds)
    b = random.randrange(BLOCKS)
    seq = len(log) + 1
    log.append((f, b))
    os.pwrite(fds[f], struct.pack("<QQ", seq, b) * (BLOCK // 16), (FIRST + b) * BLOCK)
json.dump(log, open(out, "w"))
"""


def start_writer(files, log_path, first=0):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(BLOCKS), str(first), str(log_path), *map(str, files)])


def fill(path, first=0):
    with open(path, "r+b" if first else "wb") as f:
        f.seek(first * BLOCK)
        for b in range(BLOCKS):
            f.write(struct.pack("<QQ", 0, b) * (BLOCK // 16))
        f.flush()
        os.fsync(f.fileno())


def seqs(path, first=0):
    with open(path, "rb") as f:
        f.seek(first * BLOCK)
        data = f.read(BLOCK * BLOCKS)
    assert len(data) == BLOCK * BLOCKS, path
    out = []
    for b in range(BLOCKS):
        block = data[b * BLOCK:(b + 1) * BLOCK]
        seq, where = struct.unpack_from("<QQ", block)
        assert where == b and block == block[:16] * (BLOCK // 16), f"torn or misplaced block {b} in {path}"
        out.append(seq)
    return out


def check_one_instant(log, got):
    """got[f][b]: the sequence number block b of file f holds in a set."""
    k = max(max(s) for s in got)
    want = [[0] * BLOCKS for _ in got]
    for seq in range(1, k + 1):
        f, b = log[seq - 1]
        want[f][b] = seq
    wrong = [(f, b, got[f][b], want[f][b]) for f in range(len(got)) for b in range(BLOCKS)
             if got[f][b] != want[f][b]]
    assert not wrong, (f"cut after write {k}, but {len(wrong)} block(s) hold something else "
                       f"(file, block, holds, should hold): {wrong[:10]}")
    return k


@pytest.mark.parametrize("host_fs", ["xfs", "btrfs"])
def test_image_sets_are_one_instant_block_by_block(host_fs, make_fs, daemon_factory, workdir):
    d, _ = workdir
    host = make_fs(host_fs, "2G", "host")
    a, b = [make_fs("ext4", "256M", f"vol{i}", on=host) for i in range(2)]
    files = [a.mnt / "blocks", b.mnt / "blocks"]
    for f in files:
        fill(f)
    vssd = daemon_factory(config=NESTING)
    log_path = d / "writes.json"
    writer = start_writer(files, log_path)
    sets, seen = [], []
    try:
        time.sleep(0.5)
        for i in range(SETS):
            out = json.loads(vssd.vssadmin("create", "shadow", f"--for={a.mnt}", f"--for={b.mnt}", "--json").stdout)
            assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
            sets.append(out[0]["set_id"])
            # Keep a few, so that the images share extents with several
            # clones and fragment as they would in use.
            if len(sets) > 3:
                vssd.vssadmin("delete", "shadows", f"--set={sets[0]}", "--quiet")
                sets.pop(0)
            at = d / f"set{i}"
            vssd.vssadmin("expose", f"--set={out[0]['set_id']}", f"--at={at}")
            try:
                got = [seqs(f"{at}{f}") for f in files]
            finally:
                vssd.vssadmin("unexpose", f"--set={out[0]['set_id']}")
            seen.append(got)
            time.sleep(0.2)
    finally:
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=60) == 0
    log = json.load(open(log_path))
    cuts = [check_one_instant(log, got) for got in seen]
    # The writer went on throughout: each set is of a later instant.
    assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts), cuts


def test_an_image_nobody_holds_is_cloned_at_one_instant(make_fs, daemon_factory, workdir):
    """An image file that no mounted filesystem holds (a VM's disk, say)
    cannot be frozen, so its clone must be one FICLONE: passes over a file
    written all along are of no one instant. Every clone call of vssd is
    delayed, which gives the writer time between any map read and what is
    cloned after it."""
    d, _ = workdir
    host = make_fs("xfs", "2G", "host")
    disk = make_fs("ext4", "64M", "disk", on=host, mount=False)
    first = 4096  # 16 MiB in: the ext4 superblock stays for the probe
    fill(disk.image, first)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "clone:*:delay=300"})
    log_path = d / "writes.json"
    writer = start_writer([disk.image], log_path, first)
    seen = []
    try:
        time.sleep(0.5)
        for i in range(4):
            out = json.loads(vssd.vssadmin("create", "shadow", f"--for={disk.image}", "--json").stdout)
            assert {s["consistency"] for s in out} == {"crash-consistent per volume"}
            seen.append([seqs(out[0]["snapshot_path"], first)])
            vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    finally:
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=60) == 0
    log = json.load(open(log_path))
    cuts = [check_one_instant(log, got) for got in seen]
    assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts), cuts
