# SPDX-License-Identifier: LGPL-2.1-or-later
"""Revert of a logical volume to one of its snapshots (`lvconvert --merge`),
thin and classic: `vssadmin revert shadow` end to end, with the facts of
lvm's the provider relies on (docs/PROVIDERS.md); vssd killed (SIGKILL)
before each step of a classic revert finishes it at its next start. The
provider's ops are also driven directly through vss-test-lvm-revert
(tests/lvm/revert-op.c), as vssd calls them, for what vssd cannot make cheaply
(an overflowed snapshot, a merge lvm defers) and the thin revert killed
before each step (these two with VSS_LONG=1: the LVM suite has 8 minutes).
Run: scripts/guest/run-guest tests/lvm/test_lvm_revert.py
"""

import json
import os
import pathlib
import sqlite3
import signal
import subprocess
import time
import uuid

import pytest

from conftest import ROOT, VSSADMIN, VSSD, create_shadow, lvm, lvm_report, record, run

OP = pathlib.Path(os.environ.get("VSS_BUILD_DIR", ROOT / "build")) / "tests" / "vss-test-lvm-revert"
FIELDS = "lv_name,lv_attr,origin,lv_uuid,lv_tags,thin_id,segtype,data_percent"
CLOCK_NANOSLEEP = 230  # x86_64: what usleep() sleeps in (a fault's delay)


def lvs(vg):
    """{name: row} of every LV of the VG, hidden ones as "[name]"."""
    return {r["lv_name"]: r for r in lvm_report("lvs", "-a", "-o", FIELDS, vg.name)}


def shape_of(rows):
    """LV rows without what writeback changes by itself (data_percent)."""
    return {k: {f: v for f, v in r.items() if f != "data_percent"} for k, r in rows.items()}


def shape(vg):
    return shape_of(lvs(vg))


def snapshot(lv, cow="64M"):
    """A snapshot LV as vss makes one: named vss-<id>, tagged with the id
    (thin: inactive, activation skipped)."""
    sid = str(uuid.uuid4())
    name = f"vss-{sid}"
    tags = ["--addtag", f"vss-snapshot:{sid}", "--addtag", f"vss-set:{uuid.uuid4()}"]
    if lv.kind == "thin":
        lvm("lvcreate", "-q", "-s", "-ky", "-an", "-n", name, *tags, lv.lv)
    else:
        lvm("lvcreate", "-q", "-s", "-An", "-L", cow, "-n", name, *tags, lv.lv)
    return f"/dev/{lv.vg.name}/{name}", name


