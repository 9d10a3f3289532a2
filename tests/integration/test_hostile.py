# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile input at the D-Bus level: huge strings, invalid UTF-8, invalid
ids, sets too large, a volume twice, unknown contexts, wrong signatures,
objects of other connections and garbage configuration. Each gets a clear
VSS code, nothing changes on disk, and vssd keeps answering.

The methods come from vssd's introspection data, so a new method is
covered without a change here. (Paths, symlinks and freezes are tested in
their own modules.)
"""

import os
import random
import re
import subprocess

import dbus
import pytest

import busclient as bc
from busclient import INVALID_ARGS, MANAGER, NO_REPLY, UNKNOWN_OBJECT, VSS_ERROR, User
from conftest import VSSADMIN, VSSD, assert_no_sanitizer_report

ROOT = User("root")
VSS_IFACES = ("org.vss.Manager1", "org.vss.Backup1", "org.vss.BackupWriters1", "org.vss.BackupRestore1",
              "org.vss.Async1")

# How an object is brought to a state before a hostile call; each method
# is tried in every one, so that it gets past its state check somewhere.
STATES = {
    "new": [],
    "initialized": [("InitializeForBackup", "s", ("",))],
    "started": [("InitializeForBackup", "s", ("",)), ("StartSnapshotSet", "", ())],
    "gathered": [("InitializeForBackup", "s", ("",)), ("GatherWriterMetadata", "", ())],
}

HOSTILE_STRINGS = {
    "100 KB": "x" * 100_000,
    "100 KB of two-byte characters": "\u00e9" * 50_000,
    "100 KB path": "/" + "\u00e9" * 50_000,
    "not an id": "{not-an-id}",
    "id unterminated": "{12345678-1234-1234-1234-1234567890ab",
    "unknown id": "{12345678-1234-1234-1234-1234567890ab}",
    "control characters": "\t\n\x01\x7f",
    "dots": "../../..",
}


@pytest.fixture(scope="module")
def env():
    with bc.module_env() as e:
        e.fs = e.make_fs("btrfs")
        e.vols = [e.fs.mnt / f"v{i}" for i in range(66)]
        for v in e.vols:
            subprocess.run(["btrfs", "subvolume", "create", str(v)], check=True, capture_output=True)
        e.vssd = e.daemon()
        e.conn = bc.Conn(e.vssd.socket, ROOT)
        path = e.conn.backup(*STATES["initialized"])
        # Every object kind vssd exports, as introspected.
        e.objects = {"manager": MANAGER, "dbus": bc.DBUS_OBJECT, "backup": path,
                     "async": str(e.conn.call(path, "org.vss.BackupWriters1", "GatherWriterMetadata")[0])}
        e.methods = {kind: bc.introspect(e.conn, p) for kind, p in e.objects.items()}
        e.conn.call(path, "org.vss.Backup1", "AbortBackup")
        yield e
        e.conn.close()


@pytest.fixture
def conn(env):
    """A root connection; closing it releases whatever a failed test left."""
    c = bc.Conn(env.vssd.socket, ROOT)
    yield c
    c.close()


def disk_state(env):
    """What must not change: the catalog's rows and the snapshot store."""
    return env.vssd.list_shadows(), env.fs.store_entries()


def assert_answers(env):
    env.vssd.vssadmin("list", "providers")
    assert env.vssd.proc.poll() is None, env.vssd.log()


def vss_methods(env, kinds=("manager", "backup", "async")):
    for kind in kinds:
        for iface, methods in env.methods[kind].items():
            if iface in VSS_IFACES:
                for name, sig in methods.items():
                    yield kind, iface, name, sig


def fresh_object(conn, kind, state):
    """An object of kind ("backup", "async", "manager") in state; the path
    and the backup object to release afterwards."""
    if kind == "manager":
        return MANAGER, None
    if kind == "backup":
        b = conn.backup(*STATES[state])
        return b, b
    b = conn.backup(*STATES["initialized"])
    return str(conn.call(b, "org.vss.BackupWriters1", "GatherWriterMetadata")[0]), b


