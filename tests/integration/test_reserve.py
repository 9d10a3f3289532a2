# SPDX-License-Identifier: LGPL-2.1-or-later
"""The host reserve: a snapshot never starves its origin. Every overwrite of a
live image whose extents a clone shares needs a new block of the host; when
the host runs low, vssd deletes snapshots, oldest first, before the live
volumes' writes fail, and refuses sets that would go under the reserve."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import VSSADMIN, is_frozen, run

NESTING = "MaxImageNesting = 2\n"
MiB = 1 << 20
LONG = os.environ.get("VSS_LONG") == "1"

# A writer per volume: random 64 KiB overwrites of a preallocated file, each
# batch made durable, until SIGTERM. Any error is printed and ends it with 1.
WRITER = r"""
import os, random, signal, sys
path, size = sys.argv[1], int(sys.argv[2])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
fd = os.open(path, os.O_RDWR)
block = os.urandom(65536)
writes = 0
try:
    while not stop:
        for _ in range(16):
            os.pwrite(fd, block, random.randrange(size // 65536) * 65536)
            writes += 1
        os.fdatasync(fd)
    os.fsync(fd)
except OSError as e:
    print(f"error after {writes} writes: {e}", flush=True)
    sys.exit(1)
print(f"ok {writes} writes", flush=True)
"""


def free(path):
    sv = os.statvfs(path)
    return sv.f_bavail * sv.f_frsize


def fill_to(host, target):
    """Grow the filler file on the host until about target bytes are free
    (or the host is full: the writers take space too)."""
    with open(host.mnt / "filler", "ab") as f:
        while (short := free(host.mnt) - target) > 0:
            try:
                os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size, min(short, 4 * MiB))
            except OSError:
                break
    run("sync", "-f", host.mnt)  # btrfs counts it only once committed


def create(vssd, vols, check=True):
    p = vssd.vssadmin("create", "shadow", *[f"--for={v.mnt}" for v in vols], "--json", check=check)
    return [s["id"] for s in json.loads(p.stdout)] if p.returncode == 0 else p


def ext4_state(vol):
    """The ext4 of a live volume as the kernel sees it: its mount options and
    the errors it recorded (a journal abort is one)."""
    dev = os.path.basename(vol.device)
    with open("/proc/self/mountinfo") as f:
        opts = next(line.split()[5] for line in f if line.split()[4] == str(vol.mnt))
    errors = int(open(f"/sys/fs/ext4/{dev}/errors_count").read())
    return opts.split(",")[0], errors


def deleted(log):
    """(snapshot, set) of each deletion for the reserve, in the order logged."""
    return re.findall(r"under its reserve of .*: deleting the oldest snapshot there, (\{[0-9a-f-]+\}) of \S+ "
                      r"\(set (\{[0-9a-f-]+\})\)", log)


def deleted_ids(log):
    return [snap for snap, _ in deleted(log)]


def sets_made(log):
    return re.findall(r"set (\{[0-9a-f-]+\}): created,", log)


def wait_for(cond, timeout, what, vssd):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} never happened:\n{vssd.log()[-4000:]}")


@pytest.fixture
def writers():
    procs = []

    def start(vols, size):
        for v in vols:
            run("dd", "if=/dev/urandom", f"of={v.mnt}/data", "bs=1M", f"count={size // MiB}", "conv=fsync")
            procs.append(subprocess.Popen([sys.executable, "-c", WRITER, str(v.mnt / "data"), str(size)],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        return procs

    def stop():
        out = []
        for p in procs:
            if p.poll() is None:
                p.terminate()
            out.append((p.wait(timeout=60), p.stdout.read()))
        procs.clear()
        return out

    yield start, stop
    stop()


def test_reserve_deletes_oldest_before_the_live_volumes_starve(make_fs, daemon_factory, writers):
    """Every set shares each volume's data with the host again, and the
    writers unshare it within a second or two (XFS copies on write in 128 KiB
    pieces): each set costs the host up to the volumes' data. That is less
    than the reserve here, so the reserve, kept before each set, is what stands
    between the writers and a full host."""
    start_writers, stop_writers = writers
    n = 6 if LONG else 3
    data = 24 * MiB
    reserve = (160 if LONG else 96) * MiB  # more than a set can cost: n * data
    host = make_fs("xfs", "1G" if LONG else "600M", "host")
    vols = [make_fs("ext4", "64M", f"vol{i}", on=host) for i in range(n)]
    vssd = daemon_factory(config=NESTING + f"HostReserve = {reserve // MiB}M\n")
    procs = start_writers(vols, data)

    # Sets while there is room; each one's snapshots keep what the writers
    # overwrite after it.
    for _ in range(3):
        create(vssd, vols)
        time.sleep(1.5)

    # Near the reserve, sets go on: without the reserve the writers would
    # fill the host within two of them. A set is refused, or made and (the
    # writers taking the host under the reserve) deleted at once, or kept.
    fill_to(host, reserve + 8 * MiB)
    for _ in range(12 if LONG else 6):
        p = create(vssd, vols, check=False)
        assert isinstance(p, list) or re.search("VSS_E_INSUFFICIENT_STORAGE|VSS_E_OBJECT_NOT_FOUND", p.stderr), p
        time.sleep(1.5)
        assert all(p.poll() is None for p in procs), stop_writers()
    assert deleted_ids(vssd.log()), "nothing was deleted for the reserve"

    # Fill the host until the reserve is hit for good: every snapshot goes,
    # and a new set is refused with nothing left behind.
    deadline = time.monotonic() + 30
    while vssd.list_shadows():
        assert time.monotonic() < deadline, vssd.log()[-4000:]
        fill_to(host, reserve - 32 * MiB)
        time.sleep(0.3)
    assert host.store_entries() == []
    # XFS frees a deleted clone's blocks in the background (inodegc): free
    # space may still rise after the store is empty. Fill until it stays
    # under the reserve.
    deadline = time.monotonic() + 30
    while True:
        fill_to(host, reserve - 32 * MiB)
        time.sleep(0.5)
        run("sync", "-f", host.mnt)
        if free(host.mnt) < reserve - 16 * MiB:
            time.sleep(0.5)
            if free(host.mnt) < reserve - 16 * MiB:
                break
        assert time.monotonic() < deadline, free(host.mnt)
    p = create(vssd, vols, check=False)
    assert not isinstance(p, list) and "VSS_E_INSUFFICIENT_STORAGE (0x8004231f)" in p.stderr, p
    assert re.search(r"VSS_E_INSUFFICIENT_STORAGE .*: .* free; %d snapshot\(s\) there need its reserve of "
                     r"%d.0 MiB \(HostReserve=\)" % (n, reserve // MiB), vssd.log())
    assert vssd.list_shadows() == [] and host.store_entries() == []

    time.sleep(1)  # the writers go on under the reserve: nothing is shared any more
    results = stop_writers()
    assert all(code == 0 for code, _ in results), results

    # Deleted oldest first, set by set in the order they were made, each
    # snapshot once; at the end every snapshot of every set is gone.
    log = vssd.log()
    made = sets_made(log)
    gone = deleted(log)
    assert len({snap for snap, _ in gone}) == len(gone) == n * len(made), (gone, made)
    assert [made.index(s) for _, s in gone] == sorted(made.index(s) for _, s in gone), (gone, made)

    # The live volumes never saw an error: read-write, nothing recorded,
    # a last write lands, and the filesystem checks clean.
    for v in vols:
        assert ext4_state(v) == ("rw", 0), v.mnt
        with open(v.mnt / "last", "wb") as f:
            f.write(b"x" * 64 * 1024)
            f.flush()
            os.fsync(f.fileno())
    for v in vols:
        run("umount", v.mnt)
        v.mounted = False
        p = run("e2fsck", "-fn", v.device, check=False)
        assert p.returncode == 0, p.stdout + p.stderr


def test_set_over_the_reserve_is_refused(make_fs, daemon_factory):
    host = make_fs("xfs", "400M", "host")
    a, b = (make_fs("ext4", "64M", f"vol{i}", on=host) for i in range(2))
    vssd = daemon_factory(config=NESTING + "HostReserve = 32M\n")
    first = create(vssd, [a])
    # Above the reserve, but not by the 1 MiB each of two snapshots takes.
    fill_to(host, 32 * MiB + MiB + MiB // 2)
    p = create(vssd, [a, b], check=False)
    assert "VSS_E_INSUFFICIENT_STORAGE (0x8004231f)" in p.stderr, p.stderr
    assert [s["id"] for s in vssd.list_shadows()] == first
    assert host.store_entries() == [f"{first[0]}.img"]
    assert not deleted_ids(vssd.log())  # above the reserve: the older snapshot stays


def test_set_being_cut_on_a_starving_host_fails(make_fs, daemon_factory):
    host = make_fs("xfs", "400M", "host")
    vol = make_fs("ext4", "64M", "vol", on=host)
    # The flush stalls: meanwhile the host falls under its reserve.
    vssd = daemon_factory(config=NESTING + "HostReserve = 32M\n", env={"VSS_FAULTS": "pre_commit:1:delay=1500"})
    p = vssd.background(VSSADMIN, "create", "shadow", f"--for={vol.mnt}")
    vssd.wait_log("cutting 1 volume(s)")
    fill_to(host, 16 * MiB)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "VSS_E_INSUFFICIENT_STORAGE (0x8004231f)" in err, (out, err)
    assert re.search(r"VSS_E_INSUFFICIENT_STORAGE .*: .* free; 1 snapshot\(s\) there need its reserve of 32.0 MiB",
                     vssd.log())
    assert vssd.list_shadows() == [] and host.store_entries() == []
    assert not is_frozen(vol.mnt)


def test_reserve_on_btrfs(make_fs, daemon_factory):
    fs = make_fs("btrfs", "1G", "pool")
    vol = fs.subvolume("vol")
    vssd = daemon_factory(config="HostReserve = 128M\n")
    run("dd", "if=/dev/urandom", f"of={vol}/data", "bs=1M", "count=200", "conv=fsync")
    ids = []
    for _ in range(2):
        p = vssd.vssadmin("create", "shadow", f"--for={vol}", "--json")
        ids.append(json.loads(p.stdout)[0]["id"])
        # Rewritten: the snapshot alone holds the old extents.
        run("dd", "if=/dev/urandom", f"of={vol}/data", "bs=1M", "count=200", "conv=fsync")
    run("btrfs", "filesystem", "sync", fs.mnt)
    fill_to(fs, 100 * MiB)
    # The first deletion brings back enough: the second snapshot stays.
    wait_for(lambda: deleted_ids(vssd.log()) == ids[:1] and free(fs.mnt) > 128 * MiB, 20,
             "the deletion of the oldest snapshot", vssd)
    time.sleep(3)  # past the btrfs settle: nothing more goes
    assert deleted_ids(vssd.log()) == ids[:1]
    assert [s["id"] for s in vssd.list_shadows()] == ids[1:]
