# SPDX-License-Identifier: LGPL-2.1-or-later
"""Proof of the cut: a set of two image volumes is one instant.

A writer appends numbered records to a file on volume A, then to a file on
volume B, in turn, with fsync after each. At any instant A holds records
0..k and B holds 0..k-1 or 0..k: in every snapshot set the two sequences may
differ by at most one record. A control takes the two snapshots one after the
other, without holding both, and shows that the same check then fails."""

import json
import os
import subprocess
import sys
import time

import pytest

NESTING = "MaxImageNesting = 2\n"
SETS = int(os.environ.get("VSS_CUT_SETS", "30"))

# Arguments: the two files, and optionally a pause in seconds after each
# pair of records (to leave a slow machine's cut some CPU).
WRITER = r"""
import os, sys, time
a = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
b = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0
n = 0
while True:
    for fd in (a, b):
        os.write(fd, b"%08d\n" % n)
        os.fsync(fd)
    n += 1
    if pause:
        time.sleep(pause)
"""


def last_record(path):
    lines = open(path).read().splitlines()
    for line in lines:
        assert len(line) == 8 and line.isdigit(), f"torn record {line!r} in {path}"
    assert [int(x) for x in lines] == list(range(len(lines))), f"records out of order in {path}"
    return len(lines) - 1


@pytest.fixture
def writer(images):
    a, b = images(2)
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(a.mnt / "log"), str(b.mnt / "log")])
    time.sleep(0.3)
    yield a, b
    p.terminate()
    p.wait()


def exposed_records(vssd, set_id, at, vols):
    vssd.vssadmin("expose", f"--set={set_id}", f"--at={at}")
    try:
        return [last_record(f"{at}{v.mnt}/log") for v in vols]
    finally:
        vssd.vssadmin("unexpose", f"--set={set_id}")


def test_every_set_is_one_instant(writer, daemon_factory, workdir):
    d, _ = workdir
    a, b = writer
    vssd = daemon_factory(config=NESTING)
    seen = []
    for i in range(SETS):
        out = json.loads(vssd.vssadmin("create", "shadow", f"--for={a.mnt}", f"--for={b.mnt}", "--json").stdout)
        assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
        ra, rb = exposed_records(vssd, out[0]["set_id"], d / f"set{i}", (a, b))
        assert ra - rb in (0, 1), f"set {i}: A ends at record {ra}, B at {rb}: not one instant"
        seen.append(ra)
        vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    # The writer went on throughout: the sets are of different instants.
    assert seen == sorted(seen) and seen[-1] > seen[0]


def test_control_one_after_the_other_can_fail(writer, daemon_factory, workdir):
    d, _ = workdir
    a, b = writer
    vssd = daemon_factory(config=NESTING)
    gaps = []
    for i in range(5):
        sa = json.loads(vssd.vssadmin("create", "shadow", f"--for={a.mnt}", "--json").stdout)[0]
        sb = json.loads(vssd.vssadmin("create", "shadow", f"--for={b.mnt}", "--json").stdout)[0]
        (ra,) = exposed_records(vssd, sa["set_id"], d / f"a{i}", (a,))
        (rb,) = exposed_records(vssd, sb["set_id"], d / f"b{i}", (b,))
        gaps.append(rb - ra)
        vssd.vssadmin("delete", "shadows", f"--set={sa['set_id']}", "--quiet")
        vssd.vssadmin("delete", "shadows", f"--set={sb['set_id']}", "--quiet")
    # B was cut later than A: the check of the test above fails.
    assert any(g > 1 for g in gaps), f"the control never broke the invariant: {gaps}"