def release(conn, b):
    if b:
        conn.outcome(b, "org.vss.Backup1", "AbortBackup")
        conn.outcome(b, "org.vss.Backup1", "Release")


def test_hostile_strings_in_every_string_argument(env, conn):
    """Each string argument of each method, in each state, gets each hostile
    string: the answer is success or a VSS code, never silence."""
    before = disk_state(env)
    tried = 0
    wrongly = []
    for kind, iface, name, sig in vss_methods(env):
        types = bc.split_signature(sig)
        positions = [i for i, t in enumerate(types) if t in ("s", "as")]
        if not positions or name == "Release":
            continue
        for state in STATES if kind != "manager" else ["new"]:
            for label, s in HOSTILE_STRINGS.items():
                for pos in positions:
                    path, b = fresh_object(conn, kind, state)
                    args = bc.default_args(sig)
                    args[pos] = bc.default_value(types[pos], s)
                    err, msg = conn.outcome(path, iface, name, sig, args)
                    tried += 1
                    if err and not err.startswith(VSS_ERROR):
                        wrongly.append((name, state, label, pos, err, msg[:100]))
                    release(conn, b)
        assert_answers(env)
    print(f"{tried} hostile strings tried")
    assert wrongly == []
    assert tried > 100
    assert disk_state(env) == before
    assert_answers(env)


def test_invalid_utf8_is_refused_on_the_wire(env):
    """libdbus will not send invalid UTF-8; a hand-made message does. sd-bus
    refuses it when vssd reads the argument; vssd answers the next call on
    the same connection, and others."""
    before = disk_state(env)
    other = bc.Conn(env.vssd.socket, ROOT)
    b_other = other.backup(*STATES["initialized"])
    bad = b"\xff\xfe/\xc0\xaf"
    s = bc.raw_connect(env.vssd.socket)
    s.sendall(bc.raw_call(MANAGER.encode(), b"org.vss.Manager1", b"CreateBackupComponents", [], serial=1))
    b = re.search(rb"/org/vss/backup/\d+", bc.raw_reply(s, 1)).group(0)
    s.sendall(bc.raw_call(b, b"org.vss.Backup1", b"InitializeForBackup", [b""], serial=2))
    assert b"Error" not in bc.raw_reply(s, 2)
    s.sendall(bc.raw_call(b, b"org.vss.Backup1", b"StartSnapshotSet", [], serial=3))
    assert b"Error" not in bc.raw_reply(s, 3)
    serial = 10
    for path, iface, member, args in [
            (MANAGER.encode(), b"org.vss.Manager1", b"RegisterWriter",
             [b"{5d2bfdf2-4a8e-4b5e-9d0c-0c7e1d1a0b03}", bad, b"", 0, 0, 1, ("u", 1000)]),
            (b, b"org.vss.Backup1", b"AddToSnapshotSet", [bad, b""]),
            (b, b"org.vss.Backup1", b"AddToSnapshotSet", [str(env.vols[0]).encode(), bad]),
            (b, b"org.vss.Backup1", b"GetSnapshotProperties", [bad]),
            (b, b"org.vss.Backup1", b"QueryDiffAreas", [bad])]:
        serial += 1
        s.sendall(bc.raw_call(path, iface, member, args, serial=serial))
        reply = bc.raw_reply(s, serial)
        # Refused when read, before vssd's code sees it: not InvalidArgs
        # for the signature, which is right.
        assert b"Error" in reply and b"Invalid arguments" not in reply, (member, reply)
        # The connection and its object are still there.
        serial += 1
        s.sendall(bc.raw_call(b, b"org.freedesktop.DBus.Properties", b"Get", [b"org.vss.Backup1", b"State"],
                              serial=serial))
        reply = bc.raw_reply(s, serial)
        assert b"Error" not in reply and b"set-open" in reply, reply
        assert other.prop(b_other, "org.vss.Backup1", "State") == "initialized"
        assert_answers(env)
    s.close()
    release(other, b_other)
    other.close()
    # vssadmin given a name that is not UTF-8: a clear code, no crash.
    bad = os.fsencode(str(env.vols[0])) + b"\xff"
    p = subprocess.run([str(VSSADMIN), "create", "shadow", b"--for=" + bad], capture_output=True,
                       env=env.vssd.client_env())
    assert p.returncode == 1, p
    assert re.match(rb"vssadmin: [A-Z_]+ \(0x[0-9a-f]{8}\)", p.stderr), p.stderr
    assert disk_state(env) == before


