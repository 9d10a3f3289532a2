# SPDX-License-Identifier: LGPL-2.1-or-later
"""Attempts to make vssd freeze, write or act where it must not: a member
whose filesystem rests on another member's (by way of a layer that is not in
the set, or of a second name for the same filesystem), vssd's own state on a
filesystem stacked on a volume, things that are not volumes, a filesystem
frozen by someone else, a volume unmounted after it was added. Each gets a
clear VSS code, or is made on what was added, and nothing is left frozen.

Nothing here freezes anything but the test's own loop filesystems, and in
the attacks that would hang on a vulnerable vssd the set is never cut: the
refusal is expected at AddToSnapshotSet."""

import fcntl
import grp
import json
import os
import socket
import stat

from conftest import (FIFREEZE, FITHAW, REQUESTOR, by_step, is_frozen, is_frozen_fd, no_clone_loops, parse_results, run,
                      terminate, wait_until)

APP = ("create", "init", "context=app_rollback", "gather", "start")


def backup_operator():
    gid = grp.getgrnam("backup").gr_gid
    return ["--reuid=65534", f"--regid={gid}", "--clear-groups"]


def adds(vssd, *volumes, user=None, config_steps=("create", "init", "gather", "start")):
    res = vssd.requestor(*config_steps, *[f"add={v}" for v in volumes], user=user)
    return [r.hr for r in by_step(res, "add")], res


def stacked(make_fs, host):
    """A (an XFS guest on the host, able to hold images), B (an XFS in an
    image on A) and C (an ext4 in an image on B): C's writes go through B to
    A, so freezing A stalls C's freeze and its clone."""
    a = make_fs("xfs", "700M", "a", on=host)
    b = make_fs("xfs", "320M", "b", on=a)
    c = make_fs("ext4", "32M", "c", on=b)
    return a, b, c


def test_member_resting_on_another_through_a_layer_not_in_the_set(host, make_fs, daemon_factory):
    """C's image is on B, not on A: no name of C's lies below A, yet C rests
    on A. Freezing both would freeze A under C's own freeze."""
    a, b, c = stacked(make_fs, host)
    vssd = daemon_factory(config="MaxImageNesting = 4\n")
    for order in ((a.mnt, c.mnt), (c.mnt, a.mnt)):
        hrs, res = adds(vssd, *order)
        assert hrs == ["S_OK", "VSS_E_NESTED_VOLUME_LIMIT"], res
        assert "nested" in by_step(res, "add")[1].message, res
    # Each alone is a volume, and B with C is refused as before (by name).
    assert adds(vssd, c.mnt)[0] == ["S_OK"]
    assert adds(vssd, b.mnt, c.mnt)[0] == ["S_OK", "VSS_E_NESTED_VOLUME_LIMIT"]
    assert not is_frozen(a.mnt) and not is_frozen(b.mnt) and not is_frozen(c.mnt)
    assert host.store_entries() == [] and a.store_entries() == [] and b.store_entries() == []


def test_member_under_a_second_name_of_another(host, make_fs, workdir, daemon_factory):
    """A bind mount gives A a second name: B's image lies on A, but not below
    that name. The same filesystem twice is refused as such."""
    d, _ = workdir
    a = make_fs("xfs", "512M", "a", on=host)
    b = make_fs("ext4", "32M", "b", on=a)
    alias = d / "alias"
    alias.mkdir()
    run("mount", "--bind", a.mnt, alias)
    vssd = daemon_factory(config="MaxImageNesting = 3\n")
    for order in ((alias, b.mnt), (b.mnt, alias), (alias, b.image)):
        hrs, res = adds(vssd, *order)
        assert hrs == ["S_OK", "VSS_E_NESTED_VOLUME_LIMIT"], res
    hrs, res = adds(vssd, a.mnt, alias)
    assert hrs == ["S_OK", "VSS_E_OBJECT_ALREADY_EXISTS"], res
    assert not is_frozen(a.mnt) and not is_frozen(b.mnt)
    assert host.store_entries() == [] and a.store_entries() == []


def test_image_under_a_second_name(host, images, daemon_factory):
    """A hard link is the same image by another name: given alone it is held
    like its mount (its filesystem is mounted, whatever name the loop device
    was attached by), and with its mount it is the same member twice."""
    a, loose = images(2)
    run("umount", loose.mnt)
    loose.mounted = False
    os.link(a.image, host.mnt / "a-link.img")
    os.link(loose.image, host.mnt / "loose-link.img")
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    for order in ((a.mnt, host.mnt / "a-link.img"), (host.mnt / "a-link.img", a.image),
                  (loose.image, host.mnt / "loose-link.img")):
        hrs, res = adds(vssd, *order)
        assert hrs == ["S_OK", "VSS_E_OBJECT_ALREADY_EXISTS"], res
    (s,) = json.loads(vssd.vssadmin("create", "shadow", f"--for={host.mnt}/a-link.img", "--json").stdout)
    assert s["consistency"] == "crash-consistent across the set", s
    assert not is_frozen(a.mnt)


