# SPDX-License-Identifier: LGPL-2.1-or-later
"""vss-pg-writer with a real PostgreSQL: the data directory on one image
volume, the WAL (initdb --waldir) on another, a pgbench load running while
sets of both are made. Every set must be application-consistent, and a
server started on a copy of it must recover (a crash at the set's instant)
to a cluster that pg_amcheck finds sound and whose pgbench balances add up:
the sums of the accounts', tellers' and branches' balances each equal the
sum of the history's deltas, which holds only if every transaction is either
wholly in the copy or wholly absent. A control shows what the writer's veto
prevents: data and WAL cut at two instants do not even start.

A set of only one of the two volumes fails the writer with
VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT and leaves no set behind, as does one
of data and WAL on two btrfs volumes (cut one at a time). The writer also
outlives its server: started before it, and across a restart.

PostgreSQL is not optional here: without it the tests fail, and say how to
install it (scripts/install-deps.sh, as CI does)."""

import glob
import json
import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest

from conftest import BUILD, create_shadow, run, stop_writer, terminate, writers_by_name

PG_WRITER = BUILD / "src" / "writers" / "pg" / "vss-pg-writer"
NESTING = "MaxImageNesting = 2\n"
SETS = int(os.environ.get("VSS_PG_SETS", "10"))
CLASS_ID = "{5b01533a-e824-4656-9e30-a72729aed85b}"
# listen_addresses is empty: a port only names a socket in the private
# socket directory, so these cannot clash with anything on the machine.
PORT, COPY_PORT = 54321, 54322
SCALE = 2
# VSS_WS_* numbers.
STABLE, FAILED_AT_IDENTIFY = 1, 6

INVARIANTS = """
SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts),
       (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),
       (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches),
       (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
       (SELECT count(*) FROM pgbench_history)
"""


def pg_bindir():
    """The newest installed PostgreSQL's programs (Debian keeps them out of
    PATH), or PG_BINDIR."""
    if os.environ.get("PG_BINDIR"):
        candidates = [os.environ["PG_BINDIR"]]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True)
    for d in candidates:
        if all(os.access(os.path.join(d, t), os.X_OK) for t in ("initdb", "pg_ctl", "pgbench", "pg_amcheck", "psql")):
            return pathlib.Path(d)
    pytest.fail("PostgreSQL is not installed (no initdb, pg_ctl, pgbench, pg_amcheck and psql in "
                f"{candidates or '/usr/lib/postgresql/*/bin'}): run scripts/install-deps.sh, which installs "
                "postgresql and libpq-dev, or set PG_BINDIR", pytrace=False)


def chown_postgres(*paths):
    for p in paths:
        run("chown", "-R", "postgres:postgres", p)


class Cluster:
    """One PostgreSQL server, run as the postgres user (it refuses root)."""

    def __init__(self, bindir, data, port, sockdir, log):
        self.bin, self.data, self.port, self.sockdir, self.log = bindir, pathlib.Path(data), port, sockdir, log
        self.running = False

    def as_postgres(self, tool, *args, check=True, timeout=120):
        # cwd /: the postgres user cannot enter root's working directory.
        p = subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / tool), *map(str, args)],
                           capture_output=True, text=True, cwd="/", timeout=timeout)
        if check:
            assert p.returncode == 0, f"{tool} {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}"
        return p

    def client(self, tool, *args, check=True, timeout=120):
        """A client program (those run as root), connected as postgres."""
        p = subprocess.run([str(self.bin / tool), "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres",
                            *map(str, args)], capture_output=True, text=True, cwd="/", timeout=timeout)
        if check:
            assert p.returncode == 0, f"{tool} {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}"
        return p

    def sql(self, query, db="postgres"):
        return self.client("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query).stdout

    def start(self, check=True):
        self.running = True
        p = self.as_postgres("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "90",
                             "-o", f"-p {self.port} -k {self.sockdir} -c listen_addresses=''", "start", check=False)
        if check:
            assert p.returncode == 0, f"postgres on {self.data} did not start:\n{p.stderr}\n{self.log_text()}"
        return p.returncode == 0

    def stop(self):
        """Immediate: nothing to keep, and it must be gone before its
        volume is unmounted. A postmaster pg_ctl cannot stop is killed."""
        if not self.running:
            return
        pidfile = self.data / "postmaster.pid"
        pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
        p = self.as_postgres("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop", check=False)
        if p.returncode != 0 and pid and self.is_postmaster(pid):
            os.kill(pid, signal.SIGKILL)
        self.running = False

    def is_postmaster(self, pid):
        """Whether pid is still this cluster's postmaster (not a reused pid)."""
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.data).encode() in cmdline

    def log_text(self):
        return pathlib.Path(self.log).read_text() if os.path.exists(self.log) else ""


