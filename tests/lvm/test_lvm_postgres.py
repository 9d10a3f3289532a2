# SPDX-License-Identifier: LGPL-2.1-or-later
"""PostgreSQL with its data directory on a thin LV and its WAL on a
classic LV, through vss-pg-writer, under a pgbench load: every set is
application-consistent, and a server started on a copy of it recovers to
a cluster that pg_amcheck finds sound and whose balances add up (the
checks of tests/integration/test_postgres.py, on LVs).
Run: scripts/guest/run-guest tests/lvm/test_lvm_postgres.py
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

SETS = int(os.environ.get("VSS_LVM_PG_SETS", "2"))


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


# Minutes under emulation: with the long tests (make check-long).
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
        for i in range(SETS):
            out = json.loads(create_shadow(vssd, data_lv, wal_lv).stdout)
            assert {s["consistency"] for s in out} == {"application-consistent"}, out
            seen.append(pg.check_copy(rig, vssd, out[0]["set_id"], i))
            vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
        assert load.poll() is None, f"pgbench stopped:\n{load.stderr.read()}"
        assert seen == sorted(seen), seen
        err = pg.stop_writer(writer, "vss-pg-writer")
        assert err.count("checkpoint done") == SETS, err
    finally:
        rig.stop_all()