def test_catalog_on_a_filesystem_stacked_on_the_volume(host, make_fs, daemon_factory):
    """vssd's catalog lives on S, whose image lies on A: freezing A would
    stall every catalog write. A is refused, as the filesystem of the
    catalog itself is; another volume is not."""
    a = make_fs("xfs", "512M", "a", on=host)
    s = make_fs("ext4", "32M", "s", on=a)
    other = make_fs("ext4", "64M", "other", on=host)
    vssd = daemon_factory(config="MaxImageNesting = 3\n", start=False)
    vssd.state = s.mnt / "state"
    vssd.start()
    for volume in (a.mnt, s.mnt):
        hrs, res = adds(vssd, volume)
        assert hrs == ["VSS_E_VOLUME_NOT_SUPPORTED"], res
        assert "its catalog" in by_step(res, "add")[0].message, res
    assert adds(vssd, other.mnt)[0] == ["S_OK"]
    assert not is_frozen(a.mnt) and not is_frozen(s.mnt)
    vssd.stop()


def test_things_that_are_not_volumes(host, images, workdir, daemon_factory):
    """A FIFO (opening it would block), a socket, a device node, the loop
    device of a volume, a plain file, a directory that is no mount, ".." in
    the path, a symbolic link to "/": each gets a clear code, as a backup
    operator and as root, and vssd keeps answering."""
    d, _ = workdir
    (vol,) = images(1)
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    junk = d / "junk"
    junk.mkdir()
    os.chmod(junk, 0o777)
    os.mkfifo(junk / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(junk / "sock"))
    os.mknod(junk / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (junk / "plain").write_text("not an image\n")
    (junk / "dir").mkdir()
    os.symlink("/", junk / "root")
    cases = {
        junk / "fifo": "VSS_E_OBJECT_NOT_FOUND",
        junk / "sock": "VSS_E_OBJECT_NOT_FOUND",
        junk / "null": "VSS_E_OBJECT_NOT_FOUND",
        vol.device: "VSS_E_OBJECT_NOT_FOUND",
        junk / "plain": "VSS_E_OBJECT_NOT_FOUND",
        junk / "dir": "VSS_E_OBJECT_NOT_FOUND",
        f"{vol.mnt}/../{vol.mnt.name}/..": "VSS_E_OBJECT_NOT_FOUND",
        junk / "root": "VSS_E_VOLUME_NOT_SUPPORTED",
        "/": "VSS_E_VOLUME_NOT_SUPPORTED",
    }
    try:
        for user in (backup_operator(), None):
            for volume, code in cases.items():
                hrs, res = adds(vssd, volume, user=user)
                assert hrs == [code], (volume, res)
    finally:
        sock.close()
    # The volume itself, by a path with "..", is the volume.
    hrs, res = adds(vssd, f"{vol.mnt}/../{vol.mnt.name}", user=backup_operator())
    assert hrs == ["S_OK"], res
    assert host.store_entries() == [] and not is_frozen(vol.mnt)


def test_volume_frozen_by_someone_else(host, images, daemon_factory):
    """Frozen by another holder: the set fails with a veto, and the freeze is
    left to its holder (vssd thaws only what it froze)."""
    a, b = images(2)
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    fd = os.open(b.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, FIFREEZE, 0)
        res = vssd.requestor(*APP, f"add={a.mnt}", f"add={b.mnt}", "do", timeout=60)
        still_frozen = is_frozen_fd(fd)
    finally:
        try:
            fcntl.ioctl(fd, FITHAW, 0)
        except OSError:
            pass
        os.close(fd)
    (do,) = by_step(res, "do")
    assert do.detail == "VSS_E_PROVIDER_VETO" or do.hr == "VSS_E_PROVIDER_VETO", res
    assert still_frozen, "vssd thawed a freeze that was not its own"
    assert not is_frozen(a.mnt), "vssd left a member frozen"
    assert host.store_entries() == []
    assert not (vssd.dir / "frozen").exists()


def test_volume_lazily_unmounted_after_it_was_added(host, images, daemon_factory):
    """Unmounted (detached) between AddToSnapshotSet and DoSnapshotSet: vssd
    holds the filesystem it added, through its fd, the same superblock on
    the same loop device, and thaws it; nothing else is frozen."""
    a, b = images(2)
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    fd = os.open(b.mnt, os.O_RDONLY | os.O_DIRECTORY)
    p, _ = vssd.spawn_requestor(*APP, f"add={a.mnt}", f"add={b.mnt}", "pause", "do")
    try:
        run("umount", "-l", b.mnt)
        b.mounted = False
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=60)
    finally:
        terminate(p)
    try:
        assert not is_frozen_fd(fd), "vssd left the detached filesystem frozen"
    finally:
        os.close(fd)
    (do,) = by_step(parse_results(out), "do")
    assert do.detail == "VSS_S_ASYNC_FINISHED", out + err
    assert not is_frozen(a.mnt) and not is_frozen(host.mnt)
    assert len(host.store_entries()) == 2


