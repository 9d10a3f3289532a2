# SPDX-License-Identifier: LGPL-2.1-or-later
"""vssd killed (SIGKILL) while it holds a set of LVs: the guard thaws every
member at once, no origin stays suspended, and the next start removes what
the set left; snapshot LVs the catalog does not know are found by their
tags and removed.
Run: scripts/guest/run-guest tests/lvm/test_lvm_crash.py
"""

import os
import signal
import threading
import time
import uuid

from conftest import VSSADMIN, dm_table, is_frozen, lvm, lvm_report

SNAPSHOT_TAG = "vss-snapshot:"


def vss_lvs(vg):
    rows = lvm_report("lvs", "-o", "lv_name,lv_tags", vg.name)
    return {r["lv_name"]: r for r in rows if SNAPSHOT_TAG in r["lv_tags"]}


def write_returns(path, timeout):
    """Whether a write and fsync to path finish within timeout seconds (a
    write to a frozen or suspended filesystem waits)."""
    done = threading.Event()

    def write():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, b"after the kill\n")
        os.fsync(fd)
        os.close(fd)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(timeout)


def test_sigkill_in_the_hold(vg, make_lv, daemon_factory):
    thin = make_lv("thin", "ext4")
    classic = make_lv("classic", "xfs")
    # The commit waits 3 s inside the hold: vssd is killed there.
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:delay=3000"})
    p = vssd.background(VSSADMIN, "create", "shadow", f"--for={thin.mnt}", f"--for={classic.mnt}")
    deadline = time.monotonic() + 60
    while not (is_frozen(thin.mnt) and is_frozen(classic.mnt)):
        assert time.monotonic() < deadline, vssd.log()
        if p.poll() is not None:
            print(p.communicate(), vssd.log())
            raise AssertionError("the set ended before the hold")
        time.sleep(0.01)
    t0 = time.monotonic()
    vssd.proc.send_signal(signal.SIGKILL)
    vssd.proc.wait()
    vssd.proc = None
    # Thawed by the guard within a second, origins never left suspended.
    for lv in (thin, classic):
        assert write_returns(lv.mnt / "log", 1.0 - (time.monotonic() - t0)), f"{lv} not writable 1 s after the kill"
    assert not any(is_frozen(lv.mnt) for lv in (thin, classic))
    devices = dm_table()
    assert not any(devices[lv.mapper.name]["suspended"] for lv in (thin, classic))
    p.communicate()
    # The next start removes the half-made set: the thin snapshot made
    # before the hold, tagged, and recorded.
    vssd.start()
    assert vssd.list_shadows() == []
    assert vss_lvs(vg) == {}, vssd.log()


def test_orphans_found_by_tag(vg, make_lv, vssd):
    thin = make_lv("thin", "ext4")
    classic = make_lv("classic", "ext4")
    kept = vssd.vssadmin("create", "shadow", f"--for={thin.mnt}", "--json")
    vssd.stop()
    # Snapshot LVs vss made whose rows the catalog lost (a crash between
    # the two deletes, an old catalog restored): vss's by their tags.
    orphans = []
    for lv, extra in ((thin, []), (classic, ["-L", "16M"])):
        sid, set_id = uuid.uuid4(), uuid.uuid4()
        name = f"vss-{sid}"
        lvm("lvcreate", "-q", "-s", *extra, "-n", name, "--addtag", f"vss-snapshot:{sid}",
            "--addtag", f"vss-set:{set_id}", lv.lv)
        orphans.append(name)
    # An LV of someone else's, named alike but untagged, stays.
    lvm("lvcreate", "-q", "-s", "-n", f"vss-{uuid.uuid4()}", thin.lv)
    assert len(vss_lvs(vg)) == 3
    vssd.start()
    left = vss_lvs(vg)
    assert len(left) == 1 and not set(orphans) & set(left), vssd.log()
    for name in orphans:
        assert f"at /dev/{vg.name}/{name} is not in the catalog; deleting it" in vssd.log(), vssd.log()
    assert len(vssd.list_shadows()) == 1 and kept.returncode == 0
    names = {r["lv_name"] for r in lvm_report("lvs", "-o", "lv_name", vg.name)}
    assert sum(n.startswith("vss-") for n in names) == 2  # ours, and the untagged one
