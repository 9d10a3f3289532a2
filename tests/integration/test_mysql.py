# SPDX-License-Identifier: LGPL-2.1-or-later
"""vss-mysql-writer with a real MariaDB (Debian's mariadb-server, a private
instance: its own data directory, socket and pid file, no TCP port, run as
the mysql user): the data directory on one image volume, the InnoDB redo
log, the undo tablespaces and the binary log on another, a load moving money
between accounts while sets of both are made. The load moves it twice per
transfer: in an InnoDB transaction, and in one statement on a MyISAM table,
which no crash recovery makes whole. Every set must be
application-consistent, and a second server started on a copy of it must
recover to tables that CHECK TABLE finds sound (with MyISAM's automatic
repair off, so that a table left open or half written is reported, not
mended) and whose balances still add up in both tables: the writer's lock
flushed and closed the MyISAM table with no statement half done.

The writer also fails, with the server's own message, when it cannot reach
the server, and a set then is not kept; and a set of only one of the two
volumes is refused.

MariaDB is not optional here: without it the tests fail, and say how to
install it (scripts/install-deps.sh)."""

import json
import os
import pwd
import shutil
import subprocess
import time

import pytest

from conftest import (BUILD, VSSADMIN, assert_no_sanitizer_report, create_shadow, run, stop_writer, terminate,
                      wait_until, writers_by_name)

MYSQL_WRITER = BUILD / "src" / "writers" / "mysql" / "vss-mysql-writer"
NESTING = "MaxImageNesting = 2\n"
SETS = int(os.environ.get("VSS_MYSQL_SETS", "5"))
CLASS_ID = "{0f7f3b3e-6a41-4c55-9d57-2b9b8f1c4e21}"
ACCOUNTS, START_BALANCE = 100, 1000
# VSS_WS_* numbers.
STABLE, FAILED_AT_IDENTIFY = 1, 6

SCHEMA = f"""
CREATE DATABASE bank;
USE bank;
CREATE TABLE accounts (id INT PRIMARY KEY, bal INT NOT NULL) ENGINE=InnoDB;
CREATE TABLE transfers (n BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b INT, x INT) ENGINE=InnoDB;
CREATE TABLE m_accounts (id INT PRIMARY KEY, bal INT NOT NULL) ENGINE=MyISAM;
INSERT INTO accounts SELECT seq, {START_BALANCE} FROM seq_1_to_{ACCOUNTS};
INSERT INTO m_accounts SELECT seq, {START_BALANCE} FROM seq_1_to_{ACCOUNTS};
DELIMITER //
CREATE PROCEDURE load_transfers(IN n INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE a, b, x INT;
  -- A deadlock or lock wait timeout rolls the transfer back and goes on.
  DECLARE CONTINUE HANDLER FOR 1213, 1205 ROLLBACK;
  WHILE i < n DO
    SET a = FLOOR(1 + RAND() * {ACCOUNTS});
    SET b = a % {ACCOUNTS} + 1 + FLOOR(RAND() * ({ACCOUNTS} - 1));
    SET b = (b - 1) % {ACCOUNTS} + 1;
    SET x = FLOOR(1 + RAND() * 10);
    START TRANSACTION;
    UPDATE accounts SET bal = bal - x WHERE id = a;
    UPDATE accounts SET bal = bal + x WHERE id = b;
    INSERT INTO transfers (a, b, x) VALUES (a, b, x);
    COMMIT;
    UPDATE m_accounts SET bal = bal + IF(id = a, -x, x) WHERE id IN (a, b);
    SET i = i + 1;
  END WHILE;
END//
DELIMITER ;
"""


# What BACKUP STAGE and FLUSH TABLES WITH READ LOCK hold, and statements do not.
HELD_BACKUP_LOCKS = """
SELECT COUNT(*) FROM information_schema.METADATA_LOCK_INFO WHERE LOCK_TYPE = 'Backup lock' AND LOCK_MODE IN
('MDL_BACKUP_START', 'MDL_BACKUP_FLUSH', 'MDL_BACKUP_WAIT_FLUSH', 'MDL_BACKUP_WAIT_DDL', 'MDL_BACKUP_WAIT_COMMIT',
 'MDL_BACKUP_FTWRL1', 'MDL_BACKUP_FTWRL2')
"""