def test_reserve_watcher_knows_the_held_filesystem_by_its_fd(host, make_fs, workdir, daemon_factory):
    """A set holds A; while it is cut A is unmounted from the name it was
    added by (it stays reachable through a bind mount) and falls under its
    reserve. The watcher must still see that A is the set's: it deletes
    nothing there (an unlink on a frozen filesystem hangs vssd) until the
    set is done, and then the oldest snapshot there."""
    d, _ = workdir
    a = make_fs("xfs", "512M", "a", on=host)
    alias = d / "alias"
    alias.mkdir()
    run("mount", "--bind", a.mnt, alias)
    b = make_fs("ext4", "32M", "b", on=alias)
    try:
        config = "MaxImageNesting = 3\nHostReserve = 256M\nHostReserveCheckMSec = 100\n"
        vssd = daemon_factory(config=config)
        (old,) = json.loads(vssd.vssadmin("create", "shadow", f"--for={b.mnt}", "--json").stdout)
        assert old["snapshot_path"].startswith(f"{alias}/.vss/"), old
        vssd.stop()
        vssd.env["VSS_FAULTS"] = "begin_prepare:1:delay=3000"
        vssd.start()
        p = vssd.background(REQUESTOR, *APP, f"add={a.mnt}", "do")
        try:
            wait_until(lambda: vssd.log().count("cutting 1 volume(s)") == 2, what="the set to be cut")
            run("umount", "-l", a.mnt)
            a.mounted = False
            run("fallocate", "-l", "300M", alias / "fill")
            out, err = p.communicate(timeout=60)
        finally:
            terminate(p)
        (do,) = by_step(parse_results(out), "do")
        assert do.detail == "VSS_S_ASYNC_FINISHED", out + err
        log = vssd.log()
        created = log.index("created, 1 snapshot(s)", log.rindex("cutting 1 volume(s)"))
        deleted = log.index("deleting the oldest snapshot there")
        assert deleted > created, "the reserve watcher deleted on a filesystem the set held:\n" + log
        assert old["id"] in log[deleted:deleted + 400]
        assert not is_frozen(alias)
    finally:
        b.destroy()
        run("umount", alias, check=False)


def test_paths_into_a_mount_namespace_of_the_callers(host, images, workdir, daemon_factory):
    """A backup operator makes a user and mount namespace of its own, mounts
    there what it likes ("/" bound onto a directory, a copy of a volume),
    and names it to vssd through /proc/PID/root: vssd resolves such a path
    as root, but its mount is none of vssd's, so it is not a volume; and a
    snapshot is not mounted into that namespace."""
    d, _ = workdir
    (vol,) = images(1)
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    (s,) = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol.mnt}", "--json").stdout)
    junk = d / "junk"
    junk.mkdir()
    script = (f"mount -t tmpfs t {junk} && mkdir {junk}/m {junk}/v {junk}/e && mount --rbind / {junk}/m && "
              f"mount --rbind {vol.mnt} {junk}/v && cd {junk}/m && echo ready && exec sleep 120")
    p = vssd.spawn("unshare", "-Urm", "sh", "-c", script, user=backup_operator())
    ns = f"/proc/{p.pid}/root"
    volumes = [f"{ns}{junk}/m", f"{ns}{junk}/v", f"{ns}{vol.mnt}", f"/proc/{p.pid}/cwd", f"{ns}/"]
    for user in (backup_operator(), None):
        for volume in volumes:
            hrs, res = adds(vssd, volume, user=user)
            assert hrs in (["VSS_E_OBJECT_NOT_FOUND"], ["VSS_E_VOLUME_NOT_SUPPORTED"]), (volume, res)
    q = vssd.vssadmin("expose", f"--shadow={s['id']}", f"--at={ns}{junk}/e", check=False, user=backup_operator())
    assert q.returncode != 0 and "E_INVALIDARG" in q.stderr and "mount namespace" in q.stderr, q.stderr
    with open(f"/proc/{p.pid}/mountinfo") as theirs, open("/proc/self/mountinfo") as ours:
        assert f" {junk}/e " not in theirs.read() and str(junk) not in ours.read()
    assert vssd.list_shadows()[0].get("exposed_name") in (None, ""), vssd.list_shadows()
    assert not is_frozen(vol.mnt)
    no_clone_loops(d)


