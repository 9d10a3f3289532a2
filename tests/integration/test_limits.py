# SPDX-License-Identifier: LGPL-2.1-or-later
"""What add_to_snapshot_set refuses, and the limits."""

from conftest import by_step


def test_sixty_fifth_volume_is_refused(btrfs, vssd):
    vols = [btrfs.subvolume(f"v{i:02d}") for i in range(65)]
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", *[f"add={v}" for v in vols], "do")
    adds = by_step(res, "add")
    assert [r.hr for r in adds[:64]] == ["S_OK"] * 64
    assert adds[64].hr == "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED"
    # The 64 that fit make one set.
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    shadows = vssd.list_shadows()
    assert len(shadows) == 64 and len({s["set_id"] for s in shadows}) == 1
    assert all(s["snapshots_in_set"] == 64 for s in shadows)


def test_volume_limit_is_configurable(btrfs, daemon_factory):
    vssd = daemon_factory(config="MaxVolumesPerSet = 2\n")
    vols = [btrfs.subvolume(f"v{i}") for i in range(3)]
    res = vssd.requestor("create", "init", "gather", "start", *[f"add={v}" for v in vols])
    assert [r.hr for r in by_step(res, "add")] == ["S_OK", "S_OK", "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED"]


def test_snapshots_per_volume_limit(btrfs, daemon_factory):
    vssd = daemon_factory(config="MaxSnapshotsPerVolume = 2\n")
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    for _ in range(2):
        vssd.vssadmin("create", "shadow", f"--for={a}")
    p = vssd.vssadmin("create", "shadow", f"--for={a}", check=False)
    assert "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED (0x80042317)" in p.stderr
    vssd.vssadmin("create", "shadow", f"--for={b}")  # another volume is not affected
    assert len(vssd.list_shadows()) == 3


def test_what_is_not_a_volume(btrfs, make_fs, vssd, workdir):
    d, _ = workdir
    ext4 = make_fs("ext4", "64M")
    plain = btrfs.mnt / "plain-directory"
    plain.mkdir()
    (btrfs.mnt / "file").write_text("x")
    a = btrfs.subvolume("a")
    res = vssd.requestor("create", "init", "gather", "start", f"add={d}/does-not-exist", f"add={plain}",
                         f"add={btrfs.mnt}/file", f"add={ext4.mnt}", f"add={a}", f"add={a}", f"add={a}/",
                         f"supported={a}", f"supported={plain}", f"supported={ext4.mnt}")
    adds = by_step(res, "add")
    assert [r.hr for r in adds] == [
        "VSS_E_OBJECT_NOT_FOUND",      # no such path
        "VSS_E_OBJECT_NOT_FOUND",      # a directory, not a volume
        "VSS_E_OBJECT_NOT_FOUND",      # a file
        "VSS_E_VOLUME_NOT_SUPPORTED",  # a volume no provider supports
        "S_OK",
        "VSS_E_OBJECT_ALREADY_EXISTS",  # the same volume again
        "VSS_E_OBJECT_ALREADY_EXISTS",  # under another spelling
    ]
    assert [r.detail for r in by_step(res, "supported")] == ["yes", "no", "no"]


def test_unknown_and_unsuitable_provider(btrfs, make_fs, vssd):
    ext4 = make_fs("ext4", "64M")
    a = btrfs.subvolume("a")
    res = vssd.requestor("create", "init", "providers")
    btrfs_id = dict(x.split("=") for x in res[-1].detail.split())["btrfs"]
    res = vssd.requestor("create", "init", "gather", "start", f"add={a}@{{12345678-1234-1234-1234-123456789abc}}",
                         f"add={ext4.mnt}@{btrfs_id}", f"add={a}@{btrfs_id}")
    assert [r.hr for r in by_step(res, "add")] == [
        "VSS_E_PROVIDER_NOT_REGISTERED", "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER", "S_OK"]
    p = vssd.vssadmin("create", "shadow", f"--for={a}", "--provider=zfs", check=False)
    assert "VSS_E_PROVIDER_NOT_REGISTERED (0x80042304)" in p.stderr
