# SPDX-License-Identifier: LGPL-2.1-or-later
"""Proof of the cut across two LVs, a thin and a classic one (as
tests/integration/test_cut.py for images): a writer appends numbered
records to a file on LV A, then on LV B,
with fsync after each; in every set the two differ by at most one record.
A control, two sets of one LV each one after the other, breaks that.
And PostgreSQL with its data directory on a thin LV and its WAL on a
classic LV, through vss-pg-writer, under a pgbench load: every set is
application-consistent, and a server started on a copy of it recovers to
a cluster that pg_amcheck finds sound and whose balances add up (the
checks of tests/integration/test_postgres.py, on LVs; with the long tests,
VSS_LONG=1: minutes under emulation).
Run: scripts/guest/run-guest tests/lvm/test_lvm_cut.py
"""

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

import conftest
from conftest import ROOT, create_shadow

SETS = int(os.environ.get("VSS_LVM_CUT_SETS", "2"))
PG_SETS = int(os.environ.get("VSS_LVM_PG_SETS", "2"))


def _integration_cut():
    spec = importlib.util.spec_from_file_location("vss_integration_cut", ROOT / "tests" / "integration" / "test_cut.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The image cut proof's writer and record check, the same on LVs.
_cut = _integration_cut()
WRITER = _cut.WRITER
last_record = _cut.last_record
# One emulated CPU: the writer leaves the cut some of it.
WRITER_PAUSE = "0.005"


@pytest.fixture
def writer(make_lv):
    # A thin member and a classic one: both ways the provider cuts.
    a = make_lv("thin", "ext4", name="a")
    b = make_lv("classic", "xfs", name="b")
    p = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, str(a.mnt / "log"), str(b.mnt / "log"), WRITER_PAUSE])
    time.sleep(0.5)
    yield a, b
    p.terminate()
    p.wait()


def exposed_records(vssd, set_id, at, vols):
    vssd.vssadmin("expose", f"--set={set_id}", f"--at={at}")
    try:
        return [last_record(f"{at}{v.mnt}/log") for v in vols]
    finally:
        vssd.vssadmin("unexpose", f"--set={set_id}")


def create(vssd, *vols):
    return json.loads(vssd.vssadmin("create", "shadow", *[f"--for={v.mnt}" for v in vols], "--json").stdout)


def test_every_set_is_one_instant(writer, vssd, workdir):
    d, _ = workdir
    a, b = writer
    seen = []
    for i in range(SETS):
        out = create(vssd, a, b)
        assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
        ra, rb = exposed_records(vssd, out[0]["set_id"], d / f"set{i}", (a, b))
        assert ra - rb in (0, 1), f"set {i}: A ends at record {ra}, B at {rb}: not one instant"
        seen.append(ra)
        vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    assert seen == sorted(seen) and seen[-1] > seen[0]


def test_control_one_after_the_other_fails(writer, vssd, workdir):
    d, _ = workdir
    a, b = writer
    gaps = []
    for i in range(1):
        (sa,) = create(vssd, a)
        (sb,) = create(vssd, b)
        (ra,) = exposed_records(vssd, sa["set_id"], d / f"a{i}", (a,))
        (rb,) = exposed_records(vssd, sb["set_id"], d / f"b{i}", (b,))
        gaps.append(rb - ra)
        vssd.vssadmin("delete", "shadows", "--all", "--quiet")
    assert any(g > 1 for g in gaps), f"the control never broke the invariant: {gaps}"


def integration_postgres():
    """tests/integration/test_postgres.py, with the integration conftest as
    the "conftest" it imports."""
    saved = sys.modules.get("conftest")
    sys.modules["conftest"] = conftest.integration
    try:
        spec = importlib.util.spec_from_file_location("vss_integration_postgres",
                                                      ROOT / "tests" / "integration" / "test_postgres.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.modules["conftest"] = saved
    return mod


pg = integration_postgres()


@pytest.mark.skipif(os.environ.get("VSS_LONG") != "1", reason="VSS_LONG=1 (make check-long) runs it")
def test_postgres_on_two_lvs(make_lv, daemon_factory, workdir):
    d, _ = workdir
    bindir = pg.prerequisites()
    data_lv = make_lv("thin", "ext4", size="512M", name="pgdata")
    wal_lv = make_lv("classic", "xfs", size="512M", name="pgwal")
    rig = pg.Rig(bindir, d, data_lv, wal_lv)
    try:
        rig.initdb()
        rig.server.start()
        rig.server.client("pgbench", "-i", "-q", "-s", pg.SCALE, "postgres")
        rig.server.sql("CREATE EXTENSION amcheck")
        vssd = daemon_factory()
        writer = vssd.spawn(pg.PG_WRITER, rig.conninfo)
        load = subprocess.Popen([str(rig.bin / "pgbench"), "-h", str(rig.sock), "-p", str(pg.PORT), "-U", "postgres",
                                 "-n", "-c", "2", "-j", "1", "-T", "600", "postgres"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/")
        rig.procs.append(load)
        time.sleep(1)
        seen = []
        for i in range(PG_SETS):
            out = json.loads(create_shadow(vssd, data_lv, wal_lv).stdout)
            assert {s["consistency"] for s in out} == {"application-consistent"}, out
            seen.append(pg.check_copy(rig, vssd, out[0]["set_id"], i))
            vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
        assert load.poll() is None, f"pgbench stopped:\n{load.stderr.read()}"
        assert seen == sorted(seen), seen
        err = pg.stop_writer(writer, "vss-pg-writer")
        assert err.count("checkpoint done") == PG_SETS, err
    finally:
        rig.stop_all()