def test_an_exposed_snapshot_is_not_a_volume(host, images, btrfs, daemon_factory):
    """A snapshot exposed (mounted) outside its store is still vss's own
    snapshot: a clone mounted from the store's loop device is refused as a
    volume, and a btrfs snapshot's read-only mount cannot be snapshotted;
    nothing is added to a store."""
    (vol,) = images(1)
    sub = btrfs.subvolume("sub")
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    snaps = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol.mnt}", f"--for={sub}", "--json").stdout)
    for s in snaps:
        vssd.vssadmin("expose", f"--shadow={s['id']}")
    exposed = {s["volume"]: s["exposed_name"] for s in vssd.list_shadows()}
    stores = (host.store_entries(), btrfs.store_entries())
    for user in (backup_operator(), None):
        hrs, res = adds(vssd, exposed[str(vol.mnt)], user=user)
        assert hrs == ["VSS_E_VOLUME_NOT_SUPPORTED"], res
        assert "store" in by_step(res, "add")[0].message, res
        res = vssd.requestor(*APP, f"add={exposed[str(sub)]}", "do", user=user)
        assert by_step(res, "do")[0].detail != "VSS_S_ASYNC_FINISHED", res
    assert (host.store_entries(), btrfs.store_entries()) == stores
    assert len(vssd.list_shadows()) == 2
    for s in snaps:
        vssd.vssadmin("unexpose", f"--shadow={s['id']}")


def test_mount_stacked_over_a_volume_after_it_was_added(host, images, make_fs, daemon_factory):
    """After AddToSnapshotSet a filesystem vssd refuses is mounted over the
    volume: the freeze and the clone stay with the volume that was added
    (its fd), and the filesystem on top is never frozen."""
    a, b = images(2)
    plain = make_fs("ext4", "512M", "plain")  # no reflink: its images are refused
    refused = make_fs("ext4", "128M", "refused", on=plain)
    vssd = daemon_factory(config="MaxImageNesting = 2\n", env={"VSS_FAULTS": "commit:2:delay=2000"})
    assert adds(vssd, refused.mnt)[0] == ["VSS_E_VOLUME_NOT_SUPPORTED"]
    fd = os.open(b.mnt, os.O_RDONLY | os.O_DIRECTORY)
    p, _ = vssd.spawn_requestor(*APP, f"add={a.mnt}", f"add={b.mnt}", "pause", "do")
    try:
        run("mount", "--bind", refused.mnt, b.mnt)
        p.stdin.write("go\n")
        p.stdin.flush()
        wait_until(lambda: len(host.store_entries()) >= 1, timeout=30, what="the first clone")
        refused_frozen = is_frozen(refused.mnt)
        b_frozen = is_frozen_fd(fd)
        out, err = p.communicate(timeout=60)
    finally:
        terminate(p)
        os.close(fd)
        run("umount", b.mnt, check=False)
    assert not refused_frozen, "vssd froze the filesystem mounted over the volume"
    assert b_frozen, "vssd did not hold the volume that was added"
    (do,) = by_step(parse_results(out), "do")
    assert do.detail == "VSS_S_ASYNC_FINISHED", out + err
    assert not is_frozen(refused.mnt) and not is_frozen(b.mnt)


def test_image_file_replaced_after_it_was_added(host, make_fs, daemon_factory):
    """An image given directly is renamed away and another file put at its
    name between AddToSnapshotSet and DoSnapshotSet: the clone is of the
    file that was added."""
    loose = make_fs("ext4", "32M", "loose", on=host, mount=False)
    original = loose.image.read_bytes()
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    p, _ = vssd.spawn_requestor(*APP, f"add={loose.image}", "pause", "do")
    try:
        os.rename(loose.image, host.mnt / "loose.old")
        with open(loose.image, "wb") as f:
            f.write(b"\0" * len(original))
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=60)
    finally:
        terminate(p)
    (do,) = by_step(parse_results(out), "do")
    assert do.detail == "VSS_S_ASYNC_FINISHED", out + err
    (entry,) = host.store_entries()
    assert (host.store() / entry).read_bytes() == original
