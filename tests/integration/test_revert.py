# SPDX-License-Identifier: LGPL-2.1-or-later
"""Revert a volume to one of its snapshots (vssadmin revert shadow,
RevertToSnapshot): on btrfs (a subvolume mounted with subvol=) and on image
volumes (ext4 and XFS in images on a reflink host). The volume holds exactly
what the snapshot holds afterwards; newer snapshots are kept and say so; a
volume in use, an exposed snapshot, a caller who is not root and an
auto-release snapshot are refused with nothing changed; and vssd killed at
each step of a revert finishes it at its next start, leaving nothing behind.
"""

import contextlib
import json
import os
import pathlib
import signal
import subprocess

import pytest

from conftest import VSSADMIN, run, wait_until

STEPS = 6  # of the btrfs and image providers' revert (their comments)
# The test's host is itself in an image on /tmp.
CONFIG = "MaxImageNesting = 2\n"


@pytest.fixture
def vssd(daemon_factory):
    return daemon_factory(config=CONFIG)


class Volume:
    """What the fixtures share: the mount point (.mnt) and where leftovers
    would be (.leftovers(): temporary names, loop devices)."""

    def __init__(self, mnt, kind, fs):
        self.mnt = pathlib.Path(mnt)
        self.kind = kind
        self.fs = fs

    def leftovers(self):
        if self.kind == "btrfs":
            return [p.name for p in self.fs.mnt.iterdir() if ".vss-revert-" in p.name]
        found = [p.name for p in self.fs.image.parent.iterdir() if ".vss-revert-" in p.name]
        # A device vssd detached from the old image while a copy of the old
        # mount lives on in another mount namespace (another test's `vssadmin
        # exec`) stays until that copy goes: the kernel marks it autoclear,
        # and it is not vssd's to wait for.
        loops = [line for line in run("losetup", "-a", "-O", "NAME,AUTOCLEAR,BACK-FILE", "-n").stdout.splitlines()
                 if str(self.fs.image) in line and not (line.split()[1] == "1" and line.endswith(" (deleted)"))]
        if len(loops) != 1:
            found += loops
        return found


def btrfs_volume(make_fs):
    """A subvolume mounted as its mount's root, by subvol=."""
    fs = make_fs("btrfs", "1G", "btrfs-top")
    run("btrfs", "subvolume", "create", fs.mnt / "vol")
    mnt = fs.mnt.parent / "bvol"
    mnt.mkdir()
    run("mount", "-o", "subvol=/vol", fs.device, mnt)
    return Volume(mnt, "btrfs", fs)


@pytest.fixture(params=["btrfs", "ext4", "xfs"])
def volume(request, make_fs, images):
    if request.param == "btrfs":
        return btrfs_volume(make_fs)
    return image_volume(images, request.param)


def image_volume(images, fstype):
    fs = images(1, fstype)[0]
    return Volume(fs.mnt, "image", fs)


