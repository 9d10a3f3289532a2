# SPDX-License-Identifier: LGPL-2.1-or-later
"""The LVM provider in the guest: thin and classic members in one set, cut
while every member is frozen, exposed read-only, deleted; a VG without room
for a classic snapshot; shadow storage, and a classic snapshot that
overflows; a set with an image member (its file on an LV) besides the LVs.
Run: scripts/guest/run-guest tests/lvm/test_lvm_sets.py
"""

import json
import os

from conftest import dm_table, is_frozen, lvm, lvm_report, mounts_below, run

SNAPSHOT_TAG = "vss-snapshot:"
SET_TAG = "vss-set:"


def create(vssd, *paths, check=True):
    p = vssd.vssadmin("create", "shadow", *[f"--for={x}" for x in paths], "--json", check=check)
    return json.loads(p.stdout) if check else p


def vss_lvs(vg):
    """The VG's LVs that carry vss's tags, by name."""
    rows = lvm_report("lvs", "-o", "lv_name,lv_attr,segtype,origin,lv_size,lv_tags", "--units", "b", vg.name)
    return {r["lv_name"]: r for r in rows if SNAPSHOT_TAG in r["lv_tags"]}


def write_mib(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())
    os.sync()


def assert_released(*lvs):
    """Nothing frozen, nothing suspended: writes flow."""
    devices = dm_table()
    for lv in lvs:
        assert not is_frozen(lv.mnt), f"{lv} left frozen"
        assert not devices[lv.mapper.name]["suspended"], f"{lv} left suspended"


def test_thin_and_classic_set_expose_delete(vg, make_lv, vssd, workdir):
    d, _ = workdir
    thin = make_lv("thin", "ext4")
    classic = make_lv("classic", "xfs")
    (thin.mnt / "f").write_text("thin before\n")
    (classic.mnt / "f").write_text("classic before\n")
    out = create(vssd, thin.mnt, classic.mnt)
    assert_released(thin, classic)
    assert len(out) == 2
    assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
    set_id = out[0]["set_id"]
    ids = {s["volume"]: s["id"] for s in out}

    # Snapshot LVs named after their ids, tagged with them and the set's.
    snaps = vss_lvs(vg)
    assert len(snaps) == 2
    for lv in (thin, classic):
        sid = ids[str(lv.mnt)].strip("{}")
        row = snaps[f"vss-{sid}"]
        assert f"{SNAPSHOT_TAG}{sid}" in row["lv_tags"].split(",")
        assert f"{SET_TAG}{set_id.strip('{}')}" in row["lv_tags"].split(",")
        assert row["origin"] == lv.name
        assert row["segtype"] == ("thin" if lv.kind == "thin" else "linear")
    # A classic snapshot is a quarter of its origin.
    classic_snap = snaps[f"vss-{ids[str(classic.mnt)].strip('{}')}"]
    assert int(classic_snap["lv_size"].rstrip("B")) == 80 << 20
    listed = {s["id"]: s for s in vssd.list_shadows()}
    assert listed[ids[str(thin.mnt)]]["snapshot_path"] == f"/dev/{vg.name}/vss-{ids[str(thin.mnt)].strip('{}')}"

    # Later writes are not in the snapshots.
    (thin.mnt / "f").write_text("thin after\n")
    (classic.mnt / "f").write_text("classic after\n")
    at = d / "restore"
    vssd.vssadmin("expose", f"--set={set_id}", f"--at={at}")
    assert open(f"{at}{thin.mnt}/f").read() == "thin before\n"
    assert open(f"{at}{classic.mnt}/f").read() == "classic before\n"
    assert "Read-only file system" in run("touch", f"{at}{thin.mnt}/x", check=False).stderr
    assert {s["exposed_name"] for s in vssd.list_shadows()} == {f"{at}{thin.mnt}", f"{at}{classic.mnt}"}
    # An exposed snapshot is no volume of its own.
    p = vssd.vssadmin("create", "shadow", f"--for={at}{thin.mnt}", check=False)
    assert p.returncode != 0 and "VSS_E_VOLUME_NOT_SUPPORTED" in p.stderr, p.stderr

    # Survives a restart (reconcile finds both by their tags).
    vssd.restart()
    assert len(vssd.list_shadows()) == 2
    assert "disagreement(s)" in vssd.log() and "0 disagreement(s)" in vssd.log()

    vssd.vssadmin("unexpose", f"--set={set_id}")
    assert mounts_below(at) == []
    vssd.vssadmin("delete", "shadows", f"--set={set_id}", "--quiet")
    assert vss_lvs(vg) == {}
    assert vssd.list_shadows() == []
    # The origins are untouched.
    assert (thin.mnt / "f").read_text() == "thin after\n"
    assert (classic.mnt / "f").read_text() == "classic after\n"