def test_volume_path_not_utf8_is_refused(env, conn):
    """A volume reached through a link to a directory whose name is not
    UTF-8 would put a name D-Bus cannot carry into the catalog, and every
    later Query would fail: it is refused when added."""
    before = disk_state(env)
    name = os.fsencode(str(env.fs.mnt)) + b"/\xff"
    subprocess.run([b"btrfs", b"subvolume", b"create", name], check=True, capture_output=True)
    link = env.dir / "link-to-not-utf8"
    os.symlink(name, link)
    try:
        b = conn.backup(*STATES["started"])
        err, msg = conn.outcome(b, "org.vss.Backup1", "AddToSnapshotSet", "ss", (str(link), ""))
        assert err == VSS_ERROR + "VSS_E_VOLUME_NOT_SUPPORTED", (err, msg)
        err, msg = conn.outcome(b, "org.vss.Backup1", "QueryDiffAreas", "s", (str(link),))
        assert err == VSS_ERROR + "VSS_E_VOLUME_NOT_SUPPORTED", (err, msg)
        release(conn, b)
    finally:
        os.unlink(link)
        subprocess.run([b"btrfs", b"subvolume", b"delete", name], check=True, capture_output=True)
    assert disk_state(env) == before
    assert_answers(env)


def test_error_messages_stay_utf8_when_cut(env, conn):
    """An argument echoed in an error message is cut to fit; cut inside a
    character, the message was not valid UTF-8 and vssd sent no answer at
    all (the caller waited for its timeout)."""
    b = conn.backup(*STATES["started"])
    for n in range(1, 4):
        volume = "/" + "x" * n + "\u00e9" * 2000
        err, msg = conn.outcome(b, "org.vss.Backup1", "AddToSnapshotSet", "ss", (volume, ""), timeout=5)
        assert err == VSS_ERROR + "VSS_E_OBJECT_NOT_FOUND", (n, err, msg)
    release(conn, b)


EXTREMES = {"i": [-2**31, -1, 2**31 - 1], "u": [2**32 - 1], "x": [-2**63, -2, 2**63 - 1], "b": [True]}


def test_extreme_integers_in_every_argument(env, conn):
    """Each integer argument of each method, in each state, at its extremes:
    success or a VSS code, nothing on disk."""
    before = disk_state(env)
    wrongly = []
    for kind, iface, name, sig in vss_methods(env):
        types = bc.split_signature(sig)
        if name == "Release":
            continue
        for state in STATES if kind != "manager" else ["new"]:
            for pos, t in enumerate(types):
                for v in EXTREMES.get(t, []):
                    path, b = fresh_object(conn, kind, state)
                    args = bc.default_args(sig)
                    args[pos] = type(args[pos])(v)
                    err, msg = conn.outcome(path, iface, name, sig, args)
                    if err and not err.startswith(VSS_ERROR):
                        wrongly.append((name, state, pos, v, err, msg[:100]))
                    release(conn, b)
        assert_answers(env)
    assert wrongly == []
    assert disk_state(env) == before
    assert_answers(env)


@pytest.mark.parametrize("usage,source", [(-1, 0), (5, 0), (2**31 - 1, 0), (0, -1), (0, 4), (0, -2**31)])
def test_register_writer_enums(env, usage, source):
    """A writer's usage and source types are VSS_USAGE_TYPE and
    VSS_SOURCE_TYPE values; requestors get them back in the metadata."""
    c = bc.Conn(env.vssd.socket, ROOT)
    try:
        err, msg = c.outcome(MANAGER, "org.vss.Manager1", "RegisterWriter", "sssiiiu",
                             ("{5d2bfdf2-4a8e-4b5e-9d0c-0c7e1d1a0b02}", "enum", "", usage, source, 1, 1000))
        assert err == VSS_ERROR + "E_INVALIDARG", (err, msg)
        err, msg = c.outcome(MANAGER, "org.vss.Manager1", "RegisterWriter", "sssiiiu",
                             ("{5d2bfdf2-4a8e-4b5e-9d0c-0c7e1d1a0b02}", "enum", "", 4, 3, 1, 1000))
        assert err is None, (err, msg)
    finally:
        c.close()