class Rig:
    """A cluster with its data directory on one image volume and its WAL on
    another, and whatever runs against it; everything is stopped at the end
    of the test, before the volumes are unmounted."""

    def __init__(self, bindir, workdir, data_vol, wal_vol, tag=""):
        self.bin = bindir
        self.workdir = workdir
        self.data_vol, self.wal_vol = data_vol, wal_vol
        self.sock = workdir / f"pgsock{tag}"
        self.logs = workdir / f"pglogs{tag}"
        self.data = data_vol.mnt / f"pgdata{tag}"
        self.wal = wal_vol.mnt / f"pgwal{tag}"
        for p in (self.sock, self.logs, self.data, self.wal):
            p.mkdir()
        os.chmod(self.data, 0o700)
        os.chmod(self.wal, 0o700)
        chown_postgres(self.sock, self.logs, self.data, self.wal)
        self.server = Cluster(bindir, self.data, PORT, self.sock, self.logs / "server.log")
        self.clusters = [self.server]
        self.procs = []

    @property
    def conninfo(self):
        return f"host={self.sock} port={PORT} user=postgres dbname=postgres"

    def initdb(self):
        self.server.as_postgres("initdb", "-D", self.data, f"--waldir={self.wal}", "--auth=trust", "-U", "postgres",
                                "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as f:
            # Checkpoints come from the writer, one per set; between them
            # the WAL must not outgrow its volume.
            f.write("max_wal_size = '128MB'\nmin_wal_size = '32MB'\n")

    def stop_all(self):
        for p in self.procs:
            terminate(p)
        for c in reversed(self.clusters):
            c.stop()


def prerequisites():
    bindir = pg_bindir()
    assert PG_WRITER.exists(), f"{PG_WRITER} is missing: build first (ninja -C {BUILD})"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("there is no postgres user: install PostgreSQL with scripts/install-deps.sh", pytrace=False)
    return bindir


@pytest.fixture
def rig(images, workdir):
    bindir = prerequisites()
    d, _ = workdir
    data_vol, wal_vol = images(2, size="512M")
    r = Rig(bindir, d, data_vol, wal_vol)
    try:
        yield r
    finally:
        r.stop_all()


def copy_out(rig, vssd, name, data_set, wal_set=None):
    """Copy the cluster out of its set (or the data directory out of one set
    and the WAL out of another) into a scratch directory on /, as a restore
    would; returns a Cluster on the copy, not started."""
    scratch = rig.workdir / name  # on /, not on a volume of the test
    scratch.mkdir()
    parts = {}
    for set_id, src, dst in ((data_set, rig.data, "data"), (wal_set or data_set, rig.wal, "wal")):
        parts.setdefault(set_id, []).append((src, dst))
    for k, (set_id, items) in enumerate(parts.items()):
        at = rig.workdir / f"{name}-set{k}"
        vssd.vssadmin("expose", f"--set={set_id}", f"--at={at}")
        try:
            for src, dst in items:
                run("cp", "-a", f"{at}{src}", scratch / dst)
        finally:
            vssd.vssadmin("unexpose", f"--set={set_id}")

    data = scratch / "data"
    link = data / "pg_wal"
    # The copy's pg_wal still points at the live WAL: a server started on
    # it would replay, and then write, the original's. Point it at the copy.
    assert link.is_symlink() and os.readlink(link) == str(rig.wal), os.readlink(link)
    link.unlink()
    link.symlink_to(scratch / "wal")
    # The writer's excluded files: the original postmaster's pid would stop
    # the copy from starting ("lock file already exists").
    for f in ("postmaster.pid", "postmaster.opts"):
        (data / f).unlink(missing_ok=True)
    chown_postgres(scratch)
    os.chmod(scratch, 0o755)
    copy = Cluster(rig.bin, data, COPY_PORT, rig.sock, rig.logs / f"{name}.log")
    rig.clusters.append(copy)
    return copy


def discard(rig, copy):
    copy.stop()
    rig.clusters.remove(copy)
    shutil.rmtree(copy.data.parent)


def check_copy(rig, vssd, set_id, i):
    """Start a second server on a copy of the set and check what it
    recovered. Returns the history's length."""
    copy = copy_out(rig, vssd, f"copy{i}", set_id)
    try:
        copy.start()
        log = copy.log_text()
        # It was a crash at the set's instant, recovered from.
        assert "automatic recovery in progress" in log, log
        p = copy.client("pg_amcheck", "--all", "--heapallindexed", "--verbose", check=False, timeout=300)
        assert p.returncode == 0, f"set {i}: pg_amcheck found damage:\n{p.stdout}\n{p.stderr}"
        # It checked pgbench's tables (template1 has no amcheck: skipped).
        assert 'checking btree index "postgres.public.pgbench_accounts_pkey"' in p.stderr, p.stderr
        accounts, tellers, branches, history, rows = map(int, copy.sql(INVARIANTS).split("|"))
        assert accounts == tellers == branches == history, \
            f"set {i}: balances do not add up: accounts {accounts}, tellers {tellers}, " \
            f"branches {branches}, history {history} ({rows} rows)"
    finally:
        discard(rig, copy)
    return rows


@pytest.mark.app_load
def test_sets_under_pgbench_recover_to_a_sound_cluster(rig, make_fs, host, daemon_factory, workdir):
    start = time.monotonic()
    rig.initdb()
    rig.server.start()
    rig.server.client("pgbench", "-i", "-q", "-s", SCALE, "postgres")
    rig.server.sql("CREATE EXTENSION amcheck")
    other = make_fs("ext4", "256M", "other", on=host)  # nothing of PostgreSQL's on it
    vssd = daemon_factory(config=NESTING)
    writer = vssd.spawn(PG_WRITER, rig.conninfo)

    w = writers_by_name(vssd)["PostgreSQL"]
    assert (w["class_id"], w["state"], w["last_error"]) == (CLASS_ID, STABLE, None), w

    # Half a cluster is no backup of it: the writer's veto, and no set kept.
    for vols, missing in (((rig.data_vol,), rig.wal), ((rig.wal_vol,), rig.data)):
        p = create_shadow(vssd, *vols, check=False)
        assert p.returncode != 0, p.stdout
        assert "writer 'PostgreSQL' failed: [8]" in p.stderr, p.stderr
        assert "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" in p.stderr and str(missing) in p.stderr, p.stderr
        assert vssd.list_shadows() == [] and host.store_entries() == []
    # A set of another volume is none of its business.
    (s,) = json.loads(create_shadow(vssd, other).stdout)
    assert s["consistency"] != "application-consistent", s
    vssd.vssadmin("delete", "shadows", f"--set={s['set_id']}", "--quiet")

    load = subprocess.Popen([str(rig.bin / "pgbench"), "-h", str(rig.sock), "-p", str(PORT), "-U", "postgres",
                             "-n", "-c", "4", "-j", "2", "-T", "600", "postgres"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/")
    rig.procs.append(load)
    time.sleep(1)
    seen, took = [], []
    for i in range(SETS):
        assert load.poll() is None, f"pgbench stopped:\n{load.stderr.read()}"
        t = time.monotonic()
        out = json.loads(create_shadow(vssd, rig.data_vol, rig.wal_vol).stdout)
        took.append(round(time.monotonic() - t, 1))
        assert {s["consistency"] for s in out} == {"application-consistent"}, out
        seen.append(check_copy(rig, vssd, out[0]["set_id"], i))
        vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    assert load.poll() is None, f"pgbench stopped:\n{load.stderr.read()}"
    # The load ran throughout: every set is of a later instant.
    assert seen == sorted(seen) and (SETS < 2 or seen[0] < seen[-1]), seen
    assert vssd.list_shadows() == []

    # Control: what the veto prevents. The WAL cut first, a checkpoint, the
    # data cut later: the copy's pg_control names a checkpoint its WAL does
    # not hold, and the server cannot start on it.
    ignore = ("--ignore-writer-failures",)
    wal_only = json.loads(vssd.vssadmin("create", "shadow", f"--for={rig.wal_vol.mnt}", "--json", *ignore).stdout)
    rig.server.sql("CHECKPOINT")
    data_only = json.loads(vssd.vssadmin("create", "shadow", f"--for={rig.data_vol.mnt}", "--json", *ignore).stdout)
    copy = copy_out(rig, vssd, "torn", data_only[0]["set_id"], wal_only[0]["set_id"])
    try:
        assert not copy.start(check=False), copy.log_text()
        assert "could not locate a valid checkpoint record" in copy.log_text(), copy.log_text()
    finally:
        discard(rig, copy)
    for out in (wal_only, data_only):
        vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")

    err = stop_writer(writer, "vss-pg-writer")
    assert f"subscribed for {rig.data}" in err, err
    assert err.count("checkpoint done") == SETS, err
    assert "nothing to hold" in err and "nothing to release" in err, err
    print(f"{SETS} sets under pgbench in {time.monotonic() - start:.1f} s; each made in {took} s; "
          f"pgbench_history rows: {seen}")


def test_writer_started_before_the_server_connects_later(rig, daemon_factory, workdir):
    rig.initdb()
    vssd = daemon_factory(config=NESTING)
    writer = vssd.spawn(PG_WRITER, rig.conninfo)

    w = writers_by_name(vssd)["PostgreSQL"]
    assert (w["state"], w["last_error"]) == (FAILED_AT_IDENTIFY, "VSS_E_WRITERERROR_RETRYABLE"), w
    assert w["message"], w
    # Where the cluster is, nobody can say: vssadmin keeps no set.
    p = create_shadow(vssd, rig.data_vol, rig.wal_vol, check=False)
    assert p.returncode != 0 and "writer 'PostgreSQL' failed: [6]" in p.stderr, p.stderr
    assert vssd.list_shadows() == []

    rig.server.start()
    w = writers_by_name(vssd)["PostgreSQL"]
    assert (w["state"], w["last_error"]) == (STABLE, None), w
    out = json.loads(create_shadow(vssd, rig.data_vol, rig.wal_vol).stdout)
    assert {s["consistency"] for s in out} == {"application-consistent"}, out
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")

    # A restarted server breaks the writer's connection; the next set
    # makes it again.
    rig.server.stop()
    rig.server.start()
    out = json.loads(create_shadow(vssd, rig.data_vol, rig.wal_vol).stdout)
    assert {s["consistency"] for s in out} == {"application-consistent"}, out
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")

    err = stop_writer(writer, "vss-pg-writer")
    assert "cannot connect to PostgreSQL" in err and err.count("connected to PostgreSQL") == 2, err
    assert err.count("checkpoint done") == 2, err

    # A role that may read the settings but not checkpoint: the writer
    # fails the set with the server's words, as one worth retrying.
    rig.server.sql("CREATE ROLE vss_backup LOGIN IN ROLE pg_read_all_settings")
    writer = vssd.spawn(PG_WRITER, rig.conninfo.replace("user=postgres", "user=vss_backup"))
    p = create_shadow(vssd, rig.data_vol, rig.wal_vol, check=False)
    assert p.returncode != 0 and "writer 'PostgreSQL' failed: [8]" in p.stderr, p.stderr
    assert "VSS_E_WRITERERROR_RETRYABLE" in p.stderr and "CHECKPOINT failed" in p.stderr, p.stderr
    assert "pg_checkpoint" in p.stderr, p.stderr
    assert vssd.list_shadows() == []
    stop_writer(writer, "vss-pg-writer")


def test_data_and_wal_on_two_btrfs_volumes_are_refused(btrfs, workdir, daemon_factory):
    """btrfs cannot be frozen: a set snapshots its btrfs volumes one after
    another, each at its own instant. Data and WAL on two of them would be
    two crashes, not one, so the writer refuses; on one of them, one
    instant, it takes part."""
    bindir = prerequisites()
    d, _ = workdir
    a, b = SimpleNamespace(mnt=btrfs.subvolume("a")), SimpleNamespace(mnt=btrfs.subvolume("b"))
    vssd = daemon_factory(config=NESTING)
    for tag, wal_vol in (("-apart", b), ("-together", a)):
        rig = Rig(bindir, d, a, wal_vol, tag)
        try:
            rig.initdb()
            rig.server.start()
            writer = vssd.spawn(PG_WRITER, rig.conninfo)
            p = create_shadow(vssd, a, b, check=False)
            if wal_vol is b:
                assert p.returncode != 0 and "writer 'PostgreSQL' failed: [8]" in p.stderr, p.stderr
                assert "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" in p.stderr and "is btrfs" in p.stderr, p.stderr
                assert vssd.list_shadows() == []
            else:
                assert p.returncode == 0, p.stderr
                out = json.loads(p.stdout)
                assert {s["consistency"] for s in out} == {"application-consistent"}, out
                vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
            stop_writer(writer, "vss-pg-writer")
        finally:
            rig.stop_all()
