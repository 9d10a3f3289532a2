# SPDX-License-Identifier: LGPL-2.1-or-later
"""The access control matrix of docs/DBUS.md ("Who may call what"), checked
call by call: every method of every interface vssd exports (from its
introspection data, so that a new one cannot be missed) and every vssadmin
command (from its --help), as root, as a member of the backup-operators
group and as an ordinary user."""

import grp
import json
import os
import pathlib
import re
import subprocess

import pytest

import busclient as bc
from busclient import MANAGER, UNKNOWN_OBJECT, User
from conftest import ROOT as REPO, TEST_WRITER, VSSADMIN, mounts_below

BACKUP_GID = grp.getgrnam("backup").gr_gid
USERS = [User("root"), User("backup group", 65533, 65533, [BACKUP_GID]), User("others", 65534, 65534)]
COLUMNS = {"root": 3, "backup group": 4, "others": 5}
KINDS = {"/org/freedesktop/DBus": "dbus", "/org/vss/Manager": "manager", "/org/vss/backup/N": "backup",
         "/org/vss/async/N": "async"}

WRITER_ARGS = ("{5d2bfdf2-4a8e-4b5e-9d0c-0c7e1d1a0b01}", "matrix", "", 3, 3, 3, 1000)


def doc_section():
    text = (REPO / "docs" / "DBUS.md").read_text()
    return text[text.index("## Who may call what"):]


def table_rows(text, first):
    """The rows of the markdown table whose header starts with first."""
    lines = text[text.index(f"| {first} |"):].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("`", "") for c in line.strip("|").split("|")])
    return rows


def bus_rules():
    """[(kinds, interfaces, method or None for every, {user: rule})]."""
    rules = []
    for row in table_rows(doc_section(), "object"):
        kinds = set(KINDS.values()) if row[0] == "every path" else {KINDS[o.strip()] for o in row[0].split(",")}
        ifaces = set()
        for i in row[1].split(","):
            i = i.strip()
            ifaces.add("org.freedesktop.DBus" + i if i.startswith(".") else i)
        method = None if row[2] == "every method" else row[2]
        rules.append((kinds, ifaces, method, {u: row[c] for u, c in COLUMNS.items()}))
    return rules


def rule_for(rules, kind, iface, method):
    exact = [r for r in rules if kind in r[0] and iface in r[1] and r[2] == method]
    every = [r for r in rules if kind in r[0] and iface in r[1] and r[2] is None]
    found = exact or every
    assert len(found) == 1, f"docs/DBUS.md has {len(found)} rules for {kind} {iface}.{method}"
    return found[0][3]


def classify(err):
    if err is None:
        return "allowed"
    assert err != bc.NO_REPLY, "vssd did not answer"
    if err in (bc.VSS_ERROR + "E_ACCESSDENIED", "org.freedesktop.DBus.Error.AccessDenied"):
        return "E_ACCESSDENIED"
    if err == UNKNOWN_OBJECT:
        return "not reachable"
    assert err not in ("org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.UnknownInterface")
    return "allowed"


@pytest.fixture(scope="module")
def env():
    with bc.module_env() as e:
        e.fs = e.make_fs("btrfs")
        e.vol = e.fs.subvolume("a")
        e.vssd = e.daemon()
        # The objects of a root connection: their introspection data is the
        # list of methods, and other connections try their paths.
        e.root = bc.Conn(e.vssd.socket, USERS[0])
        e.backup = e.root.backup(("InitializeForBackup", "s", ("",)))
        e.op = str(e.root.call(e.backup, "org.vss.BackupWriters1", "GatherWriterMetadata")[0])
        e.paths = {"dbus": bc.DBUS_OBJECT, "manager": MANAGER, "backup": e.backup, "async": e.op}
        e.methods = {k: bc.introspect(e.root, p) for k, p in e.paths.items()}
        yield e
        e.root.close()


