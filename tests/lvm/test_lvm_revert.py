# SPDX-License-Identifier: LGPL-2.1-or-later
"""Revert of a logical volume to one of its snapshots (`lvconvert --merge`),
thin and classic: what lvm does (the facts the provider's revert relies on,
docs/PROVIDERS.md) and the provider's revert ops, driven through
vss-test-lvm-revert (tests/lvm/revert-op.c), which calls revert_plan and
revert as vssd does; a process killed (SIGKILL) before each step of the
revert and the revert called again from the same plan finishes it.
Run: scripts/guest/run-guest tests/lvm/test_lvm_revert.py
"""

import os
import pathlib
import signal
import subprocess
import time
import uuid

from conftest import ROOT, lvm, lvm_report, record, run

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


def test_revert_thin_and_classic(vg, make_lv, workdir):
    d, _ = workdir
    facts = {}
    for kind, fstype in (("thin", "ext4"), ("classic", "xfs")):
        lv = make_lv(kind, fstype)
        write(lv.mnt / "before", "before\n")
        snap_path, name = snapshot(lv)
        write(lv.mnt / "after", "after\n")
        newer_path, newer = snapshot(lv)
        write(lv.mnt / "newest", "newest\n")
        before = lvs(vg)
        mount_before = mount_of(lv.mnt)
        code, text, message = plan(lv, snap_path)
        assert code == 0, message
        assert "1 other snapshot(s)" in message, message
        # The plan changed nothing.
        assert shape(vg) == shape_of(before) and mount_of(lv.mnt) == mount_before
        plan_file = d / f"plan-{kind}"
        plan_file.write_text(text)
        p = op(*revert_args(lv, snap_path, plan_file))
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "consumed"
        check_reverted(lv, name, mount_before)
        assert not (lv.mnt / "newest").exists()
        after = lvs(vg)
        origin = after[lv.name]
        # The origin keeps its name and uuid, without the snapshot's tags.
        assert origin["lv_uuid"] == before[lv.name]["lv_uuid"]
        assert origin["lv_tags"] == "" and origin["lv_attr"][0] in "-oV", origin
        # The newer snapshot stays, and holds what it held.
        assert newer in after
        if kind == "thin":
            # The origin has the snapshot's thin device; the newer thin
            # snapshot is a thin LV of its own now (lvm forgot its origin).
            assert origin["thin_id"] == before[name]["thin_id"]
            assert after[newer]["origin"] == ""
            assert after[newer]["lv_attr"][0] == "V"
        else:
            assert after[newer]["origin"] == lv.name and after[newer]["lv_attr"][4] == "a", after[newer]
        facts[kind] = {"origin_before": before[lv.name], "origin_after": origin, "snapshot": before[name],
                       "newer_before": before[newer], "newer_after": after[newer]}
        # Reverting to the newer one: classic can; thin cannot any more.
        code, text, message = plan(lv, newer_path)
        if kind == "thin":
            assert code == 95, message  # EOPNOTSUPP
            assert "no origin" in message
        else:
            assert code == 0, message
        lvm("lvremove", "-q", "-y", f"{vg.name}/{newer}")
    record("lvm-revert", facts)


def hold_open(path, seconds):
    """A process with path open for that long (it exits then)."""
    p = subprocess.Popen(["/usr/bin/python3", "-c",
                          "import sys,time; f=open(sys.argv[1]); print('ready', flush=True); time.sleep(float(sys.argv[2]))",
                          str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_revert_refusals(vg, make_lv, workdir):
    d, _ = workdir
    lv = make_lv("classic", "ext4")
    write(lv.mnt / "before", "before\n")
    # A classic snapshot that overflowed cannot be reverted to.
    small_path, small = snapshot(lv, cow="8M")
    big = lv.mnt / "big"
    with open(big, "wb") as f:
        for _ in range(24):
            f.write(os.urandom(1 << 20))
        os.fsync(f.fileno())
    assert lvs(vg)[small]["lv_attr"][4] == "I"
    code, _, message = plan(lv, small_path)
    assert code == 2 and "invalid" in message, message  # ENOENT
    lvm("lvremove", "-q", "-y", f"{vg.name}/{small}")
    big.unlink()

    snap_path, name = snapshot(lv)
    write(lv.mnt / "after", "after\n")
    mount_before = mount_of(lv.mnt)
    # In use: refused, naming who, and nothing changes.
    holder = hold_open(lv.mnt / "after", 2)
    try:
        before = shape(vg)
        code, _, message = plan(lv, snap_path)
        assert code == 16 and f"process {holder.pid}" in message, message  # EBUSY
        assert shape(vg) == before and mount_of(lv.mnt) == mount_before
        # Forced: the filesystem is detached; the revert waits for its
        # last file to close (the holder exits after 2 s), then merges.
        code, text, message = plan(lv, snap_path, force=True)
        assert code == 0, message
        plan_file = d / "plan-force"
        plan_file.write_text(text)
        p = op(*revert_args(lv, snap_path, plan_file, force=True))
        assert p.returncode == 0, p.stderr
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


def test_revert_killed_at_each_step(vg, make_lv, workdir):
    for kind in ("thin", "classic"):
        killed_at_each_step(make_lv(kind, "ext4"), workdir)


def killed_at_each_step(lv, workdir):
    d, _ = workdir
    vg, kind = lv.vg, lv.kind
    found = {}
    for step in (1, 2, 3, 4):
        write(lv.mnt / "before", "before\n")
        snap_path, name = snapshot(lv)
        write(lv.mnt / "after", "after\n")
        mount_before = mount_of(lv.mnt)
        code, text, message = plan(lv, snap_path)
        assert code == 0, message
        plan_file = d / f"plan-{kind}-{step}"
        plan_file.write_text(text)
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
        (lv.mnt / "before").unlink()
    # Killed before step 1 nothing is done; before 2 the volume is unmounted;
    # before 3 and 4 lvm has merged (classic: lvconvert waited for the end).
    assert found[1]["mounted"] and found[1]["snapshot"]
    assert not found[2]["mounted"] and found[2]["snapshot"] and found[2]["snapshot"][0] in "sV"
    for step in (3, 4):
        assert not found[step]["mounted"] and found[step]["snapshot"] is None, found
    record(f"lvm-revert-killed-{kind}", found)


def test_forced_revert_deferred(vg, make_lv, workdir):
    """Forced while a file stays open on the detached filesystem: lvm defers
    the merge to the LV's next activation; the revert says so and leaves the
    volume unmounted (it would show what it held before)."""
    d, _ = workdir
    lv = make_lv("thin", "ext4")
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
