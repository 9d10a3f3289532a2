# SPDX-License-Identifier: LGPL-2.1-or-later
"""vssd acts on what it checked: a path from a client is resolved once, into
an fd, and every later step (the freeze, the snapshot, the mount of an
exposure, its unmount) acts on that fd. Paths swapped, symlinked or written
with ".." in between change nothing; vss's own stores are root's alone."""

import ctypes
import grp
import json
import os
import subprocess
import threading

from conftest import (ROOT, VSSADMIN, VSSD, by_step, is_frozen, mounts_below, no_clone_loops, parse_results, run,
                      terminate, wait_until)

NESTING = "MaxImageNesting = 2\n"
APP = ("create", "init", "context=app_rollback", "gather", "start")


def backup_operator():
    gid = grp.getgrnam("backup").gr_gid
    return 65534, gid, ["--reuid=65534", f"--regid={gid}", "--clear-groups"]


def create(vssd, *vols):
    return json.loads(vssd.vssadmin("create", "shadow", *[f"--for={v}" for v in vols], "--json").stdout)


def test_swapped_symlink_does_not_redirect_the_freeze(host, images, make_fs, workdir, daemon_factory):
    """Add X/d/vol, then make X/d a link to a tree whose vol leads to a
    filesystem vssd refuses: DoSnapshotSet freezes the volume that was added,
    never the one the name leads to now."""
    d, _ = workdir
    witness, real = images(2)
    plain = make_fs("ext4", "512M", "plain")  # no reflink: its images are refused
    refused = make_fs("ext4", "128M", "refused", on=plain)
    # Member 2's clone waits: member 1's clone in the store says every member is held.
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "commit:2:delay=2000"})
    x = d / "X"
    (x / "d" / "vol").mkdir(parents=True)
    (x / "evil").mkdir()
    run("mount", "--bind", real.mnt, x / "d" / "vol")
    res = vssd.requestor(*APP, f"add={refused.mnt}")
    assert by_step(res, "add")[0].hr == "VSS_E_VOLUME_NOT_SUPPORTED", res

    p, _ = vssd.spawn_requestor(*APP, f"add={witness.mnt}", f"add={x}/d/vol", "pause", "do", "props")
    try:
        os.rename(x / "d", x / "d.real")
        os.symlink(x / "evil", x / "d")
        os.symlink(refused.mnt, x / "evil" / "vol")
        p.stdin.write("go\n")
        p.stdin.flush()
        wait_until(lambda: len(host.store_entries()) >= 1, timeout=30, what="the first clone")
        refused_frozen = is_frozen(refused.mnt)
        real_frozen = is_frozen(real.mnt)
        out, err = p.communicate(timeout=60)
    finally:
        terminate(p)
    assert not refused_frozen, "vssd froze a filesystem it refused"
    assert real_frozen, "vssd did not hold the volume that was added"
    results = parse_results(out)
    assert by_step(results, "do")[0].detail == "VSS_S_ASYNC_FINISHED", out + err
    assert by_step(results, "props")[1].detail.endswith(f" {x}/d/vol")
    assert not is_frozen(refused.mnt) and not is_frozen(real.mnt)


def test_relative_volume_path_is_refused(btrfs, vssd):
    """vssd works from "/" and resolves nothing against it; vssadmin makes a
    user's relative path absolute before sending it."""
    a = btrfs.subvolume("a")
    res = vssd.requestor(*APP, "add=tests", "add=a", "supported=a")
    for r in by_step(res, "add") + by_step(res, "supported"):
        assert r.hr == "E_INVALIDARG" and str(ROOT) not in r.message, res
    assert "not an absolute path" in by_step(res, "add")[0].message
    p = run(VSSADMIN, "create", "shadow", "--for=a", "--json", env=vssd.client_env(), cwd=btrfs.mnt)
    (s,) = json.loads(p.stdout)
    assert s["volume"] == str(a)


def test_store_must_be_roots_own(btrfs, host, images, workdir, vssd):
    """A .vss that is someone else's, open to others, or a link is refused
    with VSS_E_PROVIDER_VETO, and nothing is made through it."""
    d, _ = workdir
    a = btrfs.subvolume("a")
    elsewhere = d / "elsewhere"
    elsewhere.mkdir()
    store = btrfs.store()

    def refused(volume, why):
        res = vssd.requestor(*APP, f"add={volume}", "do")
        add = by_step(res, "add")[0]
        assert add.hr == "VSS_E_PROVIDER_VETO" and why in add.message, res

    store.mkdir()
    os.chown(store, 65534, 65534)
    os.chmod(store, 0o700)
    refused(a, "not owned by root")
    assert list(store.iterdir()) == []
    os.chown(store, 0, 0)
    os.chmod(store, 0o777)
    refused(a, "mode 0700")
    assert list(store.iterdir()) == []
    store.rmdir()
    store.symlink_to(elsewhere)
    refused(a, "symbolic link")
    assert list(elsewhere.iterdir()) == []
    store.unlink()

    (v,) = images(1)
    host.store().symlink_to(elsewhere)
    res = vssd.requestor(*APP, f"add={v.mnt}")
    assert by_step(res, "add")[0].hr == "VSS_E_PROVIDER_VETO", res
    host.store().unlink()
    assert list(elsewhere.iterdir()) == []

    # A good store is made root's and 0700.
    create(vssd, a)
    st = os.stat(store)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700


