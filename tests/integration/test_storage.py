# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shadow storage: the space snapshots hold, the maximum per volume, and the
oldest snapshots deleted to stay within it."""

import json
import os

from conftest import VSSADMIN, run

NESTING = "MaxImageNesting = 2\n"
MiB = 1 << 20


def storage(vssd, *args):
    return json.loads(vssd.vssadmin("list", "shadowstorage", "--json", *args).stdout)


def write(path, mib, seed):
    """Write (or overwrite in place) mib MiB of data that differs by seed."""
    block = bytes([seed % 256]) * MiB
    with open(path, "r+b" if path.exists() else "wb") as f:
        for _ in range(mib):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def create(vssd, vol):
    return json.loads(vssd.vssadmin("create", "shadow", f"--for={vol}", "--json").stdout)[0]


def test_used_is_what_only_snapshots_hold(host, images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    write(a.mnt / "f", 8, 1)
    create(vssd, a.mnt)
    (s,) = storage(vssd)
    assert s["volume"] == str(a.mnt) and s["storage_volume"] == str(host.mnt)
    assert s["used"] < MiB  # the clone still shares everything with the image
    assert s["maximum"] is None
    write(a.mnt / "f", 8, 2)  # overwritten in place: the old blocks are the snapshot's alone
    (s,) = storage(vssd, f"--for={a.mnt}")
    assert 7 * MiB <= s["used"] <= 10 * MiB, s
    assert s["allocated"] >= s["used"]
    text = vssd.vssadmin("list", "shadowstorage").stdout
    assert f"For volume: {a.mnt}" in text and "Maximum Shadow Copy Storage space: UNBOUNDED" in text


def test_maximum_deletes_oldest_on_resize_and_before_a_new_set(host, images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    write(a.mnt / "f", 8, 1)
    first = create(vssd, a.mnt)
    write(a.mnt / "f", 8, 2)
    out = vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", "--maxsize=4MiB").stdout
    assert f"Deleted shadow copy {first['id']} of {a.mnt}" in out
    assert vssd.list_shadows() == [] and host.store_entries() == []
    (s,) = storage(vssd)
    assert s["maximum"] == 4 * MiB and s["used"] == 0

    second = create(vssd, a.mnt)
    write(a.mnt / "f", 8, 3)
    p = vssd.vssadmin("create", "shadow", f"--for={a.mnt}")
    assert f"Deleted shadow copy {second['id']} of {a.mnt} (the oldest)" in p.stdout
    assert [s["id"] for s in vssd.list_shadows()] != [second["id"]]
    assert len(vssd.list_shadows()) == 1
    assert "deleting the oldest" in vssd.log()

    # The maximum is kept across restarts.
    vssd.restart()
    assert storage(vssd)[0]["maximum"] == 4 * MiB
    vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", "--maxsize=UNBOUNDED")
    assert storage(vssd)[0]["maximum"] is None


def test_maxsize_forms_and_refusals(images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", "--maxsize=10%")
    sv = os.statvfs(a.mnt)
    assert storage(vssd)[0]["maximum"] == sv.f_blocks * sv.f_frsize // 100 * 10
    vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", "--maxsize=2G")
    assert storage(vssd)[0]["maximum"] == 2 << 30
    for bad in ("-5", "12XB", "0%", "101%", "lots"):
        p = vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", f"--maxsize={bad}", check=False)
        assert p.returncode == 2 and "E_INVALIDARG" in p.stderr, bad
    p = vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", "--maxsize=1000", check=False)
    assert p.returncode == 2 and "at least 1 MiB" in p.stderr
    p = vssd.vssadmin("resize", "shadowstorage", "--for=/", "--maxsize=1G", check=False)
    assert "VSS_E_VOLUME_NOT_SUPPORTED" in p.stderr


def test_btrfs_used_from_quota_groups(btrfs, vssd):
    a = btrfs.subvolume("a")
    write(a / "f", 4, 1)
    create(vssd, a)
    (s,) = storage(vssd)
    assert s["used"] is None and s["allocated"] is None  # quotas are off: unknown
    assert "unknown (btrfs without quotas)" in vssd.vssadmin("list", "shadowstorage").stdout
    run("btrfs", "quota", "enable", btrfs.mnt)
    run("btrfs", "quota", "rescan", "-w", btrfs.mnt)
    (a / "f").unlink()  # its extents are now the snapshot's alone
    (s,) = storage(vssd)
    assert s["used"] >= 4 * MiB - 64 * 1024, s
    assert s["allocated"] >= s["used"]


def test_snapshots_per_volume_limit_for_images(images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING + "MaxSnapshotsPerVolume = 2\n")
    create(vssd, a.mnt)
    create(vssd, a.mnt)
    p = vssd.vssadmin("create", "shadow", f"--for={a.mnt}", check=False)
    assert "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED (0x80042317)" in p.stderr


def over_maximum_with_slow_measure(images, daemon_factory, delay_ms):
    """A volume whose one snapshot takes more than its maximum, in a vssd whose
    every measure of shadow storage stalls delay_ms."""
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": f"space:*:delay={delay_ms}"})
    # No snapshot yet: nothing is measured.
    vssd.vssadmin("resize", "shadowstorage", f"--for={a.mnt}", "--maxsize=4MiB")
    write(a.mnt / "f", 8, 1)
    first = create(vssd, a.mnt)
    write(a.mnt / "f", 8, 2)
    assert "VSS_FAULTS: delaying space" not in vssd.log()
    return a, vssd, first


def test_room_is_made_while_vssd_serves_others(images, daemon_factory):
    """The provider measures a volume's shadow storage off vssd's loop: while
    it does (stalled here), another peer is answered, and the set is then
    cut after the oldest snapshot went, as before."""
    a, vssd, first = over_maximum_with_slow_measure(images, daemon_factory, 3000)

    p = vssd.background(VSSADMIN, "create", "shadow", f"--for={a.mnt}")
    try:
        vssd.wait_log("VSS_FAULTS: delaying space call 1")
        # Another peer, while the measure is stalled: answered before it
        # ends, so before the oldest snapshot is deleted.
        providers = vssd.vssadmin("list", "providers").stdout
        assert "image" in providers
        assert "deleting the oldest" not in vssd.log()
        assert p.poll() is None
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert f"Deleted shadow copy {first['id']} of {a.mnt} (the oldest)" in out
    (s,) = vssd.list_shadows()
    assert s["id"] != first["id"]


def test_room_given_up_while_measured(images, daemon_factory):
    """A requestor gone, or vssd stopping, while its set's shadow storage is
    measured: nothing is deleted for that set, nothing is cut, the slot is
    free again once the measure ends, and vssd stops cleanly."""
    a, vssd, _ = over_maximum_with_slow_measure(images, daemon_factory, 2000)

    # The requestor goes away during the measure.
    p = vssd.background(VSSADMIN, "create", "shadow", f"--for={a.mnt}")
    try:
        vssd.wait_log("VSS_FAULTS: delaying space call 1")
    finally:
        p.kill()
        p.wait()
    vssd.wait_log("given up while room was made")
    # The slot is held until the measure has ended, then free.
    refused = vssd.vssadmin("create", "shadow", f"--for={a.mnt}", check=False)
    if "the creation slot is free" not in vssd.log():
        assert "VSS_E_SNAPSHOT_SET_IN_PROGRESS" in refused.stderr
    vssd.wait_log("the creation slot is free")
    second = create(vssd, a.mnt)
    assert "VSS_FAULTS: delaying space call 2" in vssd.log()
    assert [s["id"] for s in vssd.list_shadows()] == [second["id"]]

    # vssd stops during a measure: the requestor hears why, nothing is cut.
    write(a.mnt / "f", 8, 3)
    p = vssd.background(VSSADMIN, "create", "shadow", f"--for={a.mnt}")
    try:
        vssd.wait_log("VSS_FAULTS: delaying space call 3")
        vssd.stop()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0 and "VSS_E_UNEXPECTED" in err, err
    vssd.start()
    assert [s["id"] for s in vssd.list_shadows()] == [second["id"]]
