# SPDX-License-Identifier: LGPL-2.1-or-later
"""vssd and its peers: D-Bus clients other than sd-bus, another vssd on the
same socket, and the limits on what peers may hold (connections, buffered
bytes, the creation slot, the writers' freeze)."""

import grp
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import TEST_WRITER, VSSADMIN, VSSD, by_step, is_frozen, wait_until
from test_writers import full_set, locked_by_someone, statuses

PING = "org.freedesktop.DBus.Peer.Ping"
CALLS = 200


def test_dbus_send_calls_are_all_answered(vssd):
    """dbus-send sends BEGIN and its call in one write: vssd reads both at
    once and must still answer the call."""
    unanswered = 0
    for _ in range(CALLS):
        p = subprocess.run(["dbus-send", f"--peer=unix:path={vssd.socket}", "--print-reply", "--reply-timeout=2000",
                            "--dest=org.vss", "/org/vss/Manager", PING], capture_output=True, text=True, timeout=30)
        unanswered += p.returncode != 0
    assert unanswered == 0, f"{unanswered} of {CALLS} dbus-send calls got no answer"


def test_gdbus_calls_are_all_answered(vssd):
    unanswered = 0
    for _ in range(CALLS):
        p = subprocess.run(["gdbus", "call", "--address", f"unix:path={vssd.socket}", "--dest", "org.vss",
                            "--object-path", "/org/vss/Manager", "--timeout", "2", "--method", PING],
                           capture_output=True, text=True, timeout=30)
        unanswered += p.returncode != 0
    assert unanswered == 0, f"{unanswered} of {CALLS} gdbus calls got no answer"


PYTHON_DBUS = """
import sys, dbus
unanswered = 0
for _ in range(int(sys.argv[2])):
    c = dbus.connection.Connection("unix:path=" + sys.argv[1])
    try:
        c.call_blocking("org.vss", "/org/vss/Manager", "org.freedesktop.DBus.Properties", "Get", "ss",
                        ("org.vss.Manager1", "Version"), timeout=2)
    except dbus.DBusException as e:
        unanswered += 1
    c.close()
print(unanswered)
"""


