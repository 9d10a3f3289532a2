# SPDX-License-Identifier: LGPL-2.1-or-later
"""Exposure: finished snapshots mounted read-only, alone or as a whole set
mirroring the original mount points, across vssd restarts."""

import grp
import json
import os
import subprocess

from conftest import by_step, mounts_below, run

NESTING = "MaxImageNesting = 2\n"


def create(vssd, *vols):
    return json.loads(vssd.vssadmin("create", "shadow", *[f"--for={v}" for v in vols], "--json").stdout)


def test_expose_btrfs_snapshot_at_default_place(btrfs, vssd):
    a = btrfs.subvolume("a")
    (a / "f").write_text("before\n")
    (s,) = create(vssd, a)
    (a / "f").write_text("after\n")
    out = vssd.vssadmin("expose", f"--shadow={s['id']}").stdout
    (listed,) = vssd.list_shadows()
    where = listed["exposed_name"]
    assert where == str(vssd.dir / "exposed" / s["id"]) and f"exposed at {where}" in out
    assert listed["attributes"] & 0x100000  # VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY
    assert open(os.path.join(where, "f")).read() == "before\n"
    assert "Read-only file system" in run("touch", os.path.join(where, "x"), check=False).stderr
    assert f"Exposed Name: {where}" in vssd.vssadmin("list", "shadows").stdout

    p = vssd.vssadmin("expose", f"--shadow={s['id']}", check=False)
    assert "VSS_E_OBJECT_ALREADY_EXISTS" in p.stderr
    vssd.vssadmin("unexpose", f"--shadow={s['id']}")
    assert not os.path.exists(where)
    assert vssd.list_shadows()[0]["exposed_name"] is None
    p = vssd.vssadmin("unexpose", f"--shadow={s['id']}", check=False)
    assert "VSS_E_OBJECT_NOT_FOUND (0x80042308)" in p.stderr and "not exposed" in p.stderr


def test_expose_image_set_mirrors_mount_points_and_survives_restart(host, make_fs, daemon_factory, workdir):
    d, _ = workdir
    a = make_fs("ext4", "256M", "data", on=host)
    b = make_fs("xfs", "512M", "wal", on=host)  # an XFS clone shares its origin's UUID
    vssd = daemon_factory(config=NESTING)
    (a.mnt / "table").write_text("rows\n")
    (b.mnt / "log").write_text("records\n")
    out = create(vssd, a.mnt, b.mnt)
    (a.mnt / "table").write_text("changed later\n")
    at = d / "restore"
    vssd.vssadmin("expose", f"--set={out[0]['set_id']}", f"--at={at}")
    ea, eb = f"{at}{a.mnt}", f"{at}{b.mnt}"
    assert open(os.path.join(ea, "table")).read() == "rows\n"
    assert open(os.path.join(eb, "log")).read() == "records\n"
    assert {s["exposed_name"] for s in vssd.list_shadows()} == {ea, eb}

    vssd.restart()
    assert {s["exposed_name"] for s in vssd.list_shadows()} == {ea, eb}
    assert open(os.path.join(eb, "log")).read() == "records\n"

    vssd.vssadmin("unexpose", f"--set={out[0]['set_id']}")
    assert mounts_below(at) == []
    # The loop devices of the clones went with their mounts.
    assert not [line for line in run("losetup", "-a").stdout.splitlines() if f"{host.store()}/" in line]


def test_delete_exposed_snapshot(host, images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    (s,) = create(vssd, a.mnt)
    vssd.vssadmin("expose", f"--shadow={s['id']}")
    where = vssd.list_shadows()[0]["exposed_name"]
    vssd.vssadmin("delete", "shadows", f"--shadow={s['id']}", "--quiet")
    assert not os.path.exists(where) and host.store_entries() == []
    assert not [line for line in run("losetup", "-a").stdout.splitlines() if f"{host.store()}/" in line]


def test_exposure_gone_behind_vssds_back(btrfs, vssd):
    a = btrfs.subvolume("a")
    (s,) = create(vssd, a)
    vssd.vssadmin("expose", f"--shadow={s['id']}")
    where = vssd.list_shadows()[0]["exposed_name"]
    vssd.stop()
    run("umount", where)
    vssd.start()
    assert f"was exposed at {where}, which is no longer mounted" in vssd.log()
    assert vssd.list_shadows()[0]["exposed_name"] is None


def test_exposure_refusals(btrfs, vssd, workdir):
    d, _ = workdir
    a = btrfs.subvolume("a")
    (s,) = create(vssd, a)
    full = d / "full"
    full.mkdir()
    (full / "something").write_text("x")
    p = vssd.vssadmin("expose", f"--shadow={s['id']}", f"--at={full}", check=False)
    assert "VSS_E_OBJECT_ALREADY_EXISTS" in p.stderr and "not an empty directory" in p.stderr
    p = vssd.vssadmin("expose", f"--shadow={s['id']}", "--at=relative/path", check=False)
    assert "E_INVALIDARG" in p.stderr
    p = vssd.vssadmin("expose", f"--set={s['set_id']}", check=False)
    assert p.returncode == 2 and "--at" in p.stderr
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do", "expose-remote",
                         "nullargs")
    assert by_step(res, "expose-remote")[0].hr == "E_INVALIDARG"
    assert {r.hr for r in res if r.step.startswith("null:")} == {"E_INVALIDARG"}
    assert mounts_below(d / "full") == []


def test_backup_operator_exposes_only_where_allowed(btrfs, vssd, workdir):
    d, _ = workdir
    a = btrfs.subvolume("a")
    gid = grp.getgrnam("backup").gr_gid
    operator = ["--reuid=65534", f"--regid={gid}", "--clear-groups"]
    mine, theirs = d / "mine", d / "theirs"
    mine.mkdir()
    theirs.mkdir()
    os.chown(mine, 65534, gid)
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do", f"expose={theirs}",
                         f"expose={mine}", "unexpose", "expose", "unexpose", user=operator)
    assert [r.hr for r in by_step(res, "expose")] == ["E_ACCESSDENIED", "S_OK", "S_OK"]
    assert by_step(res, "expose")[1].detail == str(mine)
    assert mounts_below(d) == [str(btrfs.mnt)]


def test_journal_replayed_into_the_clone_only(host, make_fs, daemon_factory):
    """A crash-consistent ext4 image (copied while mounted, so its journal needs
    recovery) is exposed: the replay goes into vss's clone, never the image."""
    live = make_fs("ext4", "128M", "live", on=host)
    (live.mnt / "f").write_text("data\n")
    run("sync")
    crashed = host.mnt / "crashed.img"
    run("cp", "--reflink=never", live.image, crashed)  # mounted: needs_recovery is set
    assert "needs_recovery" in run("dumpe2fs", "-h", crashed).stdout
    vssd = daemon_factory(config=NESTING)
    (s,) = create(vssd, crashed)
    assert s["consistency"] == "crash-consistent per volume"
    vssd.vssadmin("expose", f"--shadow={s['id']}")
    where = vssd.list_shadows()[0]["exposed_name"]
    assert open(os.path.join(where, "f")).read() == "data\n"
    assert "needs_recovery" in run("dumpe2fs", "-h", crashed).stdout
    vssd.vssadmin("unexpose", f"--shadow={s['id']}")
    subprocess.run(["rm", "-f", str(crashed)])