def test_unknown_contexts(env, conn):
    """SetContext takes a base context with a requestor's attribute bits
    (docs/STATE-MACHINE.md), or VSS_CTX_ALL; anything else is refused with
    a VSS code and leaves the object's context as it was."""
    bases = {0x00, 0x10, 0x19, 0x09, 0x1D, 0x0D}
    bits = 0x02 | 0x20 | 0x80 | 0x20000 | 0x40000 | 0x800000 | 0x2000000

    def valid(c):
        return c == -1 or ((c & ~bits) in bases and not c & 0x20)

    rng = random.Random(7)
    values = {-1, 0, 0x7fffffff, -0x80000000, 0x20, 0x09 | 0x20, 0x1D | 0x80, 0x0F, 0x11}
    values |= {1 << k for k in range(31)} | {-(1 << k) for k in range(31)}
    values |= {rng.randint(-2**31, 2**31 - 1) for _ in range(200)}
    refused = 0
    for c in sorted(values):
        b = conn.backup(*STATES["initialized"])
        was = conn.prop(b, "org.vss.Backup1", "Context")
        err, msg = conn.outcome(b, "org.vss.Backup1", "SetContext", "i", (c,))
        if valid(c):
            assert err is None, (hex(c), err, msg)
            assert conn.prop(b, "org.vss.Backup1", "Context") == c
        else:
            refused += 1
            assert err in (VSS_ERROR + "E_INVALIDARG", VSS_ERROR + "VSS_E_UNSUPPORTED_CONTEXT"), (hex(c), err)
            assert conn.prop(b, "org.vss.Backup1", "Context") == was
        release(conn, b)
    print(f"{len(values)} contexts tried, {refused} refused")
    assert refused > 100
    assert_answers(env)