def test_lv_given_as_device(vg, make_lv, vssd):
    """An LV by its device path: held through its mount."""
    thin = make_lv("thin", "ext4")
    (thin.mnt / "f").write_text("x\n")
    out = create(vssd, thin.device)
    assert out[0]["consistency"] == "crash-consistent across the set"
    assert len(vss_lvs(vg)) == 1
    vssd.vssadmin("delete", "shadows", "--all", "--quiet")
    assert vss_lvs(vg) == {}


def test_vg_full_refused_nothing_left(vg, make_lv, vssd):
    """A classic snapshot needs a quarter of its origin in the VG's free
    space: without it the set is refused before anything is frozen."""
    thin = make_lv("thin", "ext4")
    free = vg.free_bytes()
    # Leave less than a quarter of the classic LV free.
    size_mib = (free >> 20) - 64
    classic = make_lv("classic", "ext4", size=f"{size_mib}M")
    p = create(vssd, thin.mnt, classic.mnt, check=False)
    assert p.returncode != 0
    assert "VSS_E_INSUFFICIENT_STORAGE" in p.stderr, p.stderr
    assert "free space" in p.stderr
    assert vss_lvs(vg) == {}
    assert vssd.list_shadows() == []
    assert_released(thin, classic)
    # The thin member alone is fine.
    create(vssd, thin.mnt)
    assert len(vss_lvs(vg)) == 1


def test_classic_snapshot_overflow_is_lost(vg, make_lv, vssd):
    """A classic snapshot whose copy-on-write area fills becomes invalid:
    the origin goes on, and vss reports the snapshot lost and removes it."""
    classic = make_lv("classic", "ext4", size="64M")
    (classic.mnt / "keep").write_text("kept\n")

    # Shadow storage first: the snapshot's copy-on-write area, in its VG,
    # and a maximum below what it uses deletes it.
    create(vssd, classic.mnt)
    write_mib(classic.mnt / "some", 6)
    (area,) = json.loads(vssd.vssadmin("list", "shadowstorage", f"--for={classic.mnt}", "--json").stdout)
    assert area["storage_volume"] == f"/dev/{vg.name}", area
    assert area["allocated"] == 16 << 20 and 4 << 20 < area["used"] <= 16 << 20, area
    vssd.vssadmin("resize", "shadowstorage", f"--for={classic.mnt}", "--maxsize=4M")
    assert vssd.list_shadows() == [] and vss_lvs(vg) == {}
    vssd.vssadmin("resize", "shadowstorage", f"--for={classic.mnt}", "--maxsize=UNBOUNDED")

    (s,) = create(vssd, classic.mnt)
    # 16 MiB of copy-on-write space; overwrite more than that.
    write_mib(classic.mnt / "big", 40)
    (row,) = vss_lvs(vg).values()
    assert row["lv_attr"][4] in "IS", row
    # The origin is whole.
    assert (classic.mnt / "keep").read_text() == "kept\n"
    assert os.path.getsize(classic.mnt / "big") == 40 << 20

    vssd.restart()
    assert vssd.list_shadows() == []
    log = vssd.log()
    assert "overflowed" in log and "lost" in log, log
    assert s["id"] in log
    assert vss_lvs(vg) == {}


def test_mixed_set_lvm_and_image(vg, make_lv, images, daemon_factory):
    """An LV and an ext4 in an image file, one instant for both. The image
    lies on an XFS on an LV (the host fixture): one level deep, as on a
    disk, so the default MaxImageNesting = 1 takes it."""
    thin = make_lv("thin", "ext4")
    (img,) = images(1)
    vssd = daemon_factory(config="")
    (thin.mnt / "f").write_text("lv\n")
    (img.mnt / "f").write_text("image\n")
    out = create(vssd, thin.mnt, img.mnt)
    assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
    assert len(vss_lvs(vg)) == 1
    assert {s["provider"] for s in vssd.list_shadows()} == {"lvm", "image"}
    vssd.vssadmin("delete", "shadows", "--all", "--quiet")
    assert vss_lvs(vg) == {}
