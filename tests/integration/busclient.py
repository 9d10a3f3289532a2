# SPDX-License-Identifier: LGPL-2.1-or-later
"""A D-Bus client for the tests that drive vssd method by method: python3-dbus
connections made as any user, vssd's objects and methods read from its
introspection data, and arguments of any signature.

A connection takes the credentials of the process when it connects
(SO_PEERCRED, SO_PEERGROUPS): connect() switches this process's ids for the
moment of connecting only, so one test process can hold connections of
root, of a backup operator and of an ordinary user side by side.
"""

import contextlib
import os
import socket
import struct
import xml.etree.ElementTree as ET

import dbus

BUS_NAME = "org.vss"
MANAGER = "/org/vss/Manager"
DBUS_OBJECT = "/org/freedesktop/DBus"
STANDARD_IFACES = ("org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Introspectable",
                   "org.freedesktop.DBus.Properties")

UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
VSS_ERROR = "org.vss.Error."


class User:
    """Credentials a connection is made with; None ids: this process's."""

    def __init__(self, name, uid=None, gid=None, groups=()):
        self.name, self.uid, self.gid, self.groups = name, uid, gid, list(groups)

    def setpriv(self):
        """The same user for Daemon.vssadmin(user=...) and friends."""
        if self.uid is None:
            return None
        groups = ["--groups=" + ",".join(map(str, self.groups))] if self.groups else ["--clear-groups"]
        return [f"--reuid={self.uid}", f"--regid={self.gid}", *groups]

    @contextlib.contextmanager
    def credentials(self):
        if self.uid is None:
            yield
            return
        saved = os.getgroups()
        os.setgroups(self.groups)
        os.setresgid(self.gid, self.gid, 0)
        os.setresuid(self.uid, self.uid, 0)
        try:
            yield
        finally:
            os.setresuid(0, 0, 0)
            os.setresgid(0, 0, 0)
            os.setgroups(saved)

    def __repr__(self):
        return self.name


class Conn:
    """One peer-to-peer connection to vssd."""

    def __init__(self, sock, user):
        self.user = user
        with user.credentials():
            self.c = dbus.connection.Connection(f"unix:path={sock}")
        # vssd may leave the first call after BEGIN unread in its buffer
        # (issue 7, 1.8): until it is fixed, a second call wakes it.
        for _ in range(50):
            try:
                self.c.call_blocking(BUS_NAME, DBUS_OBJECT, "org.freedesktop.DBus.Peer", "Ping", "", (),
                                     timeout=0.1)
                break
            except dbus.DBusException:
                pass
        else:
            raise AssertionError("vssd does not answer Ping")

    def call(self, path, iface, method, sig="", args=(), timeout=10):
        """The reply's values as a tuple, or raise dbus.DBusException."""
        r = self.c.call_blocking(BUS_NAME, path, iface, method, sig, tuple(args), timeout=timeout)
        return r if isinstance(r, tuple) else (r,) if r is not None else ()

    def outcome(self, path, iface, method, sig="", args=(), timeout=10):
        """(error name or None, first value or the error's message)."""
        try:
            r = self.call(path, iface, method, sig, args, timeout)
            return None, r[0] if r else None
        except dbus.DBusException as e:
            return e.get_dbus_name(), e.get_dbus_message()

    def backup(self, *steps):
        """A new backup object, with these (method, sig, args) called on it."""
        path = str(self.call(MANAGER, "org.vss.Manager1", "CreateBackupComponents")[0])
        for method, sig, args in steps:
            iface = "org.vss.BackupWriters1" if "Writer" in method else "org.vss.Backup1"
            self.call(path, iface, method, sig, args)
        return path

    def prop(self, path, iface, name):
        return self.call(path, "org.freedesktop.DBus.Properties", "Get", "ss", (iface, name))[0]

    def close(self):
        self.c.close()


def introspect(conn, path):
    """{interface: {method: in signature}} of the object at path."""
    xml = conn.call(path, "org.freedesktop.DBus.Introspectable", "Introspect")[0]
    out = {}
    for iface in ET.fromstring(str(xml)).findall("interface"):
        methods = out.setdefault(iface.get("name"), {})
        for m in iface.findall("method"):
            methods[m.get("name")] = "".join(a.get("type") for a in m.findall("arg")
                                             if a.get("direction", "in") == "in")
    return out


def split_signature(sig):
    """The complete types of a signature: "sa{sv}(ii)" -> ["s", "a{sv}", "(ii)"]."""
    out, i = [], 0
    while i < len(sig):
        j = i
        while sig[j] == "a":
            j += 1
        if sig[j] in "({":
            depth, j = 0, j
            while True:
                depth += sig[j] in "({"
                depth -= sig[j] in ")}"
                j += 1
                if depth == 0:
                    break
        else:
            j += 1
        out.append(sig[i:j])
        i = j
    return out


def default_value(t, string=""):
    """A value of D-Bus type t: zeros, empty containers, string for strings."""
    if t in "s":
        return dbus.String(string)
    if t == "o":
        return dbus.ObjectPath("/")
    if t == "g":
        return dbus.Signature("")
    if t == "b":
        return dbus.Boolean(False)
    if t == "d":
        return dbus.Double(0)
    if t in "ynqiuxt":
        return {"y": dbus.Byte, "n": dbus.Int16, "q": dbus.UInt16, "i": dbus.Int32, "u": dbus.UInt32,
                "x": dbus.Int64, "t": dbus.UInt64}[t](0)
    if t == "v":
        return dbus.String(string, variant_level=1)
    if t.startswith("a{"):
        return dbus.Dictionary({}, signature=t[2:-1])
    if t.startswith("a"):
        elem = t[1:]
        return dbus.Array([default_value(elem, string)] if elem == "s" and string else [], signature=elem)
    if t.startswith("("):
        return dbus.Struct([default_value(x, string) for x in split_signature(t[1:-1])], signature=t[1:-1])
    raise ValueError(f"no default for {t}")