def vssd_rss_kib(env):
    with open(f"/proc/{env.vssd.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_ten_thousand_volumes_in_one_set(env, conn):
    """MaxVolumesPerSet (64) members are taken; each volume more is refused
    with VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, vssd's memory stays
    bounded, and nothing is left once the set is given up."""
    before = disk_state(env)
    b = conn.backup(*STATES["started"])
    rss = vssd_rss_kib(env)
    results = {}
    for i in range(10_000):
        # Real volumes first, then real ones again and paths that do not
        # exist: past the cap every one is refused the same way.
        v = env.vols[i % len(env.vols)] if i < 5000 else env.fs.mnt / f"nothing-{i}"
        err, _ = conn.outcome(b, "org.vss.Backup1", "AddToSnapshotSet", "ss", (str(v), ""))
        results.setdefault(err, []).append(i)
    assert results[None] == list(range(64))
    assert list(results) == [None, VSS_ERROR + "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED"]
    # Under AddressSanitizer freed memory sits in quarantine (and
    # LeakSanitizer checks for leaks when vssd stops).
    with open(f"/proc/{env.vssd.proc.pid}/maps") as f:
        asan = "libasan" in f.read()
    assert asan or vssd_rss_kib(env) - rss < 16 * 1024
    release(conn, b)
    assert disk_state(env) == before
    assert_answers(env)


def test_a_volume_twice(env, conn):
    """The same volume, however spelled, is one member."""
    v = env.vols[0]
    b = conn.backup(*STATES["started"])
    conn.call(b, "org.vss.Backup1", "AddToSnapshotSet", "ss", (str(v), ""))
    for spelling in [str(v), f"{v}/", f"{v.parent}//{v.name}", f"{v.parent}/./{v.name}", f"{v}/../{v.name}",
                     f"{env.vols[1]}/../{v.name}", f"{v}/."]:
        err, msg = conn.outcome(b, "org.vss.Backup1", "AddToSnapshotSet", "ss", (spelling, ""))
        assert err == VSS_ERROR + "VSS_E_OBJECT_ALREADY_EXISTS", (spelling, err, msg)
    release(conn, b)


def mutations(sig):
    """Signatures that are not sig: none, one too many, one type changed."""
    types = bc.split_signature(sig)
    out = {sig + "s", sig + "i"}
    if types:
        out |= {"", "".join(types[:-1])}
        for i, t in enumerate(types):
            out.add("".join(types[:i] + ["i" if t != "i" else "s"] + types[i + 1:]))
    return sorted(out - {sig})


def test_wrong_signatures_for_every_method(env, conn):
    """Every method of vssd's interfaces, called with every wrong signature,
    gets InvalidArgs and changes nothing; the standard interfaces answer."""
    before = disk_state(env)
    tried = 0
    wrongly = []
    for kind in ("manager", "dbus", "backup", "async"):
        path, b = fresh_object(conn, kind, "initialized") if kind != "dbus" else (bc.DBUS_OBJECT, None)
        state = conn.prop(b, "org.vss.Backup1", "State") if b else None
        for iface, methods in env.methods[kind].items():
            for name, sig in methods.items():
                for wrong in mutations(sig):
                    args = bc.default_args(wrong)
                    err, msg = conn.outcome(path, iface, name, wrong, args)
                    tried += 1
                    # sd-bus's own interfaces read the arguments they need
                    # and ignore the rest; none of them reaches vssd's code.
                    if iface in bc.STANDARD_IFACES and (err is None or err.startswith("org.freedesktop.DBus.Error.")
                                                        and err != NO_REPLY):
                        continue
                    if err != INVALID_ARGS:
                        wrongly.append((kind, iface, name, sig, wrong, err, msg))
        if b:
            assert conn.prop(b, "org.vss.Backup1", "State") == state
        release(conn, b)
    print(f"{tried} wrong signatures tried")
    assert wrongly == []
    assert tried > 100
    assert disk_state(env) == before
    assert_answers(env)


def test_object_paths_nobody_made(env, conn):
    """Guessed and other connections' object paths are unknown objects."""
    owner = bc.Conn(env.vssd.socket, ROOT)
    b = owner.backup(*STATES["initialized"])
    op = str(owner.call(b, "org.vss.BackupWriters1", "GatherWriterMetadata")[0])
    n = int(b.rsplit("/", 1)[1])
    paths = [b, op] + [f"/org/vss/backup/{i}" for i in (0, n - 1, n + 1, n + 2, 2**64 - 1, 2**64)]
    paths += [f"/org/vss/async/{i}" for i in (0, n, n + 1)] + ["/org/vss/writer/0", "/org/vss/backup"]
    for path in paths:
        for iface, method in [("org.vss.Backup1", "AbortBackup"), ("org.vss.Async1", "Cancel"),
                              ("org.freedesktop.DBus.Properties", "GetAll")]:
            sig = "s" if method == "GetAll" else ""
            args = ["org.vss.Backup1"] if sig else []
            err, msg = conn.outcome(path, iface, method, sig, args)
            assert err == UNKNOWN_OBJECT, (path, method, err, msg)
    assert owner.prop(b, "org.vss.Backup1", "State") == "initialized"
    release(owner, b)
    owner.close()


# --- Configuration ---------------------------------------------------------

NUMERIC_KEYS = {
    "FlushTimeoutSec": (1, 3600), "HoldTimeoutSec": (1, 3600), "FlushTimeoutMSec": (1, 3600000),
    "HoldTimeoutMSec": (1, 3600000), "HoldSettleMSec": (0, 1000), "MaxVolumesPerSet": (1, 64),
    "MaxImageNesting": (1, 8), "MaxSnapshotsPerVolume": (1, 100000), "TransactionFreezeTimeoutSec": (1, 3600),
    "TransactionThawTimeoutSec": (1, 3600),
}


def garbage_configs():
    yield "binary", b"\x00\x01\xff\xfe\x80garbage\n", None
    yield "NUL inside a value", b"MaxVolumesPerSet = 5\x00junk\n", 1
    yield "NUL before a line", b"\x00MaxVolumesPerSet = 5\n", 1
    yield "huge line", b"A" * (1 << 20) + b"\n", 1
    yield "huge number", b"MaxVolumesPerSet = " + b"9" * 100_000 + b"\n", 1
    yield "unknown key", b"# comment\nFrobnicate = 1\n", 2
    yield "unknown section", b"[vssd]\nMaxVolumesPerSet = 4\n[elsewhere]\nMaxVolumesPerSet = 3\n", 3
    yield "no key", b"= 5\n", 1
    yield "provider without a name", b"[vssd]\n[Provider]\nType = command\n", 2
    yield "provider key unknown", b"[Provider]\nName = btrfs\nFrobnicate = 1\n", 3
    yield "provider type unknown", b"[Provider]\nName = x\nType = zfs\n", 3
    for key, (lo, hi) in NUMERIC_KEYS.items():
        bad = ["", "-1", "0x10", "1.5", "5 junk", "+5", str(hi + 1), "18446744073709551616"]
        if lo > 0:
            bad.append(str(lo - 1))
        for v in bad:
            yield f"{key}={v!r}", f"[vssd]\n{key} = {v}\n".encode(), 2


@pytest.mark.parametrize("what,text,line", list(garbage_configs()), ids=lambda x: x if isinstance(x, str) else "")
def test_garbage_configuration(env, what, text, line):
    """A vssd started on a garbage configuration, with the socket and state
    of a running vssd, refuses to start, naming the file and line, and
    touches nothing: the running vssd keeps answering, its catalog as it was."""
    before = disk_state(env)
    state_files = sorted(os.listdir(env.vssd.state))
    conf = env.dir / "garbage.conf"
    conf.write_bytes(text)
    p = subprocess.run([str(VSSD), "--socket", str(env.vssd.socket), "--state-dir", str(env.vssd.state),
                        "--config", str(conf)], capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert_no_sanitizer_report(err, "vssd")
    assert p.returncode == 1, (what, p.returncode, err)
    assert f"{conf}:{line}:" in err if line else str(conf) in err, (what, err)
    assert disk_state(env) == before
    assert sorted(os.listdir(env.vssd.state)) == state_files
    assert_answers(env)


@pytest.mark.parametrize("what", ["directory", "device"])
def test_configuration_not_a_file(env, what):
    """A directory read as a file gave no line and vssd started on the
    defaults; /dev/zero gave one endless line. Neither is a configuration."""
    conf = env.dir / "conf-dir" if what == "directory" else "/dev/zero"
    if what == "directory":
        os.makedirs(conf, exist_ok=True)
    p = subprocess.run([str(VSSD), "--socket", str(env.vssd.socket), "--state-dir", str(env.vssd.state),
                        "--config", str(conf)], capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, err
    assert f"{conf}: not a regular file" in err, err
    assert_answers(env)


def test_configuration_dev_null(env):
    """/dev/null is no configuration at all: every default."""
    d = env.daemon(name="devnull", start=False)
    d.config = "/dev/null"
    d.start()
    assert env.vssd.vssadmin("--socket", str(d.socket), "list", "providers").returncode == 0
    d.stop()


def test_duplicate_sections_and_keys(env):
    """[vssd] may come twice and a key may be set again: the last wins."""
    d = env.daemon("[vssd]\nMaxVolumesPerSet = 5\n[vssd]\nMaxVolumesPerSet = 2\nMaxVolumesPerSet = 3\n",
                   name="dup")
    conn = bc.Conn(d.socket, ROOT)
    b = conn.backup(*STATES["started"])
    got = [conn.outcome(b, "org.vss.Backup1", "AddToSnapshotSet", "ss", (str(v), ""))[0] for v in env.vols[:4]]
    assert got == [None] * 3 + [VSS_ERROR + "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED"]
    release(conn, b)
    conn.close()
    d.stop()


def test_dbus_connection_survives(env):
    """After all of the above, the module's first connection still works."""
    assert env.conn.prop(MANAGER, "org.vss.Manager1", "Version")
    assert isinstance(env.conn.call(MANAGER, "org.vss.Manager1", "CreateBackupComponents")[0], dbus.ObjectPath)