def prerequisites():
    missing = [t for t in ("mariadbd", "mariadb-install-db", "mariadb") if not shutil.which(t, path="/usr/sbin:/usr/bin")]
    if missing:
        pytest.fail(f"MariaDB is not installed (no {', '.join(missing)}): run scripts/install-deps.sh, which "
                    "installs mariadb-server and libmariadb-dev", pytrace=False)
    assert MYSQL_WRITER.exists(), f"{MYSQL_WRITER} is missing: build first (ninja -C {BUILD})"
    try:
        pwd.getpwnam("mysql")
    except KeyError:
        pytest.fail("there is no mysql user: install MariaDB with scripts/install-deps.sh", pytrace=False)


class Server:
    """One mariadbd, started by the test and stopped by its PID."""

    def __init__(self, workdir, name, datadir, redo, undo, binlog):
        self.datadir, self.redo, self.undo, self.binlog = datadir, redo, undo, binlog
        self.run = workdir / f"{name}-run"  # socket, pid file, log: on /, not on a volume
        self.run.mkdir()
        run("chown", "mysql:mysql", self.run)
        self.socket = self.run / "mysql.sock"
        self.log = self.run / "error.log"
        self.proc = None

    def options(self):
        return ["--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
                f"--innodb-log-group-home-dir={self.redo}", f"--innodb-undo-directory={self.undo}",
                "--innodb-undo-tablespaces=2", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                f"--log-bin={self.binlog}/binlog", "--server-id=1",
                # metadata_lock_info lets the writer see its lock held.
                "--plugin-load-add=metadata_lock_info"]

    def install(self):
        run("mariadb-install-db", *self.options(), "--auth-root-authentication-method=normal", "--skip-test-db",
            cwd="/", timeout=120)

    def start(self, *extra):
        self.proc = subprocess.Popen(["mariadbd", *self.options(), f"--socket={self.socket}", "--skip-networking",
                                      f"--pid-file={self.run / 'mysqld.pid'}", f"--log-error={self.log}", *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"mariadbd on {self.datadir} exited:\n{self.log_text()}"
            if "ready for connections" in self.log_text():
                return
            time.sleep(0.1)
        raise AssertionError(f"mariadbd on {self.datadir} did not start:\n{self.log_text()}")

    def stop(self):
        if self.proc:
            terminate(self.proc, timeout=60)
            self.proc = None

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, *args, stdin=None, check=True):
        p = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", *args],
                           input=stdin, capture_output=True, text=True, cwd="/", timeout=120)
        if check:
            assert p.returncode == 0, f"mariadb {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
        return p

    def sql(self, query):
        return self.client("-e", query).stdout

    def load(self):
        return subprocess.Popen(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "bank", "-e",
                                 "CALL load_transfers(100000000)"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/")


class Rig:
    def __init__(self, workdir, data_vol, log_vol):
        self.workdir, self.data_vol, self.log_vol = workdir, data_vol, log_vol
        data, redo, undo, binlog = (data_vol.mnt / "data", log_vol.mnt / "redo", log_vol.mnt / "undo",
                                    log_vol.mnt / "binlog")
        for p in (data, redo, undo, binlog):
            p.mkdir()
            run("chown", "mysql:mysql", p)
        self.server = Server(workdir, "live", data, redo, undo, binlog)
        self.servers = [self.server]
        self.procs = []

    def stop_all(self):
        for p in self.procs:
            terminate(p)
        for s in reversed(self.servers):
            s.stop()


@pytest.fixture
def rig(images, workdir):
    prerequisites()
    d, _ = workdir
    data_vol, log_vol = images(2, size="256M")
    r = Rig(d, data_vol, log_vol)
    try:
        yield r
    finally:
        r.stop_all()


def restore(rig, vssd, set_id, i):
    """Copy the server's files out of the set into a scratch directory on /,
    as a restore would, and return a Server on the copy, not started."""
    live = rig.server
    scratch = rig.workdir / f"copy{i}"
    scratch.mkdir()
    at = rig.workdir / f"copy{i}-set"
    vssd.vssadmin("expose", f"--set={set_id}", f"--at={at}")
    try:
        for src, dst in ((live.datadir, "data"), (live.redo, "redo"), (live.undo, "undo"),
                         (live.binlog, "binlog")):
            run("cp", "-a", f"{at}{src}", scratch / dst)
    finally:
        vssd.vssadmin("unexpose", f"--set={set_id}")
    copy = Server(rig.workdir, f"copy{i}", scratch / "data", scratch / "redo", scratch / "undo", scratch / "binlog")
    # The binary log's index names its files by their live paths: a copy
    # must read, and write, its own.
    index = copy.binlog / "binlog.index"
    index.write_text(index.read_text().replace(str(live.binlog), str(copy.binlog)))
    run("chown", "-R", "mysql:mysql", scratch)
    rig.servers.append(copy)
    return copy


def check_copy(rig, vssd, set_id, i, control=False):
    """Start a second server on a copy of the set and check what it
    recovered. Returns the number of transfers in it; for a control (a set
    made without the writer), what CHECK TABLE found instead."""
    copy = restore(rig, vssd, set_id, i)
    try:
        # No automatic MyISAM repair: a table the set caught open or half
        # written must show in CHECK TABLE, not be mended on open.
        copy.start("--myisam-recover-options=OFF")
        log = copy.log_text()
        # A crash at the set's instant, recovered from.
        assert "InnoDB: Starting crash recovery from checkpoint" in log, log
        tables = copy.sql("SELECT CONCAT('`', table_schema, '`.`', table_name, '`') FROM information_schema.TABLES "
                          "WHERE table_type = 'BASE TABLE' AND table_schema IN ('bank', 'mysql')").split()
        assert "`bank`.`m_accounts`" in tables and "`bank`.`accounts`" in tables, tables
        bad = []
        for line in copy.sql(f"CHECK TABLE {', '.join(tables)} EXTENDED").splitlines():
            table, _, kind, text = line.split("\t", 3)
            if kind == "status" and text == "OK":
                continue
            if kind == "note" and "doesn't support check" in text:
                continue  # the CSV log tables
            bad.append(line)
        if control:
            return bad
        assert not bad, f"set {i}: CHECK TABLE found damage:\n" + "\n".join(bad) + "\n" + copy.log_text()
        innodb, myisam, n = map(int, copy.sql(
            "SELECT (SELECT SUM(bal) FROM bank.accounts), (SELECT SUM(bal) FROM bank.m_accounts), "
            "(SELECT COUNT(*) FROM bank.transfers)").split())
        assert (innodb, myisam) == (ACCOUNTS * START_BALANCE,) * 2, \
            f"set {i}: balances do not add up: InnoDB {innodb}, MyISAM {myisam} ({n} transfers)"
    finally:
        copy.stop()
        rig.servers.remove(copy)
        shutil.rmtree(copy.datadir.parent)
        shutil.rmtree(copy.run)
    return n


@pytest.mark.app_load
def test_sets_under_transfers_recover_to_sound_tables(rig, daemon_factory):
    start = time.monotonic()
    rig.server.install()
    rig.server.start()
    rig.server.client(stdin=SCHEMA)
    vssd = daemon_factory(config=NESTING)
    writer = vssd.spawn(MYSQL_WRITER, f"--socket={rig.server.socket}", "--user=root")

    w = writers_by_name(vssd)["MySQL"]
    assert (w["class_id"], w["state"], w["last_error"]) == (CLASS_ID, STABLE, None), w

    # Half a server is no backup of it: the writer's veto, and no set kept.
    p = create_shadow(vssd, rig.data_vol, check=False)
    assert p.returncode != 0, p.stdout
    assert "writer 'MySQL' failed" in p.stderr and "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" in p.stderr, p.stderr
    assert vssd.list_shadows() == []

    for _ in range(2):
        rig.procs.append(rig.server.load())
    time.sleep(1)
    seen = []
    for i in range(SETS):
        for load in rig.procs:
            assert load.poll() is None, f"the load stopped:\n{load.stderr.read()}"
        out = json.loads(create_shadow(vssd, rig.data_vol, rig.log_vol).stdout)
        assert {s["consistency"] for s in out} == {"application-consistent"}, out
        seen.append(check_copy(rig, vssd, out[0]["set_id"], i))
        vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    for load in rig.procs:
        assert load.poll() is None, f"the load stopped:\n{load.stderr.read()}"
    # The load ran throughout: every set is of a later instant.
    assert seen == sorted(seen) and (SETS < 2 or seen[0] < seen[-1]), seen
    assert vssd.list_shadows() == []

    err = stop_writer(writer, "vss-mysql-writer")
    assert f"subscribed for {rig.server.datadir}" in err, err
    assert err.count("holding BACKUP STAGE BLOCK_COMMIT (information_schema.METADATA_LOCK_INFO shows it)") \
        == SETS, err
    assert err.count("released BACKUP STAGE BLOCK_COMMIT") == SETS, err
    # Nothing left held: the load's own statements hold backup locks of
    # their own, but no session holds a backup's.
    assert rig.server.sql(HELD_BACKUP_LOCKS).strip() == "0"

    # Control: what the lock prevents. Without the writer the set is only
    # crash-consistent, and InnoDB recovers from that, but the MyISAM table
    # the load keeps writing is caught open: its header still counts the
    # live server as a user, which only a repair clears.
    out = json.loads(create_shadow(vssd, rig.data_vol, rig.log_vol).stdout)
    assert {s["consistency"] for s in out} == {"crash-consistent across the set"}, out
    bad = check_copy(rig, vssd, out[0]["set_id"], "-control", control=True)
    assert bad == ["bank.m_accounts\tcheck\twarning\t1 client is using or hasn't closed the table properly"], bad
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")

    # FLUSH TABLES WITH READ LOCK, as MySQL gets it, under the same load.
    writer = vssd.spawn(MYSQL_WRITER, f"--socket={rig.server.socket}", "--user=root", "--lock=ftwrl")
    out = json.loads(create_shadow(vssd, rig.data_vol, rig.log_vol).stdout)
    assert {s["consistency"] for s in out} == {"application-consistent"}, out
    seen.append(check_copy(rig, vssd, out[0]["set_id"], SETS))
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    err = stop_writer(writer, "vss-mysql-writer")
    assert "holding FLUSH TABLES WITH READ LOCK (information_schema.METADATA_LOCK_INFO shows it)" in err, err
    assert "released FLUSH TABLES WITH READ LOCK" in err, err
    assert rig.server.sql(HELD_BACKUP_LOCKS).strip() == "0"
    print(f"{SETS + 1} sets under transfers in {time.monotonic() - start:.1f} s; transfers: {seen}")


def test_unreachable_server_fails_the_writer_with_its_message(rig, daemon_factory):
    rig.server.install()
    vssd = daemon_factory(config=NESTING)
    writer = vssd.spawn(MYSQL_WRITER, f"--socket={rig.server.socket}", "--user=root")

    w = writers_by_name(vssd)["MySQL"]
    assert (w["state"], w["last_error"]) == (FAILED_AT_IDENTIFY, "VSS_E_WRITERERROR_RETRYABLE"), w
    # libmariadb's words, naming the socket.
    assert "Can't connect" in w["message"] and str(rig.server.socket) in w["message"], w
    # Where the server's files are, nobody can say: vssadmin keeps no set.
    p = create_shadow(vssd, rig.data_vol, rig.log_vol, check=False)
    assert p.returncode != 0 and "writer 'MySQL' failed: [6]" in p.stderr, p.stderr
    assert vssd.list_shadows() == []

    # The server comes up: the next set connects and takes part.
    rig.server.start()
    out = json.loads(create_shadow(vssd, rig.data_vol, rig.log_vol).stdout)
    assert {s["consistency"] for s in out} == {"application-consistent"}, out
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")

    # An account that may not lock (it has PROCESS, to list the
    # tablespaces, but not RELOAD): the server's refusal, as one that
    # retrying will not mend.
    rig.server.sql("CREATE USER 'reader'@'localhost'; GRANT SELECT, PROCESS ON *.* TO 'reader'@'localhost'")
    stop_writer(writer, "vss-mysql-writer")
    writer = vssd.spawn(MYSQL_WRITER, f"--socket={rig.server.socket}", "--user=reader")
    p = create_shadow(vssd, rig.data_vol, rig.log_vol, check=False)
    assert p.returncode != 0 and "writer 'MySQL' failed: [9]" in p.stderr, p.stderr
    assert "VSS_E_WRITERERROR_NONRETRYABLE" in p.stderr and "RELOAD" in p.stderr, p.stderr
    assert vssd.list_shadows() == []
    stop_writer(writer, "vss-mysql-writer")


def test_lock_is_held_in_the_freeze_and_ends_with_the_writer_or_vssd(rig, daemon_factory, workdir):
    """A system-level writer that stalls in its Freeze keeps the set inside
    the freeze window, where the MySQL writer (back-end, frozen before it)
    holds its lock: the server lists it and makes writers wait. The writer
    killed there, or vssd stopped there, and the lock is gone: the server
    ends a session with its client, and a writer that loses vssd aborts."""
    d, _ = workdir
    rig.server.install()
    rig.server.start()
    rig.server.client(stdin=SCHEMA)
    vssd = daemon_factory(config=NESTING)

    def held():
        return rig.server.sql(HELD_BACKUP_LOCKS).strip()

    for case in ("writer killed", "vssd stopped"):
        log = d / f"holder-{case.split()[0]}.log"
        writer = vssd.spawn(MYSQL_WRITER, f"--socket={rig.server.socket}", "--user=root")
        holder = vssd.writer("holder", "--level=system", "--hang=freeze:60000", f"--log={log}")
        p = vssd.background(VSSADMIN, "create", "shadow", f"--for={rig.data_vol.mnt}", f"--for={rig.log_vol.mnt}")
        wait_until(lambda: log.exists() and "holder freeze" in log.read_text(), timeout=60,
                   what="the holder's freeze")
        assert held() == "1", case
        # Held, not just listed: no MyISAM write and no InnoDB commit gets
        # through while the set is being cut.
        for table in ("m_accounts", "accounts"):
            q = rig.server.client("-e", f"SET SESSION lock_wait_timeout = 1; "
                                        f"UPDATE bank.{table} SET bal = bal + 0 WHERE id = 1", check=False)
            assert q.returncode != 0 and "Lock wait timeout exceeded" in q.stderr, (case, table, q.stderr)

        if case == "writer killed":
            writer.kill()
            writer.wait()
            wait_until(lambda: held() == "0", what="the server to drop the killed writer's lock")
            rig.server.sql("UPDATE bank.m_accounts SET bal = bal + 0 WHERE id = 1")
            terminate(holder)
            out, err = p.communicate(timeout=120)
            # Not called application-consistent: the writer is gone, and
            # vssadmin keeps no set.
            assert p.returncode != 0 and "writer 'MySQL' failed" in err, (out, err)
            assert vssd.list_shadows() == []
        else:
            vssd.stop()
            wait_until(lambda: held() == "0", what="the writer to release when vssd stopped")
            assert writer.wait(timeout=30) == 1
            err = writer.stderr.read()
            assert_no_sanitizer_report(err, "vss-mysql-writer")
            assert "abort of set" in err and "released BACKUP STAGE BLOCK_COMMIT" in err, err
            terminate(holder)
            p.communicate(timeout=120)
            assert p.returncode != 0


def test_tablespace_elsewhere_is_part_of_the_server(rig, daemon_factory, make_fs, host):
    """An InnoDB table made with DATA DIRECTORY on a third volume is a
    component of its own: a set of the other two is refused, naming it, and
    a set of all three takes part."""
    far = make_fs("ext4", "256M", "far", on=host)
    (far.mnt / "ts").mkdir()
    run("chown", "mysql:mysql", far.mnt / "ts")
    rig.server.install()
    rig.server.start()
    rig.server.sql(f"CREATE DATABASE far; CREATE TABLE far.t (id INT PRIMARY KEY) ENGINE=InnoDB "
                   f"DATA DIRECTORY='{far.mnt}/ts'; INSERT INTO far.t VALUES (1)")
    vssd = daemon_factory(config=NESTING)
    writer = vssd.spawn(MYSQL_WRITER, f"--socket={rig.server.socket}", "--user=root")

    p = create_shadow(vssd, rig.data_vol, rig.log_vol, check=False)
    assert p.returncode != 0 and "writer 'MySQL' failed" in p.stderr, p.stderr
    assert "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" in p.stderr and str(far.mnt / "ts" / "far") in p.stderr, p.stderr
    assert vssd.list_shadows() == []

    out = json.loads(create_shadow(vssd, rig.data_vol, rig.log_vol, far).stdout)
    assert {s["consistency"] for s in out} == {"application-consistent"}, out
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    stop_writer(writer, "vss-mysql-writer")