def test_python_dbus_calls_are_all_answered(vssd):
    # Debian's python3-dbus is for Debian's python3.
    p = subprocess.run(["/usr/bin/python3", "-c", PYTHON_DBUS, str(vssd.socket), str(CALLS)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "0", f"{p.stdout.strip()} of {CALLS} python-dbus calls got no answer"


def answers(path):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def second_vssd(vssd, socket_path=None):
    state = vssd.dir / "state-2"
    return subprocess.run([VSSD, "--socket", socket_path or vssd.socket, "--state-dir", state,
                           "--config", vssd.config], capture_output=True, text=True, timeout=30)


def test_second_vssd_on_a_live_socket_is_refused(vssd):
    p = second_vssd(vssd)
    assert p.returncode != 0
    assert f"another vssd answers on {vssd.socket}" in p.stderr
    # The first keeps its socket and answers.
    assert os.path.exists(vssd.socket)
    vssd.vssadmin("list", "providers")


def test_dead_socket_is_replaced(daemon_factory):
    """A socket nobody listens on (its vssd was killed) is taken over."""
    vssd = daemon_factory(start=False)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(vssd.socket))
    vssd.start()
    vssd.vssadmin("list", "providers")


def test_vssd_removes_only_its_own_socket(daemon_factory, workdir):
    """The socket of a vssd that was moved away and replaced by another's
    is not removed when the first stops."""
    d, _ = workdir
    first = daemon_factory()
    moved = d / "first.sock"
    os.rename(first.socket, moved)
    second = subprocess.Popen([VSSD, "--socket", first.socket, "--state-dir", first.dir / "state-2",
                               "--config", first.config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: answers(first.socket), what="the second vssd to listen")
        first.stop()
        assert os.path.exists(first.socket), "the first vssd removed the second one's socket"
        first.vssadmin("list", "providers")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert second.returncode == 0, second.stderr.read()
    assert not os.path.exists(first.socket)


NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]
DAEMON_USER = ["--reuid=1", "--regid=1", "--clear-groups"]
BIN_USER = ["--reuid=2", "--regid=2", "--clear-groups"]

# Opens argv[1] connections to vssd (argv[2]) and authenticates each, so that
# vssd has accepted them; prints "ready" and holds them until stdin closes.
HOLDER = r"""
import os, socket, sys
conns = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[2])
    s.settimeout(10)
    try:
        s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        answer = s.recv(256)
    except OSError:
        answer = b""
    conns.append(s)
    print("ok" if answer.startswith(b"OK ") else "refused", flush=True)
print("ready", flush=True)
sys.stdin.read()
"""


class Holder:
    """A process of another user holding n connections to vssd."""

    def __init__(self, vssd, n, user):
        self.p = subprocess.Popen(["setpriv", *user, "/usr/bin/python3", "-c", HOLDER, str(n), str(vssd.socket)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.answers = []
        for line in self.p.stdout:
            if line.strip() == "ready":
                break
            self.answers.append(line.strip())

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def ping(vssd, user=None):
    """Whether vssd answers a Ping from this user."""
    cmd = ["dbus-send", f"--peer=unix:path={vssd.socket}", "--print-reply", "--reply-timeout=2000",
           "--dest=org.vss", "/org/vss/Manager", PING]
    p = subprocess.run(["setpriv", *user, *cmd] if user else cmd, capture_output=True, text=True, timeout=30)
    return p.returncode == 0


def test_connection_caps(daemon_factory):
    """MaxConnectionsPerUser and MaxConnections: connections over them are
    closed at once; root is served whatever others hold."""
    vssd = daemon_factory("MaxConnections = 5\nMaxConnectionsPerUser = 3\n")
    holders = []
    try:
        holders.append(Holder(vssd, 4, NOBODY))
        assert holders[0].answers == ["ok", "ok", "ok", "refused"]
        assert not ping(vssd, NOBODY)
        assert ping(vssd, DAEMON_USER)
        vssd.vssadmin("list", "providers")
        # Two more of another user reach MaxConnections: a third user is refused.
        holders.append(Holder(vssd, 2, DAEMON_USER))
        assert holders[1].answers == ["ok", "ok"]
        assert not ping(vssd, BIN_USER)
        vssd.vssadmin("list", "providers")
        vssd.wait_log("MaxConnectionsPerUser=3 reached")
        holders.pop(0).close()
        wait_until(lambda: ping(vssd, NOBODY), what="a connection for nobody once its others closed")
    finally:
        for h in holders:
            h.close()


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_out_of_descriptors_pauses_accepting(daemon_factory):
    """Out of descriptors, vssd stops accepting for a while instead of
    spinning on the readable listening socket, logs it once, and serves
    again when connections close."""
    vssd = daemon_factory("MaxConnections = 1000\nMaxConnectionsPerUser = 1000\n")
    pid = vssd.proc.pid
    subprocess.run(["prlimit", f"--pid={pid}", "--nofile=48:48"], check=True)
    socks = []
    try:
        for _ in range(120):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(vssd.socket))
            socks.append(s)
        vssd.wait_log("cannot accept connections")
        before, lines = cpu_ticks(pid), len(vssd.log().splitlines())
        time.sleep(2)
        used = cpu_ticks(pid) - before
        assert used < 100, f"vssd used {used} ticks of CPU in 2 s while out of descriptors"
        assert len(vssd.log().splitlines()) - lines < 20, "vssd flooded its log"
    finally:
        for s in socks:
            s.close()
    p = subprocess.run([VSSADMIN, "list", "providers"], env=vssd.client_env(), capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr


# Authenticates as its user, then sends the header of a message of argv[2]
# bytes and half of its body; says whether vssd dropped it on the way.
HALF_MESSAGE = r"""
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
assert s.recv(256).startswith(b"OK ")
s.sendall(b"BEGIN\r\n")
body = int(sys.argv[2])
s.settimeout(10)
try:
    s.sendall(b"l\x01\x00\x01" + struct.pack("<III", body, 1, 0))
    chunk = b"\0" * (1 << 20)
    for _ in range(body // 2 // len(chunk)):
        s.sendall(chunk)
    print("sent", flush=True)
except OSError:
    print("dropped", flush=True)
sys.stdin.read()
"""


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unprivileged_half_message_is_not_buffered(vssd):
    """A peer without privilege that sends half of a 100 MB message is
    dropped, and vssd does not hold its bytes."""
    base = rss_kb(vssd.proc.pid)
    peers = [subprocess.Popen(["setpriv", *NOBODY, "/usr/bin/python3", "-c", HALF_MESSAGE, str(vssd.socket),
                               str(100 << 20)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        outcomes = [p.stdout.readline().strip() for p in peers]
        grown = rss_kb(vssd.proc.pid) - base
        assert grown < 8 * 1024, f"vssd grew by {grown} KiB"
        assert outcomes == ["dropped"] * 3
    finally:
        for p in peers:
            p.stdin.close()
            p.wait(timeout=30)
    vssd.wait_log("more than the 65536 allowed; dropping its connection")
    assert ping(vssd, NOBODY)


def backup_user():
    return ["--reuid=65534", f"--regid={grp.getgrnam('backup').gr_gid}", "--clear-groups"]


def test_backup_group_half_message_is_not_buffered(vssd):
    """A member of the backup group is capped too (MaxBackupGroupMessageSize,
    4 MiB): half of a 100 MB message is not held; root is not relayed."""
    base = rss_kb(vssd.proc.pid)
    peers = [subprocess.Popen(["setpriv", *backup_user(), "/usr/bin/python3", "-c", HALF_MESSAGE, str(vssd.socket),
                               str(100 << 20)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        outcomes = [p.stdout.readline().strip() for p in peers]
        grown = rss_kb(vssd.proc.pid) - base
        assert grown < 8 * 1024, f"vssd grew by {grown} KiB"
        assert outcomes == ["dropped"] * 3
    finally:
        for p in peers:
            p.stdin.close()
            p.wait(timeout=30)
    vssd.wait_log(f"more than the {4 << 20} allowed; dropping its connection")
    vssd.vssadmin("list", "providers", user=backup_user())
    vssd.vssadmin("list", "providers")


# A writer's Identify answer of 1,500 components of 10 files each, with
# paths of some 190 bytes: 3.3 MB (about 32 bytes per file beside its path),
# far over the 64 KiB of an unprivileged peer, under the default 4 MiB.
COMPONENTS = 1500


def test_backup_group_writer_with_large_metadata(btrfs, daemon_factory):
    a = btrfs.subvolume("a")
    vssd = daemon_factory()
    vssd.spawn(TEST_WRITER, "--name=big", "--level=front", f"--files={a}", f"--components={COMPONENTS}",
               user=backup_user())
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do", "wstatus",
                         user=backup_user())
    assert by_step(res, "gather")[0].detail.endswith(f"big:{COMPONENTS + 1}"), vssd.log()
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED", res
    assert "more than the" not in vssd.log()


def test_backup_group_message_cap_is_configurable(btrfs, daemon_factory):
    """Under a lower MaxBackupGroupMessageSize the same writer is dropped
    when it answers Identify, and the round ends without it."""
    a = btrfs.subvolume("a")
    vssd = daemon_factory("MaxBackupGroupMessageSize = 1M\n")
    vssd.spawn(TEST_WRITER, "--name=big", "--level=front", f"--files={a}", f"--components={COMPONENTS}",
               user=backup_user())
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "release", user=backup_user())
    assert not by_step(res, "gather")[0].detail.endswith(f"big:{COMPONENTS + 1}"), res
    vssd.wait_log(f"more than the {1 << 20} allowed; dropping its connection")


def test_set_left_open_frees_the_slot(btrfs, daemon_factory):
    """A set started and never made fails after SnapshotSetTimeoutSec, and
    another requestor may start one."""
    vssd = daemon_factory("SnapshotSetTimeoutMSec = 500\n")
    a = btrfs.subvolume("a")
    idle, _ = vssd.spawn_requestor("create", "init", "start", f"add={a}", "hold")
    try:
        vssd.wait_log("not made (SnapshotSetTimeoutSec)")
        res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do")
        assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED", res
    finally:
        idle.kill()
        idle.wait()


def test_transaction_hold_ends_while_a_writer_hangs(btrfs, daemon_factory):
    """A writer that never answers Freeze (its own timeout is 90 s) keeps
    the set no longer than TransactionThawTimeoutSec: the package lock is let
    go and the set fails with VSS_E_TRANSACTION_THAW_TIMEOUT."""
    vssd = daemon_factory("TransactionThawTimeoutMSec = 500\n")
    a = btrfs.subvolume("a")
    writer = vssd.writer("w", "--level=front", "--timeout=90000", "--hang=freeze:60000")
    res = vssd.requestor(*full_set(a, "release"), timeout=30)
    assert by_step(res, "do")[0].detail == "VSS_E_TRANSACTION_THAW_TIMEOUT", res
    assert writer.poll() is None  # still hanging in Freeze
    assert not locked_by_someone(vssd.dpkg_lock)
    assert vssd.list_shadows() == []
    assert not is_frozen(a)


def test_writer_freeze_timeout_is_capped(btrfs, daemon_factory):
    vssd = daemon_factory("MaxWriterFreezeTimeoutMSec = 500\n")
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", "--timeout=90000", "--hang=freeze:60000")
    vssd.wait_log("cut to MaxWriterFreezeTimeoutSec")
    res = vssd.requestor(*full_set(a, "wstatus", "release"), timeout=30)
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED", res
    assert statuses(res)["w"][1] == "VSS_E_WRITERERROR_TIMEOUT"
    assert not locked_by_someone(vssd.dpkg_lock)


@pytest.mark.parametrize("line,refusal", [
    ("TransactionThawTimeoutSec = 3601", '"3601" is not a number from 1 to 3600'),
    ("TransactionFreezeTimeoutMSec = 3600001", '"3600001" is not a number from 1 to 3600000'),
    ("MaxWriterFreezeTimeoutSec = 3601", '"3601" is not a number from 1 to 3600'),
    ("SnapshotSetTimeoutSec = 86401", '"86401" is not a number from 1 to 86400'),
    ("MaxConnections = 0", '"0" is not a number from 1 to 65536'),
    ("MaxConnectionsPerUser = lots", '"lots" is not a number from 1 to 65536'),
    ("MaxObjectsPerConnection = 65537", '"65537" is not a number from 1 to 65536'),
])
def test_config_maxima_are_refused(daemon_factory, line, refusal):
    vssd = daemon_factory(line + "\n", start=False)
    p = subprocess.run([VSSD, "--socket", vssd.socket, "--state-dir", vssd.state, "--config", vssd.config],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert f"bad value for {line.split()[0]}: {refusal}" in p.stderr, p.stderr
    assert not os.path.exists(vssd.socket)


# One connection calling CreateBackupComponents argv[2] times; prints the
# outcome of each (libvss makes a connection per object, so it cannot).
MANY_OBJECTS = r"""
import sys, dbus
c = dbus.connection.Connection("unix:path=" + sys.argv[1])
for _ in range(int(sys.argv[2])):
    try:
        c.call_blocking("org.vss", "/org/vss/Manager", "org.vss.Manager1", "CreateBackupComponents", "", (),
                        timeout=10)
        print("ok")
    except dbus.DBusException as e:
        print(e.get_dbus_name(), e.get_dbus_message())
"""


def test_objects_per_connection_cap(daemon_factory):
    """A connection holds at most MaxObjectsPerConnection backup objects and
    operations; more get E_OUTOFMEMORY."""
    vssd = daemon_factory("MaxObjectsPerConnection = 3\n")
    p = subprocess.run(["/usr/bin/python3", "-c", MANY_OBJECTS, str(vssd.socket), "4"], capture_output=True,
                       text=True, timeout=60)
    lines = p.stdout.splitlines()
    assert lines[:3] == ["ok"] * 3, p.stdout + p.stderr
    assert "E_OUTOFMEMORY" in lines[3] and "MaxObjectsPerConnection" in lines[3], lines[3]
    # Other connections are not affected.
    vssd.vssadmin("list", "providers")