def args_for(env, kind, iface, method, sig):
    """Arguments that get past the signature check and mean something."""
    if iface == "org.freedesktop.DBus.Properties":
        own = next(i for i in env.methods[kind] if i not in bc.STANDARD_IFACES)
        return [own] + [bc.default_value(t) for t in bc.split_signature(sig)[1:]]
    if method == "RegisterWriter":
        return list(WRITER_ARGS)
    return bc.default_args(sig)


def each_method(env, kind):
    """Every method of the object kind, Release last."""
    calls = [(i, m, s) for i, ms in env.methods[kind].items() for m, s in ms.items()]
    return sorted(calls, key=lambda c: c[1] == "Release")


def test_the_table_covers_every_method(env):
    rules = bus_rules()
    for kind, ifaces in env.methods.items():
        for iface, methods in ifaces.items():
            for method in methods:
                rule_for(rules, kind, iface, method)
    assert {u for r in rules for u in r[3].values()} <= {"allowed", "E_ACCESSDENIED", "not reachable"}


@pytest.mark.parametrize("user", USERS, ids=lambda u: u.name)
def test_dbus_matrix(env, user):
    """Each user calls every method as the table says; an object is reached
    only on the connection that made it, by nobody else."""
    rules = bus_rules()
    calls = 0
    conn = bc.Conn(env.vssd.socket, user)
    try:
        can_create = rule_for(rules, "manager", "org.vss.Manager1", "CreateBackupComponents")[user.name] == "allowed"
        own = {"dbus": bc.DBUS_OBJECT, "manager": MANAGER}
        if can_create:
            own["backup"] = conn.backup(("InitializeForBackup", "s", ("",)))
            own["async"] = str(conn.call(own["backup"], "org.vss.BackupWriters1", "GatherWriterMetadata")[0])
        for kind in ("dbus", "manager", "async", "backup"):
            for iface, method, sig in each_method(env, kind):
                want = rule_for(rules, kind, iface, method)[user.name]
                # A writer is registered on a connection of its own, which
                # goes at once: nobody answers its events here.
                c = bc.Conn(env.vssd.socket, user) if method == "RegisterWriter" else conn
                path = own.get(kind, env.paths[kind])
                err, msg = c.outcome(path, iface, method, sig, args_for(env, kind, iface, method, sig))
                if c is not conn:
                    c.close()
                calls += 1
                assert classify(err) == want, (user, kind, iface, method, err, msg)
                # Another connection's object is unknown, whoever asks
                # (Peer answers on every path).
                if kind in ("backup", "async") and iface != "org.freedesktop.DBus.Peer":
                    err, msg = conn.outcome(env.paths[kind], iface, method, sig,
                                            args_for(env, kind, iface, method, sig))
                    assert err == UNKNOWN_OBJECT, (user, kind, iface, method, err, msg)
    finally:
        conn.close()
    print(f"{user}: {calls} methods called")
    assert calls > 40
    # Nothing reached the root connection's objects.
    assert env.root.prop(env.backup, "org.vss.Backup1", "State") == "initialized"
    assert env.vssd.list_shadows() == []