def test_stores_and_snapshots_are_not_volumes(btrfs, host, images, daemon_factory):
    (v,) = images(1)
    vssd = daemon_factory(config=NESTING)
    a = btrfs.subvolume("a")
    (bs,) = create(vssd, a)
    (img,) = create(vssd, v.mnt)
    for path in (btrfs.store(), bs["snapshot_path"], host.store(), img["snapshot_path"]):
        res = vssd.requestor(*APP, f"add={path}", "supported=" + str(path))
        assert by_step(res, "add")[0].hr == "VSS_E_VOLUME_NOT_SUPPORTED", res
        assert "snapshot store" in by_step(res, "add")[0].message
        assert by_step(res, "supported")[0].detail == "no"


def test_btrfs_exposure_is_nosuid_nodev(btrfs, vssd):
    a = btrfs.subvolume("a")
    (s,) = create(vssd, a)
    vssd.vssadmin("expose", f"--shadow={s['id']}")
    where = vssd.list_shadows()[0]["exposed_name"]
    with open("/proc/self/mountinfo") as f:
        (options,) = [line.split()[5] for line in f if line.split()[4] == where]
    assert {"ro", "nosuid", "nodev"} <= set(options.split(",")), options
    vssd.vssadmin("unexpose", f"--shadow={s['id']}")
    assert mounts_below(where) == []


def test_unexpose_after_dotdot_and_symlinked_targets(host, images, workdir, daemon_factory):
    """The catalog records the directory actually mounted on; unexpose
    unmounts that very mount, and its loop device goes with it."""
    d, _ = workdir
    (v,) = images(1)
    vssd = daemon_factory(config=NESTING)
    (s,) = create(vssd, v.mnt)
    (d / "a").mkdir()
    (d / "target").mkdir()
    (d / "link").symlink_to(d / "target")
    for typed, real in ((f"{d}/a/../other", d / "other"), (str(d / "link"), d / "target")):
        vssd.vssadmin("expose", f"--shadow={s['id']}", f"--at={typed}")
        assert vssd.list_shadows()[0]["exposed_name"] == str(real)
        assert mounts_below(real) == [str(real)]
        vssd.vssadmin("unexpose", f"--shadow={s['id']}")
        assert mounts_below(real) == [] and no_clone_loops(d)
        assert vssd.list_shadows()[0]["exposed_name"] is None


def operator_dirs(d):
    """mine (the operator's), with a directory and a link to roots (root's,
    empty: the target of the attacks) in it."""
    uid, gid, operator = backup_operator()
    mine, roots = d / "mine", d / "roots"
    mine.mkdir()
    roots.mkdir()
    os.chown(mine, uid, gid)
    (mine / "dir").mkdir()
    os.chown(mine / "dir", uid, gid)
    (mine / "link").symlink_to(roots)
    return operator, mine, roots


def test_expose_through_a_link_to_roots_directory(btrfs, workdir, vssd):
    """Whatever a link in the operator's directory leads to is judged as
    what it is: root's directory is refused, and nothing is made in it."""
    d, _ = workdir
    a = btrfs.subvolume("a")
    (s,) = create(vssd, a)
    operator, mine, roots = operator_dirs(d)
    res = vssd.requestor("create", "init", f"expose-of={s['id']}={mine}/link", f"expose-of={s['id']}={mine}/link/new",
                         f"expose-of={s['id']}={mine}/new/../link/new", user=operator)
    assert [r.hr for r in by_step(res, "expose-of")] == ["E_ACCESSDENIED"] * 3, res
    assert list(roots.iterdir()) == [] and not (mine / "new").exists()
    assert mounts_below(roots) == []


