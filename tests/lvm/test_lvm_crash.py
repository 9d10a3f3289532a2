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

from conftest import VSSADMIN, dm_table, lvm, lvm_report

SNAPSHOT_TAG = "vss-snapshot:"


def vss_lvs(vg):
    rows = lvm_report("lvs", "-o", "lv_name,lv_tags", vg.name)
    return {r["lv_name"]: r for r in rows if SNAPSHOT_TAG in r["lv_tags"]}


class Writer:
    """Appends a line and fsyncs, again and again, on a thread: a write that
    stays pending is one its frozen filesystem holds. (Probing with FIFREEZE,
    as is_frozen does, would race with lvcreate's and vssd's own freezes.)"""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.started = None  # of the write in flight
        self.done = []       # (start, end) of each write
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            self.started = time.monotonic()
            os.write(self.fd, b"record\n")
            os.fsync(self.fd)
            self.done.append((self.started, time.monotonic()))
            self.started = None
            time.sleep(0.01)

    def pending_for(self):
        started = self.started
        return time.monotonic() - started if started is not None else 0.0

    def finish(self, timeout):
        self.stop = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            return False
        # Open, it would keep the filesystem from being unmounted.
        os.close(self.fd)
        return True


def test_sigkill_in_the_hold(vg, make_lv, daemon_factory):
    thin = make_lv("thin", "ext4")
    classic = make_lv("classic", "xfs")
    # The commit waits 4 s inside the hold: vssd is killed there.
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:delay=4000"})
    writers = [Writer(lv.mnt / "log") for lv in (thin, classic)]
    p = vssd.background(VSSADMIN, "create", "shadow", f"--for={thin.mnt}", f"--for={classic.mnt}")
    deadline = time.monotonic() + 90
    # Held: both writers' writes stay pending.
    while not all(w.pending_for() > 0.8 for w in writers):
        assert time.monotonic() < deadline, vssd.log()
        if p.poll() is not None:
            print(p.communicate(), vssd.log())
            raise AssertionError("the set ended before the hold")
        time.sleep(0.02)
    t0 = time.monotonic()
    vssd.proc.send_signal(signal.SIGKILL)
    vssd.proc.wait()
    vssd.proc = None
    # The writes held return within a second: the guard thawed, and no
    # origin stays suspended.
    for w, lv in zip(writers, (thin, classic)):
        assert w.finish(5), f"{lv}: a write still waits 5 s after the kill"
        took = min(end for _, end in w.done if end >= t0) - t0
        assert took < 1.0, f"{lv}: writable {took:.3f} s after the kill"
    devices = dm_table()
    assert not any(devices[lv.mapper.name]["suspended"] for lv in (thin, classic))
    p.communicate()
    # The next start removes the half-made set: the thin snapshot made
    # before the hold, tagged, and recorded.
    vssd.start()
    assert vssd.list_shadows() == []
    assert "was being created when vssd stopped" in vssd.log(), vssd.log()
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