def default_args(sig, string=""):
    return [default_value(t, string) for t in split_signature(sig)]


# --- Raw messages, for what libdbus refuses to send (invalid UTF-8) -----

def _pad(buf, n):
    return buf + b"\0" * (-len(buf) % n)


def _string(buf, s, kind="s"):
    buf = _pad(buf, 4) if kind != "g" else buf
    if kind == "g":
        return buf + struct.pack("<B", len(s)) + s + b"\0"
    return buf + struct.pack("<I", len(s)) + s + b"\0"


def raw_call(path, iface, member, args, serial=1):
    """A method call marshalled by hand, so that nothing checks the strings'
    encoding: args are byte strings (type "s"), ints (type "i") and
    ("u", int)."""
    body, sig = b"", b""
    for a in args:
        if isinstance(a, bytes):
            body, sig = _string(body, a), sig + b"s"
        elif isinstance(a, tuple):
            body, sig = _pad(body, 4) + struct.pack("<I", a[1]), sig + b"u"
        else:
            body, sig = _pad(body, 4) + struct.pack("<i", a), sig + b"i"
    fields = b""
    for code, kind, value in ((1, b"o", path), (2, b"s", iface), (3, b"s", member), (6, b"s", b"org.vss"),
                              (8, b"g", sig)):
        if kind == b"g" and not args:
            continue
        fields = _pad(fields, 8)
        fields += struct.pack("<B", code) + _string(b"", kind, "g")
        fields = _string(fields, value, kind.decode())
    header = struct.pack("<cBBBII", b"l", 1, 0, 1, len(body), serial) + struct.pack("<I", len(fields)) + fields
    return _pad(header, 8) + body


def raw_reply(s, serial):
    """The raw bytes of the reply to serial (b"" if the connection closed),
    read loosely: enough to find an error name or an object path in it."""
    data = b""
    while True:
        while len(data) < 16:
            chunk = s.recv(65536)
            if not chunk:
                return b""
            data += chunk
        body_len, _, fields_len = struct.unpack("<III", data[4:16])
        total = 16 + fields_len + (-fields_len % 8) + body_len
        while len(data) < total:
            chunk = s.recv(65536)
            if not chunk:
                return b""
            data += chunk
        msg, data = data[:total], data[total:]
        # Header field 5 (REPLY_SERIAL) is a "u".
        i = msg.find(b"\x05\x01u\x00")
        if i >= 0 and struct.unpack("<I", msg[i + 4:i + 8])[0] == serial:
            return msg


def raw_connect(sock, uid=0):
    """A socket past the authentication, ready for raw_call() messages."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(sock))
    s.sendall(b"\0AUTH EXTERNAL " + str(uid).encode().hex().encode() + b"\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += s.recv(4096)
    assert reply.startswith(b"OK "), reply
    s.sendall(b"BEGIN\r\n")
    # As in Conn: until vssd reads a call that came with BEGIN, a second
    # call wakes it. The late replies are skipped by raw_reply().
    for k in range(50):
        s.sendall(raw_call(DBUS_OBJECT.encode(), b"org.freedesktop.DBus.Peer", b"Ping", [], serial=1000 + k))
        s.settimeout(0.1)
        try:
            if raw_reply(s, 1000 + k):
                break
        except TimeoutError:
            pass
    else:
        raise AssertionError("vssd does not answer Ping")
    s.settimeout(10)
    return s


# --- One daemon for a whole test module ----------------------------------

class Env:
    """A private vssd and the filesystems of one test module."""

    def __init__(self, workdir):
        self.dir = workdir
        self.made = []
        self.daemons = []

    def make_fs(self, fstype="btrfs", size="1G", name=None, on=None):
        from conftest import LoopFs
        fs = LoopFs(self.dir, fstype, size, name, on)
        self.made.append(fs)
        return fs

    def daemon(self, config="", start=True, name="vssd"):
        from conftest import Daemon
        sub = self.dir / name
        sub.mkdir(exist_ok=True)
        os.chmod(sub, 0o755)
        d = Daemon(sub, config)
        self.daemons.append(d)
        if start:
            d.start()
        return d


@contextlib.contextmanager
def module_env():
    """Everything made in it is undone afterwards, as conftest's workdir does."""
    import pathlib
    import shutil
    import tempfile
    from conftest import detach_loops_below, mounts_below, unmount

    d = pathlib.Path(tempfile.mkdtemp(prefix="vss-test-", dir="/tmp"))
    os.chmod(d, 0o755)
    env = Env(d)
    failure = None
    try:
        yield env
    finally:
        # A daemon that fails to stop cleanly fails the module, after
        # everything else is undone.
        for dm in env.daemons:
            try:
                dm.stop_children()
                if dm.proc:
                    dm.stop()
            except AssertionError as e:
                failure = failure or e
                if dm.proc:
                    dm.kill()
        for target in mounts_below(d):
            if not any(str(fs.mnt) == target for fs in env.made):
                unmount(target)
        for fs in reversed(env.made):
            fs.destroy()
        detach_loops_below(d)
        if not mounts_below(d):
            shutil.rmtree(d, ignore_errors=True)
    if failure:
        raise failure