def test_expose_never_follows_a_swapped_link(btrfs, workdir, vssd):
    """A backup operator swaps its own directory for a link to one of root's
    while exposing, over and over: the mount lands in its directory or
    nowhere, never in root's."""
    d, _ = workdir
    a = btrfs.subvolume("a")
    (s,) = create(vssd, a)
    operator, mine, roots = operator_dirs(d)
    t = mine / "t"
    os.rename(mine / "dir", t)
    stop = threading.Event()
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2

    def swap():
        # t is always there, the operator's directory or a link to root's.
        while not stop.is_set():
            libc.renameat2(AT_FDCWD, bytes(t), AT_FDCWD, bytes(mine / "link"), RENAME_EXCHANGE)

    seen = []

    def watch():
        # Even a mount that an unexpose took away again counts.
        while not stop.is_set():
            if mounts_below(roots):
                seen.append(True)

    threads = [threading.Thread(target=swap), threading.Thread(target=watch)]
    for th in threads:
        th.start()
    try:
        steps = [step for _ in range(40) for step in (f"expose-of={s['id']}={t}", f"unexpose-of={s['id']}")]
        res = vssd.requestor("create", "init", *steps, user=operator, timeout=300)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not seen and mounts_below(roots) == [], "a snapshot was mounted in root's directory"
    assert len(by_step(res, "expose-of")) == 40
    # Whatever was mounted is unmounted by what it is.
    if vssd.list_shadows()[0]["exposed_name"]:
        vssd.vssadmin("unexpose", f"--shadow={s['id']}")
    assert mounts_below(mine) == []


def test_backup_operator_exposes_a_set_into_its_own_directory(host, images, make_fs, workdir, daemon_factory):
    d, _ = workdir
    uid, gid, operator = backup_operator()
    vols = images(2)
    vssd = daemon_factory(config=NESTING)
    out = create(vssd, *[v.mnt for v in vols])
    restore = d / "restore"
    restore.mkdir()
    os.chown(restore, uid, gid)
    vssd.vssadmin("expose", f"--set={out[0]['set_id']}", f"--at={restore}", user=operator)
    for v in vols:
        where = f"{restore}{v.mnt}"
        assert mounts_below(where) == [where]
        # The directories vssd made on the way are the operator's.
        assert os.stat(os.path.dirname(where)).st_uid == uid
    vssd.vssadmin("unexpose", f"--set={out[0]['set_id']}", user=operator)
    assert mounts_below(restore) == [] and no_clone_loops(d)
    # Not below a directory that is not its own.
    other = d / "other"
    other.mkdir()
    p = vssd.vssadmin("expose", f"--set={out[0]['set_id']}", f"--at={other}", user=operator, check=False)
    assert "E_ACCESSDENIED" in p.stderr and list(other.iterdir()) == []


def test_freeze_marker_is_never_written_through_a_link(host, images, workdir, daemon_factory):
    d, _ = workdir
    (v,) = images(1)
    vssd = daemon_factory(config=NESTING)
    victim = d / "victim"
    victim.write_text("keep\n")
    (vssd.dir / "frozen").symlink_to(victim)
    (s,) = create(vssd, v.mnt)
    assert s["consistency"] == "crash-consistent across the set"
    assert victim.read_text() == "keep\n"
    assert not os.path.lexists(vssd.dir / "frozen")

    # At start-up a planted link is removed, not read.
    (vssd.dir / "frozen").symlink_to(victim)
    vssd.restart()
    assert not os.path.lexists(vssd.dir / "frozen") and victim.read_text() == "keep\n"
    assert "freeze marker is a symbolic link" in vssd.log()


def test_runtime_directory_must_be_roots_alone(workdir):
    d, _ = workdir
    shared = d / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (d / "empty.conf").write_text("")
    p = subprocess.Popen([VSSD, "--socket", shared / "vssd.sock", "--state-dir", d / "state2", "--config",
                          d / "empty.conf"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=15)
    finally:
        terminate(p)
    assert p.returncode != 0 and "must be owned by root and writable by root only" in out


def test_unexpose_finds_a_moved_exposure(btrfs, workdir, vssd):
    """A directory above an exposure renamed: unexpose still unmounts it (found
    by what it is), and a restarting vssd records where it is now."""
    d, _ = workdir
    a = btrfs.subvolume("a")
    (s,) = create(vssd, a)
    (d / "p" / "x").mkdir(parents=True)
    vssd.vssadmin("expose", f"--shadow={s['id']}", f"--at={d}/p/x")
    os.rename(d / "p", d / "q")
    vssd.vssadmin("unexpose", f"--shadow={s['id']}")
    assert mounts_below(d / "q") == [] and vssd.list_shadows()[0]["exposed_name"] is None

    vssd.vssadmin("expose", f"--shadow={s['id']}", f"--at={d}/q/x")
    vssd.stop()
    os.rename(d / "q", d / "r")
    vssd.start()
    assert vssd.list_shadows()[0]["exposed_name"] == f"{d}/r/x"
    assert f"is now at {d}/r/x" in vssd.log()
    vssd.vssadmin("unexpose", f"--shadow={s['id']}")
    assert mounts_below(d / "r") == []