@pytest.mark.parametrize("user", USERS, ids=lambda u: u.name)
def test_register_writer(env, user):
    """Who may register a writer: root and the backup group; the writer
    then takes part in every set's writer calls."""
    want = rule_for(bus_rules(), "manager", "org.vss.Manager1", "RegisterWriter")[user.name]
    p = subprocess.Popen([*(["setpriv", *user.setpriv()] if user.setpriv() else []), str(TEST_WRITER),
                          "--name=matrix-writer"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env.vssd.client_env())
    try:
        first = p.stdout.readline().strip()
        if want == "allowed":
            assert first == "ready", p.stderr.read()
            listed = json.loads(env.vssd.vssadmin("list", "writers", "--json").stdout)
            assert [w["name"] for w in listed] == ["matrix-writer"], listed
        else:
            assert p.wait(timeout=30) == 1
            assert "E_ACCESSDENIED" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()


def help_commands():
    out = subprocess.run([str(VSSADMIN), "--help"], capture_output=True, text=True, check=True).stdout
    section = out[out.index("Commands:"):out.index("Global options:")]
    return {" ".join(w for w in m.groups() if w) for m in re.finditer(r"^  ([a-z]+)(?: ([a-z]+))?\b", section, re.M)}


def vssadmin_rules():
    return {row[0]: {u: row[c - 2] for u, c in COLUMNS.items()} for row in table_rows(doc_section(), "command")}


def test_the_table_covers_every_command():
    assert set(vssadmin_rules()) == help_commands() == set(COMMANDS)


def owned_dir(path, user):
    """An empty directory at path, with the parents it needs, user's."""
    made = []
    p = path
    while not p.exists():
        made.append(p)
        p = p.parent
    for d in reversed(made):
        d.mkdir()
        if user.uid is not None:
            os.chown(d, user.uid, user.gid)
    return path


# Each command as it is run, in order, with what a snapshot of the user's
# own (or root's, for a user who cannot make one) gives.
COMMANDS = {
    "create shadow": lambda e, s, u: [["create", "shadow", f"--for={e.vol}", "--json"]],
    "list shadows": lambda e, s, u: [["list", "shadows"], ["list", "shadows", f"--set={s['set_id']}", "--json"]],
    "list providers": lambda e, s, u: [["list", "providers"]],
    "list writers": lambda e, s, u: [["list", "writers"]],
    "list shadowstorage": lambda e, s, u: [["list", "shadowstorage", f"--for={e.vol}"]],
    "resize shadowstorage": lambda e, s, u: [["resize", "shadowstorage", f"--for={e.vol}", f"--maxsize={m}"]
                                             for m in ("1G", "10%", "UNBOUNDED")],
    "expose": lambda e, s, u: [["expose", f"--shadow={s['id']}", f"--at={owned_dir(e.dir / u.name / 'one', u)}"],
                               ["expose", f"--set={s['set_id']}",
                                f"--at={owned_dir(e.dir / u.name / 'set', u)}"]],
    "unexpose": lambda e, s, u: [["unexpose", f"--shadow={s['id']}"], ["unexpose", f"--set={s['set_id']}"]],
    "delete shadows": lambda e, s, u: [["delete", "shadows", f"--shadow={s['id']}"]],
    "exec": lambda e, s, u: [["exec", f"--for={e.vol}", "--", "true"], ["exec", f"--set={s['set_id']}", "--", "true"]],
    # The volume is a subvolume directory, not a mount's root: root's revert
    # is refused for that (VSS_E_VOLUME_NOT_SUPPORTED), with nothing changed.
    "revert shadow": lambda e, s, u: [["revert", "shadow", f"--shadow={s['id']}"]],
}


@pytest.mark.parametrize("user", USERS, ids=lambda u: u.name)
def test_vssadmin_matrix(env, user):
    """Every command as each user: what the table says, and never a crash.
    A user who may create works on a snapshot of its own, one who may not
    tries root's."""
    rules = vssadmin_rules()
    root_snap = json.loads(env.vssd.vssadmin("create", "shadow", f"--for={env.vol}", "--json").stdout)[0]
    before = env.vssd.list_shadows()

    def run(command, args):
        want = rules[command][user.name]
        p = env.vssd.vssadmin(*args, check=False, user=user.setpriv())
        assert 0 <= p.returncode < 128, (user, args, p.returncode, p.stderr)
        if want.startswith("allowed") and command == "revert shadow":
            assert p.returncode == 1 and "VSS_E_VOLUME_NOT_SUPPORTED" in p.stderr, (user, args, p.stderr)
        elif want.startswith("allowed"):
            assert p.returncode == 0, (user, args, p.stderr)
        else:
            # exec's own failures are 125, to tell them from its command's.
            refused = 125 if command == "exec" else 1
            assert p.returncode == refused and f"vssadmin: {want.split(':')[0]} " in p.stderr, (user, args, p.stderr)
        return p

    p = run("create shadow", COMMANDS["create shadow"](env, None, user)[0])
    snap = json.loads(p.stdout)[0] if p.returncode == 0 else root_snap
    for command in ("list shadows", "list providers", "list writers", "list shadowstorage", "resize shadowstorage"):
        for args in COMMANDS[command](env, snap, user):
            run(command, args)
    for expose, unexpose in zip(COMMANDS["expose"](env, snap, user), COMMANDS["unexpose"](env, snap, user)):
        if expose[1].startswith("--set="):
            # The set mirrors its volumes' paths under the directory.
            owned_dir(pathlib.Path(expose[2].split("=", 1)[1]) / str(env.vol).lstrip("/"), user)
        run("expose", expose)
        run("unexpose", unexpose)
    for args in COMMANDS["exec"](env, snap, user):
        run("exec", args)
    for args in COMMANDS["revert shadow"](env, snap, user):
        run("revert shadow", args)
    for args in COMMANDS["delete shadows"](env, snap, user):
        run("delete shadows", args)
    if snap is root_snap:
        assert env.vssd.list_shadows() == before
    env.vssd.vssadmin("delete", "shadows", f"--shadow={root_snap['id']}")
    assert env.vssd.list_shadows() == []


HOSTILE_ARGS = {
    "long path": "/" + "x" * 100_000,
    "long path of two-byte characters": "/" + "\u00e9" * 50_000,
    "not an id": "{not-an-id}",
    "unknown id": "{12345678-1234-1234-1234-1234567890ab}",
    "empty": "",
    "relative": "relative/path",
    "huge number": "9" * 40,
    "negative": "-1",
}


def hostile_invocations(value):
    """Each command with value in each of its arguments."""
    yield ["create", "shadow", f"--for={value}"]
    yield ["create", "shadow", "--for=/", f"--provider={value}"]
    yield ["create", "shadow", "--for=/", f"--context={value}"]
    yield ["list", "shadows", f"--set={value}"]
    yield ["list", "shadows", f"--for={value}"]
    yield ["list", "providers", value]
    yield ["list", "writers", f"--for={value}"]
    yield ["list", "shadowstorage", f"--for={value}"]
    yield ["resize", "shadowstorage", f"--for={value}", "--maxsize=1G"]
    yield ["resize", "shadowstorage", "--for=/", f"--maxsize={value}"]
    yield ["delete", "shadows", f"--shadow={value}"]
    yield ["delete", "shadows", f"--for={value}", "--oldest"]
    yield ["expose", f"--shadow={value}"]
    yield ["expose", f"--set={value}", "--at=/nonexistent"]
    yield ["expose", "--shadow={12345678-1234-1234-1234-1234567890ab}", f"--at={value}"]
    yield ["unexpose", f"--set={value}"]
    yield ["exec", f"--for={value}", "--", "true"]
    yield ["exec", f"--set={value}", "--", "true"]
    yield ["exec", "--for=/", f"--at={value}", "--", "true"]
    yield ["exec", "--for=/", f"--autoretry={value}", "--", "true"]
    yield ["exec", "--for=/", "--", value]
    yield ["revert", "shadow", f"--shadow={value}"]
    yield [value, value]


@pytest.mark.parametrize("user", USERS, ids=lambda u: u.name)
def test_vssadmin_hostile_arguments(env, user):
    """Garbage in every argument of every command, for every user: a usage
    error or a named code, never a signal, nothing made or mounted."""
    commands = {" ".join(a[:2]) if a[0] in ("create", "list", "resize", "delete", "revert") else a[0]
                for a in hostile_invocations("x")}
    assert help_commands() <= commands
    tried = 0
    for label, value in HOSTILE_ARGS.items():
        for args in hostile_invocations(value):
            p = env.vssd.vssadmin(*args, check=False, user=user.setpriv())
            tried += 1
            assert 0 <= p.returncode < 128, (user, label, args[:2], p.returncode, p.stderr[:300])
            # (An option the command does not take is ignored: list writers
            # --for=... lists the writers.)
            assert p.returncode == 0 or re.search(r"^vssadmin: [A-Z_]+ \(0x[0-9a-f]{8}\)", p.stderr, re.M), \
                (user, label, args[:2], p.stderr[:300])
    print(f"{user}: {tried} hostile vssadmin invocations")
    assert env.vssd.list_shadows() == []
    assert mounts_below(env.dir / user.name) == []