def content(root):
    """Every file and directory below root but the snapshot store, with
    what the files hold."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".vss" or rel.startswith(".vss/") or rel == "lost+found":
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not (rel == "." and d in (".vss", "lost+found"))]
        for d in dirnames:
            found[os.path.normpath(os.path.join(rel, d)) + "/"] = None
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                found[os.path.normpath(os.path.join(rel, f))] = fh.read()
    return found


def shadow(vssd, vol):
    out = vssd.vssadmin("create", "shadow", f"--for={vol.mnt}", "--json")
    return json.loads(out.stdout)[0]["id"]


def populate(vol, tag):
    d = vol.mnt / "dir"
    d.mkdir(exist_ok=True)
    (vol.mnt / "a.txt").write_text(f"a {tag}\n")
    (d / "b.bin").write_bytes(os.urandom(4096) + tag.encode())
    os.sync()


@contextlib.contextmanager
def paused(vssd, *steps):
    """A requestor that ran steps and waits (holding what they made) until
    the block ends; yields its results."""
    p, results = vssd.spawn_requestor(*steps, "pause")
    try:
        yield results
    finally:
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait(timeout=30)


def revert(vssd, snapshot, *extra, check=True):
    return vssd.vssadmin("revert", "shadow", f"--shadow={snapshot}", *extra, check=check)


def mount_options(mnt):
    return run("findmnt", "-n", "-o", "FSTYPE,OPTIONS", "--mountpoint", str(mnt)).stdout.split()


def test_revert_holds_the_snapshot(vssd, volume):
    populate(volume, "one")
    before = content(volume.mnt)
    options = mount_options(volume.mnt)
    first = shadow(vssd, volume)
    # Written after the snapshot: the revert takes it all back.
    populate(volume, "two")
    (volume.mnt / "later.txt").write_text("gone after the revert\n")
    os.remove(volume.mnt / "a.txt")
    second = shadow(vssd, volume)
    after = content(volume.mnt)
    assert after != before

    p = revert(vssd, first)
    assert "Successfully reverted" in p.stdout, p.stdout
    assert content(volume.mnt) == before
    # Mounted where it was, with its options (btrfs: its subvolume's new id).
    now = mount_options(volume.mnt)
    assert now[0] == options[0]
    if volume.kind == "btrfs":
        strip = lambda o: ",".join(x for x in o.split(",") if not x.startswith("subvolid="))
        assert strip(now[1]) == strip(options[1])
    else:
        # An XFS whose old instance lives on in another mount namespace
        # (other suites on the machine unshare theirs) gets nouuid.
        assert now[0] == options[0] and now[1].replace(",nouuid", "") == options[1]
    assert volume.leftovers() == []

    # Both snapshots are kept; the newer one says it is from before the revert.
    shadows = {s["id"]: s for s in vssd.list_shadows(f"--for={volume.mnt}")}
    assert set(shadows) == {first, second}
    assert f"taken before the volume was reverted to {first}" in shadows[second]["consistency"]
    assert "reverted" not in shadows[first]["consistency"]
    # And the text listing shows it too.
    assert f"reverted to {first}" in vssd.vssadmin("list", "shadows").stdout

    # The newer snapshot is still whole: reverting to it brings "two" back.
    revert(vssd, second)
    assert content(volume.mnt) == after
    # The volume works: a new set of it is made.
    shadow(vssd, volume)
    assert volume.leftovers() == []


def test_revert_refuses_a_volume_in_use(vssd, volume):
    populate(volume, "one")
    snap = shadow(vssd, volume)
    populate(volume, "two")
    now = content(volume.mnt)
    holder = subprocess.Popen(["sleep", "60"], cwd=volume.mnt)
    try:
        p = revert(vssd, snap, check=False)
        assert p.returncode != 0
        assert "VSS_E_VOLUME_IN_USE" in p.stderr, p.stderr
        assert f"process {holder.pid}" in p.stderr, p.stderr
        assert content(volume.mnt) == now
        assert volume.leftovers() == []
        # Forced: unmounted although in use (lazily), and reverted.
        revert(vssd, snap, "--force-unmount")
    finally:
        holder.kill()
        holder.wait()
    populate_one = content(volume.mnt)
    assert populate_one["a.txt"] == b"a one\n"
    wait_until(lambda: volume.leftovers() == [], what="the old filesystem to go")


def test_revert_refusals(vssd, make_fs, images):
    vol = image_volume(images, "ext4")
    populate(vol, "one")
    snap = shadow(vssd, vol)
    populate(vol, "two")
    now = content(vol.mnt)

    # Exposed: refused, naming where.
    exposed = vssd.vssadmin("expose", f"--shadow={snap}").stdout.split(" exposed at ")[1].strip()
    p = revert(vssd, snap, check=False)
    assert "VSS_E_VOLUME_IN_USE" in p.stderr and exposed in p.stderr, p.stderr
    vssd.vssadmin("unexpose", f"--shadow={snap}")

    # Not root: refused, even for a backup operator.
    p = vssd.vssadmin("revert", "shadow", f"--shadow={snap}", check=False,
                      user=["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
    assert p.returncode != 0 and "E_ACCESSDENIED" in p.stderr, p.stderr

    # Unknown snapshot.
    p = revert(vssd, "{00000000-0000-0000-0000-000000000001}", check=False)
    assert "VSS_E_OBJECT_NOT_FOUND" in p.stderr, p.stderr

    # An auto-release snapshot (a requestor's backup set, while it lives).
    with paused(vssd, "create", "init", "context=file_share_backup", "start", f"add={vol.mnt}", "do") as results:
        assert [r.hr for r in results if r.step == "do"] == ["S_OK"], results
        auto = [r for r in results if r.step == "add"][0].detail
        q = revert(vssd, auto, check=False)
        assert "VSS_E_UNSUPPORTED_CONTEXT" in q.stderr, q.stderr
    assert content(vol.mnt) == now
    assert vol.leftovers() == []


def reverts_recorded(vssd):
    import sqlite3

    db = sqlite3.connect(vssd.state / "catalog.db")
    try:
        return db.execute("SELECT volume FROM reverts").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["btrfs", "ext4", "xfs"])
def test_revert_killed_at_each_step_is_finished_at_start(daemon_factory, make_fs, images, kind):
    vol = btrfs_volume(make_fs) if kind == "btrfs" else image_volume(images, kind)
    vssd = daemon_factory(config=CONFIG, start=False)
    for step in range(1, STEPS + 1):
        vssd.env["VSS_FAULTS"] = f"revert:{step}:delay=60000"
        vssd.start()
        populate(vol, f"before {step}")
        (vol.mnt / f"kept-{step}").write_text("in the snapshot\n")
        before = content(vol.mnt)
        snap = shadow(vssd, vol)
        populate(vol, f"after {step}")
        (vol.mnt / f"lost-{step}").write_text("written after the snapshot\n")
        client = vssd.background(VSSADMIN, "revert", "shadow", f"--shadow={snap}")
        vssd.wait_log(f"VSS_FAULTS: delaying revert step {step} by", timeout=30)
        # Stalled just before step `step`: vssd dies there.
        vssd.kill()
        client.communicate(timeout=30)
        assert reverts_recorded(vssd) == [(str(vol.mnt),)]
        del vssd.env["VSS_FAULTS"]
        vssd.start()
        vssd.wait_log("finishing it")
        # Finished before vssd listened: the volume is the snapshot, mounted.
        assert content(vol.mnt) == before, f"step {step}:\n{vssd.log()[-4000:]}"
        assert reverts_recorded(vssd) == []
        assert vssd.log().count(f"reverted to snapshot {snap}") == 1
        assert vol.leftovers() == [], f"step {step}"
        ids = {s["id"] for s in vssd.list_shadows(f"--for={vol.mnt}")}
        assert snap in ids
        vssd.stop()


def staged(daemon_factory, vol, faults):
    """A vssd with faults, a snapshot of vol and a change after it: the
    daemon, what the snapshot holds, and its id."""
    vssd = daemon_factory(config=CONFIG, env={"VSS_FAULTS": faults})
    populate(vol, "one")
    before = content(vol.mnt)
    snap = shadow(vssd, vol)
    populate(vol, "two")
    return vssd, before, snap


def test_revert_blocks_the_volume(daemon_factory, images):
    """While a volume is reverted: no set of it, no second revert; its
    status is pending, then done. While a set is being made: no revert."""
    vol = image_volume(images, "ext4")
    vssd, before, snap = staged(daemon_factory, vol, "revert:3:delay=4000")

    # The creation slot taken: refused, nothing changed.
    with paused(vssd, "create", "init", "start"):
        q = revert(vssd, snap, check=False)
        assert "VSS_E_SNAPSHOT_SET_IN_PROGRESS" in q.stderr, q.stderr
    assert reverts_recorded(vssd) == []

    client = vssd.background(VSSADMIN, "revert", "shadow", f"--shadow={snap}")
    vssd.wait_log("VSS_FAULTS: delaying revert step 3 by", timeout=30)
    q = vssd.vssadmin("create", "shadow", f"--for={vol.mnt}", check=False)
    assert "VSS_E_REVERT_IN_PROGRESS" in q.stderr and snap in q.stderr, q.stderr
    q = revert(vssd, snap, check=False)
    assert "VSS_E_REVERT_IN_PROGRESS" in q.stderr, q.stderr
    q = vssd.vssadmin("delete", "shadows", f"--shadow={snap}", "--quiet", check=False)
    assert "VSS_E_REVERT_IN_PROGRESS" in q.stderr, q.stderr
    # QueryRevertStatus: pending until the revert ends, then finished.
    results = vssd.requestor("create", "init", f"revert-status={vol.mnt}")
    assert [(r.hr, r.detail) for r in results if r.step == "revert-status"] == [("S_OK", "VSS_S_ASYNC_FINISHED")]
    out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    assert content(vol.mnt) == before
    results = vssd.requestor("create", "init", f"revert-status={vol.mnt}", f"revert={snap}")
    assert [r.hr for r in results if r.step.startswith("revert")] == ["VSS_E_OBJECT_NOT_FOUND", "S_OK"]
    assert vol.leftovers() == []


def test_failed_resume_blocks_the_volume_until_finished(daemon_factory, make_fs):
    vol = btrfs_volume(make_fs)
    vssd, before, snap = staged(daemon_factory, vol, "revert:3:delay=60000")
    other = shadow(vssd, vol)
    client = vssd.background(VSSADMIN, "revert", "shadow", f"--shadow={snap}")
    vssd.wait_log("VSS_FAULTS: delaying revert step 3 by", timeout=30)
    vssd.kill()
    client.communicate(timeout=30)

    # The resume fails (once): the revert stays recorded, the volume blocked.
    vssd.env["VSS_FAULTS"] = "revert:3:EIO*1"
    vssd.start()
    assert "is unfinished" in vssd.log() and "restart vssd" in vssd.log()
    assert reverts_recorded(vssd) == [(str(vol.mnt),)]
    q = vssd.vssadmin("create", "shadow", f"--for={vol.mnt}", check=False)
    assert "VSS_E_REVERT_IN_PROGRESS" in q.stderr and "unfinished" in q.stderr, q.stderr
    q = revert(vssd, other, check=False)
    assert "VSS_E_REVERT_IN_PROGRESS" in q.stderr, q.stderr
    # Its snapshots were not dropped as missing while it was not mounted.
    assert {s["id"] for s in vssd.list_shadows()} == {snap, other}
    results = vssd.requestor("create", "init", f"revert-status={vol.mnt}")
    assert [r.detail for r in results if r.step == "revert-status"] == ["VSS_E_UNEXPECTED_PROVIDER_ERROR"]

    # The same revert again finishes it from its plan.
    revert(vssd, snap)
    assert content(vol.mnt) == before
    assert reverts_recorded(vssd) == []
    assert vol.leftovers() == []
    shadow(vssd, vol)


def test_sigterm_waits_for_the_revert(daemon_factory, images):
    """vssd stopping lets the revert under way end, answers it, then exits."""
    vol = image_volume(images, "ext4")
    vssd, before, snap = staged(daemon_factory, vol, "revert:2:delay=1500")
    client = vssd.background(VSSADMIN, "revert", "shadow", f"--shadow={snap}")
    vssd.wait_log("VSS_FAULTS: delaying revert step 2 by", timeout=30)
    vssd.proc.send_signal(signal.SIGTERM)
    out, err = client.communicate(timeout=60)
    assert client.returncode == 0, err
    assert vssd.proc.wait(timeout=60) == 0
    vssd.proc = None
    assert "waiting for the revert" in vssd.log()
    assert content(vol.mnt) == before
    assert reverts_recorded(vssd) == []
    assert vol.leftovers() == []


def test_xfs_alive_in_another_mount_namespace(vssd, images):
    """A copy of the volume's mount in another mount namespace (unshare)
    keeps the old XFS alive after the unmount here, with the snapshot's
    UUID: the reverted one is mounted with nouuid rather than left
    unmounted."""
    vol = image_volume(images, "xfs")
    populate(vol, "one")
    before = content(vol.mnt)
    snap = shadow(vssd, vol)
    populate(vol, "two")
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "60"])
    try:
        wait_until(lambda: os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"),
                   what="the other mount namespace")
        revert(vssd, snap)
        assert content(vol.mnt) == before
        assert "nouuid" in mount_options(vol.mnt)[1]
        assert "lives on elsewhere" in vssd.log()
    finally:
        holder.kill()
        holder.wait()
    wait_until(lambda: vol.leftovers() == [], what="the old loop device to go")
    assert reverts_recorded(vssd) == []