def op(*args, env=None):
    return subprocess.run([str(OP), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def plan(lv, snap_path, force=False):
    p = op("plan", lv.mnt, snap_path, lv.lv, *(["force"] if force else []))
    return p.returncode, p.stdout, p.stderr.strip()


def revert_args(lv, snap_path, plan_file, force=False):
    return ["revert", lv.mnt, snap_path, lv.lv, plan_file, *(["force"] if force else [])]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def mount_of(target):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(target):
                return fields[fields.index("-") + 2], fields[fields.index("-") + 1], fields[5]
    return None


def check_reverted(lv, name, before_mount):
    """The volume holds what the snapshot held, mounted as before, and the
    snapshot LV is gone."""
    assert mount_of(lv.mnt) == before_mount
    assert (lv.mnt / "before").read_text() == "before\n"
    assert not (lv.mnt / "after").exists()
    left = lvs(lv.vg)
    assert name not in left and f"[{name}]" not in left, left


def shadow_id(vssd, lv):
    return json.loads(create_shadow(vssd, lv).stdout)[0]["id"]


def revert(vssd, sid, *extra, check=True):
    return vssd.vssadmin("revert", "shadow", f"--shadow={sid}", *extra, check=check)


def snapshot_lv(vssd, sid):
    path = [s for s in vssd.list_shadows() if s["id"] == sid][0]["snapshot_path"]
    return path, path.rsplit("/", 1)[1]


def test_revert_thin_and_classic(vg, make_lv, vssd):
    lvs_ = {kind: make_lv(kind, fstype) for kind, fstype in (("thin", "ext4"), ("classic", "xfs"))}
    for lv in lvs_.values():
        write(lv.mnt / "before", "before\n")
    # One set, then a newer one, of both.
    first = {s["volume"]: s["id"] for s in json.loads(create_shadow(vssd, *lvs_.values()).stdout)}
    for lv in lvs_.values():
        write(lv.mnt / "after", "after\n")
    second = {s["volume"]: s["id"] for s in json.loads(create_shadow(vssd, *lvs_.values()).stdout)}
    for lv in lvs_.values():
        write(lv.mnt / "newest", "newest\n")
    facts = {}
    for kind, lv in lvs_.items():
        sid, newer_sid = first[str(lv.mnt)], second[str(lv.mnt)]
        _, name = snapshot_lv(vssd, sid)
        _, newer = snapshot_lv(vssd, newer_sid)
        before = lvs(vg)
        mount_before = mount_of(lv.mnt)
        p = revert(vssd, sid)
        assert "Successfully reverted" in p.stdout, p.stdout
        check_reverted(lv, name, mount_before)
        assert not (lv.mnt / "newest").exists()
        after = lvs(vg)
        origin = after[lv.name]
        # The origin keeps its name and uuid, without the snapshot's tags.
        assert origin["lv_uuid"] == before[lv.name]["lv_uuid"]
        assert origin["lv_tags"] == "" and origin["lv_attr"][0] in "-oV", origin
        # The snapshot is consumed: its row goes; the newer one stays and
        # says it is from before the revert.
        shadows = {s["id"]: s for s in vssd.list_shadows(f"--for={lv.mnt}")}
        assert set(shadows) == {newer_sid}, shadows
        assert f"taken before the volume was reverted to {sid}" in shadows[newer_sid]["consistency"]
        assert newer in after
        if kind == "thin":
            # The origin has the snapshot's thin device; the newer thin
            # snapshot is a thin LV of its own now (lvm forgot its origin),
            # so it cannot be reverted to.
            assert origin["thin_id"] == before[name]["thin_id"]
            assert after[newer]["origin"] == "" and after[newer]["lv_attr"][0] == "V"
            p = revert(vssd, newer_sid, check=False)
            assert p.returncode != 0 and "VSS_E_VOLUME_NOT_SUPPORTED" in p.stderr and "no origin" in p.stderr, p.stderr
        else:
            # Still a valid snapshot of the origin (it can be reverted to).
            assert after[newer]["origin"] == lv.name and after[newer]["lv_attr"][4] == "a", after[newer]
        facts[kind] = {"origin_before": before[lv.name], "origin_after": origin, "snapshot": before[name],
                       "newer_before": before[newer], "newer_after": after[newer]}
    record("lvm-revert", facts)


def hold_open(path, seconds):
    """A process with path open for that long (it exits then)."""
    p = subprocess.Popen(["/usr/bin/python3", "-c",
                          "import sys,time; f=open(sys.argv[1]); print('ready', flush=True); time.sleep(float(sys.argv[2]))",
                          str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_revert_refusals(vg, make_lv, vssd):
    lv = make_lv("classic", "ext4")
    write(lv.mnt / "before", "before\n")
    # A classic snapshot that overflowed cannot be reverted to.
    small_path, small = snapshot(lv, cow="4M")
    big = lv.mnt / "big"
    with open(big, "wb") as f:
        for _ in range(8):
            f.write(os.urandom(1 << 20))
        os.fsync(f.fileno())
    assert lvs(vg)[small]["lv_attr"][4] == "I"
    code, _, message = plan(lv, small_path)
    assert code == 2 and "invalid" in message, message  # ENOENT
    lvm("lvremove", "-q", "-y", f"{vg.name}/{small}")
    big.unlink()

    # In use: refused, naming who, and nothing changes.
    sid = shadow_id(vssd, lv)
    _, name = snapshot_lv(vssd, sid)
    write(lv.mnt / "after", "after\n")
    mount_before = mount_of(lv.mnt)
    holder = hold_open(lv.mnt / "after", 2)
    try:
        before = shape(vg)
        p = revert(vssd, sid, check=False)
        assert p.returncode != 0 and "VSS_E_VOLUME_IN_USE" in p.stderr, p.stderr
        assert f"process {holder.pid}" in p.stderr, p.stderr
        assert shape(vg) == before and mount_of(lv.mnt) == mount_before
        # Forced: the filesystem is detached; the revert waits for its
        # last file to close (the holder exits after 2 s), then merges.
        revert(vssd, sid, "--force-unmount")
    finally:
        holder.kill()
        holder.wait()
    check_reverted(lv, name, mount_before)


def sleeping_in_fault(pid):
    """The process sleeps in a fault's delay: in clock_nanosleep with no
    child (lvm) running."""
    try:
        nr = pathlib.Path(f"/proc/{pid}/syscall").read_text().split()[0]
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError):
        return False
    return nr == str(CLOCK_NANOSLEEP) and not children


def reverts_recorded(vssd):
    db = sqlite3.connect(vssd.state / "catalog.db")
    try:
        return db.execute("SELECT volume FROM reverts").fetchall()
    finally:
        db.close()


def start_stalled(vssd, step):
    """vssd started with a stall before revert step `step`, which its
    resumption of a recorded revert reaches before it listens."""
    vssd.env["VSS_FAULTS"] = f"revert:{step}:delay=60000"
    log = open(vssd.logfile, "a")
    vssd.proc = subprocess.Popen(
        [str(VSSD), "--socket", vssd.socket, "--state-dir", vssd.state, "--config", vssd.config, "--log-level=debug"],
        stdout=log, stderr=subprocess.STDOUT, env=vssd.env)
    log.close()


def test_vssd_killed_at_each_step(vg, make_lv, daemon_factory):
    """vssd killed before each step of a classic revert: before step 1 while
    it answers the call, before the next ones while it finishes the revert
    at its start; the last start finishes it."""
    lv = make_lv("classic", "ext4")
    vssd = daemon_factory()
    write(lv.mnt / "before", "before\n")
    sid = shadow_id(vssd, lv)
    _, name = snapshot_lv(vssd, sid)
    write(lv.mnt / "after", "after\n")
    mount_before = mount_of(lv.mnt)
    vssd.stop()
    vssd.env["VSS_FAULTS"] = "revert:1:delay=60000"
    vssd.start()
    client = vssd.background(VSSADMIN, "revert", "shadow", f"--shadow={sid}")
    found = {}
    for step in (1, 2, 3, 4):
        if step > 1:
            start_stalled(vssd, step)
        vssd.wait_log(f"VSS_FAULTS: delaying revert step {step} by", timeout=60)
        vssd.kill()
        if step == 1:
            client.communicate(timeout=30)
        assert reverts_recorded(vssd) == [(str(lv.mnt),)]
        state = lvs(vg)
        found[step] = {"mounted": mount_of(lv.mnt) is not None,
                       "snapshot": (state.get(name) or state.get(f"[{name}]") or {}).get("lv_attr"),
                       "origin": state[lv.name]["lv_attr"]}
    del vssd.env["VSS_FAULTS"]
    vssd.start()
    assert vssd.log().count("finishing it") == 4
    check_reverted(lv, name, mount_before)
    assert reverts_recorded(vssd) == []
    assert vssd.log().count(f"reverted to snapshot {sid}") == 1
    assert vssd.list_shadows(f"--for={lv.mnt}") == []
    assert not [n for n, r in lvs(vg).items() if "vss-snapshot:" in r["lv_tags"]]
    check_killed(found)
    record("lvm-revert-vssd-killed", found)


def check_killed(found):
    # Killed before step 1 nothing is done; before 2 the volume is
    # unmounted; before 3 and 4 lvm has merged (classic: lvconvert waited
    # for the end).
    assert found[1]["mounted"] and found[1]["snapshot"]
    assert not found[2]["mounted"] and found[2]["snapshot"] and found[2]["snapshot"][0] in "sV"
    for step in (3, 4):
        assert not found[step]["mounted"] and found[step]["snapshot"] is None, found


@pytest.mark.skipif(os.environ.get("VSS_LONG") != "1", reason="VSS_LONG=1 (make check-long) runs it")
def test_revert_killed_at_each_step_and_deferred(vg, make_lv, workdir):
    """The thin revert's ops: the process killed before each step; then a
    forced revert lvm defers (one VG for both: each costs seconds)."""
    lv = make_lv("thin", "ext4")
    killed_at_each_step(lv, workdir)
    forced_revert_deferred(lv, workdir)


def killed_at_each_step(lv, workdir):
    """Killed before step 1, then the revert called again from the same plan
    and killed before step 2, and so on; the last call finishes it."""
    d, _ = workdir
    vg = lv.vg
    write(lv.mnt / "before", "before\n")
    snap_path, name = snapshot(lv)
    write(lv.mnt / "after", "after\n")
    mount_before = mount_of(lv.mnt)
    code, text, message = plan(lv, snap_path)
    assert code == 0, message
    plan_file = d / "plan-killed"
    plan_file.write_text(text)
    found = {}
    for step in (1, 2, 3, 4):
        p = subprocess.Popen([str(OP), *map(str, revert_args(lv, snap_path, plan_file))],
                             env={**os.environ, "VSS_FAULTS": f"revert:{step}:delay=60000"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not sleeping_in_fault(p.pid):
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        state = lvs(vg)
        found[step] = {"mounted": mount_of(lv.mnt) is not None,
                       "snapshot": (state.get(name) or state.get(f"[{name}]") or {}).get("lv_attr"),
                       "origin": state[lv.name]["lv_attr"]}
    # Called again with the same plan, as vssd does at its next start.
    again = op(*revert_args(lv, snap_path, plan_file))
    assert again.returncode == 0, again.stderr
    check_reverted(lv, name, mount_before)
    check_killed(found)
    record(f"lvm-revert-killed-{lv.kind}", found)


def forced_revert_deferred(lv, workdir):
    """Forced while a file stays open on the detached filesystem: lvm defers
    the merge to the LV's next activation; the revert says so and leaves the
    volume unmounted (it would show what it held before)."""
    d, _ = workdir
    vg = lv.vg
    write(lv.mnt / "before", "before\n")
    snap_path, name = snapshot(lv)
    write(lv.mnt / "after", "after\n")
    thin_id = lvs(vg)[name]["thin_id"]
    holder = hold_open(lv.mnt / "after", 600)
    try:
        code, text, message = plan(lv, snap_path, force=True)
        assert code == 0, message
        plan_file = d / "plan-deferred"
        plan_file.write_text(text)
        p = op(*revert_args(lv, snap_path, plan_file, force=True))
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "consumed" and "next activated" in p.stderr, p.stderr
        assert mount_of(lv.mnt) is None
        state = lvs(vg)
        assert state[f"[{name}]"]["lv_attr"][0] == "S" and state[lv.name]["lv_attr"][0] == "O", state
        record("lvm-revert-deferred", {"lvs": state, "message": p.stderr.strip(),
                                       "lvs_without_a": run("lvs", "--noheadings", "-o", "lv_name,lv_attr",
                                                            vg.name).stdout.split("\n")})
    finally:
        holder.kill()
        holder.wait()
    # Closed, the LV refreshed (or activated again): merged.
    lvm("lvchange", "--refresh", lv.lv)
    state = lvs(vg)
    assert state[lv.name]["thin_id"] == thin_id and name not in state and f"[{name}]" not in state, state
    lv.mount()
    assert not (lv.mnt / "after").exists() and (lv.mnt / "before").exists()
