#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write the seed inputs of tests/fuzz/corpus/ in each target's input format
(README.md): well-formed examples of what each decoder reads, which the
fuzzers then mutate. Run it again after changing a format:

    tests/fuzz/make-corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ID1 = "{01122334-4556-6778-899a-abbccddeef00}"
ID2 = "{a5a5a5a5-0000-4000-8000-000000000002}"
ID3 = "9a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"


def z(s):
    return s.encode() + b"\0"


def type_len(sig):
    """Length of the complete type at the start of sig."""
    c = sig[0]
    if c == "a":
        return 1 + type_len(sig[1:])
    if c in "({":
        close = ")" if c == "(" else "}"
        i = 1
        while sig[i] != close:
            i += type_len(sig[i:])
        return i + 1
    return 1


def split(sig):
    out = []
    while sig:
        n = type_len(sig)
        out.append(sig[:n])
        sig = sig[n:]
    return out


def enc(sig, v):
    """A value as fuzz-bus's builder reads it."""
    c = sig[0]
    if c in "sog":
        return z(v)
    if c in "yb":
        return bytes([int(v)])
    if c in "nq":
        return struct.pack("<h" if c == "n" else "<H", v)
    if c in "iu":
        return struct.pack("<i" if c == "i" else "<I", v)
    if c in "xt":
        return struct.pack("<q" if c == "x" else "<Q", v)
    if c == "d":
        return struct.pack("<d", v)
    if c == "v":
        vsig, val = v
        return z(vsig) + enc(vsig, val)
    if c == "a":
        return bytes([len(v)]) + b"".join(enc(sig[1:], e) for e in v)
    if c in "({":
        return b"".join(enc(t, e) for t, e in zip(split(sig[1:-1]), v))
    raise ValueError(sig)


def bus(error, sig, *values):
    return z(error) + z(sig) + b"".join(enc(t, v) for t, v in zip(split(sig), values))


SNAPSHOT = [
    ("Id", ("s", ID1)), ("SetId", ("s", ID2)), ("SnapshotsCount", ("i", 2)),
    ("DeviceObject", ("s", "/srv/a/.vss/" + ID1)), ("OriginalVolume", ("s", "/srv/a")),
    ("OriginatingMachine", ("s", "host")), ("ServiceMachine", ("s", "host")),
    ("ExposedName", ("s", "/mnt/x")), ("ExposedPath", ("s", "/mnt/x")), ("ProviderId", ("s", ID3)),
    ("Attributes", ("i", 0x1d)), ("CreationTimestamp", ("x", 1764590000000000)),
    ("Status", ("i", 12)), ("HoldWindowUSec", ("t", 25000)), ("Consistency", ("s", "crash-consistent")),
]
PROVIDER = [
    ("Id", ("s", ID3)), ("Name", ("s", "btrfs")), ("Type", ("i", 3)), ("Version", ("s", "1.0")),
    ("VersionId", ("s", ID1)), ("ClassId", ("s", ID2)),
]
FILES = [(1, "/var/lib/db", "*", True), (2, "/var/lib/db/wal", "*.wal", False)]
COMPONENTS = [(1, "pg", "main", "Main cluster", True, FILES), (2, "", "logs", "", False, [])]
METADATA = (ID1, ID2, "pg", "instance", 1, 2, 3, COMPONENTS, FILES[:1])
STATUS = (ID1, ID2, "pg", 1, 0, "")
MD_SIG = "(ssssiiia(isssba(issb))a(issb))"

seeds = {
    "fuzz-bus": {
        "snapshot": bus("org.vss.Error.VSS_E_BAD_STATE", "a{sv}", SNAPSHOT),
        "snapshot-bad-types": bus("org.vss.Error.E_INVALIDARG", "a{sv}",
                                  [("Id", ("i", 1)), ("Status", ("s", "x")), ("Unknown", ("a{sv}", SNAPSHOT[:2]))]),
        "provider": bus("org.freedesktop.DBus.Error.AccessDenied", "a{sv}", PROVIDER),
        "query-snapshots": bus("org.freedesktop.DBus.Error.NoMemory", "aa{sv}", [SNAPSHOT, SNAPSHOT[:4]]),
        "snapshot-page": bus("", "ayayayaiaiaiaxatayasasasasasasass", list(range(32)), list(range(32, 64)),
                             list(range(64, 96)), [2, 2], [0x1d, 0x1d], [12, 12], [1764590000000000, 1],
                             [25000, 0], [0x7f, 0x03], ["/srv/a/.vss/" + ID1, "/srv/b/.vss/" + ID2],
                             ["/srv/a", "/srv/b"], ["host", ""], ["host", ""], ["/mnt/x", ""], ["/mnt/x", ""],
                             ["crash-consistent", ""], ""),
        "query-providers": bus("org.freedesktop.DBus.Error.InvalidArgs", "aa{sv}", [PROVIDER]),
        "components": bus("org.vss.Error.VSS_E_WRITERERROR_RETRYABLE", "a(isssba(issb))a(issb)", COMPONENTS, FILES),
        "metadata": bus("org.vss.Error.NOT_A_CODE", MD_SIG, METADATA),
        "metadata-array": bus("x", "a" + MD_SIG, [METADATA, METADATA]),
        "status": bus("org.vss.Error.S_OK", "(sssiis)", STATUS),
        "status-array": bus("", "a(sssiis)", [STATUS, (ID2, ID1, "hook", 7, -2147212521, "failed")]),
    },
    "fuzz-config": {
        "defaults": open(os.path.join(HERE, "../../data/vssd.conf"), "rb").read(),
        "msec": b"[vssd]\nFlushTimeoutMSec = 1\nHoldTimeoutMSec=3600000\nTransactionFreezeTimeoutMSec = 5\n"
                b"TransactionThawTimeoutMSec = 250\nHoldSettleMSec = 0\n; comment\n",
        "limits": b"MaxVolumesPerSet = 1\nMaxSnapshotsPerVolume = 100000\nMaxImageNesting = 8\nDpkgLock =\n"
                  b"BackupGroup = root\n",
        "bad-value": b"HoldTimeoutSec = 3601\n",
        "bad-line": b"[vssd]\nno equals sign\n",
    },
    "fuzz-id": {
        "braces": z(ID1) + z("VSS_E_BAD_STATE") + struct.pack("<I", 0x80042301),
        "bare": z(ID3) + z("S_OK") + struct.pack("<I", 0),
        "bad": z("{01122334-4556-6778-899a-abbccddeef0}") + z("vss_e_bad_state") + struct.pack("<I", 0x8004ffff),
    },
    "fuzz-vssadmin": {name: b"".join(z(a) for a in args) for name, args in {
        "create": ["create", "shadow", "--for=/srv/a", "--for=/srv/b", "--provider=btrfs",
                   "--context=nas_rollback", "--json"],
        "create-auto-release": ["--context", "client_accessible", "create", "shadow", "--for", "/"],
        "list-shadows": ["list", "shadows", "--set=" + ID1, "--json"],
        "list-other": ["--socket=/nonexistent", "list", "providers"],
        "delete-oldest": ["delete", "shadows", "--for=/srv/a", "--oldest", "--quiet"],
        "delete-set": ["delete", "shadows", "--set", ID2],
        "expose": ["expose", "--set=" + ID1, "--at=/mnt/x"],
        "unexpose": ["unexpose", "--shadow=" + ID3],
        "resize": ["resize", "shadowstorage", "--for=/", "--maxsize=10GiB"],
        "resize-percent": ["resize", "shadowstorage", "--for=/", "--maxsize=50%"],
        "help": ["-h"],
    }.items()},
}


def value(kind, v=None):
    """A column value as fuzz-catalog reads it: NULL, integer, real, text,
    blob, or the id numbered v."""
    if kind == "null":
        return b"\0"
    if kind == "int":
        return b"\1" + struct.pack("<q", v)
    if kind == "real":
        return b"\2" + struct.pack("<d", v)
    if kind == "text":
        return b"\3" + z(v)
    if kind == "blob":
        return b"\4" + bytes([len(v)]) + v
    return b"\5" + bytes([v])


def set_row(n, state="created"):
    return b"\0" + b"".join([
        value("id", n), value("int", 8), value("text", state), value("int", 2), value("int", 1000 + n),
        value("int", 2000 + n), value("int", 1), value("int", 2), value("int", 3), value("int", 4),
        value("text", "crash-consistent"), value("int", 0), value("int", 42)])


def snapshot_row(n, set_n, volume):
    return b"\1" + b"".join([
        value("id", n), value("id", set_n), value("text", volume), value("text", volume + "/.vss/x"),
        value("id", 200), value("text", "btrfs"), value("null"), value("int", 0x1d), value("int", 12),
        value("text", "host"), value("text", "host"), value("null"), value("null")])


def storage_row(volume, maximum):
    return b"\2" + value("text", volume) + value("int", maximum)


LOOSE, CREATING, F_SET, F_SNAP, F_VOL = 1, 2, 4, 8, 16
seeds["fuzz-catalog"] = {
    "two-sets": bytes([CREATING]) + set_row(1) + snapshot_row(10, 1, "/srv/a") + snapshot_row(11, 1, "/srv/b")
                + set_row(2, "creating") + snapshot_row(12, 2, "/srv/a") + storage_row("/srv/a", 1 << 30),
    "filters": bytes([F_SET | F_VOL]) + z("{00000000-0000-0000-0000-000000000001}") + z("/srv/a")
               + set_row(1) + snapshot_row(10, 1, "/srv/a"),
    "loose": bytes([LOOSE | F_SNAP]) + z("{00000000-0000-0000-0000-00000000000a}") + set_row(1)
             + snapshot_row(10, 1, "/srv/a") + b"\1" + value("blob", b"\xff\0x") + value("real", 1.5)
             + value("int", -1) * 11,
    "newer": bytes([32]),
}

# The Backup Components Document (docs/RESTORE.md): a whole one, and some
# that are refused in their different ways.
BCD_FILE = {"kind": "files", "path": "/srv/db", "filespec": "*", "recursive": True}
BCD = {
    "format": "vss-backup-components", "version": 1,
    "backup": {"state": "complete", "type": "full", "select_components": True, "bootable_system_state": False,
               "partial_file_support": False, "context": 0},
    "snapshot_set": {"id": ID1, "snapshots": [{"id": ID2, "volume": "/srv", "provider_id": ID1,
                                                "device_object": "/srv/.vss/x", "creation_timestamp": 1764633600000000}]},
    "writers": [{"instance_id": ID2, "class_id": ID1, "name": "PostgreSQL", "instance_name": "/srv/db",
                 "usage": "user_data", "source": "transacted_db", "level": "back_end",
                 "components": [{"type": "filegroup", "logical_path": None, "name": "cluster", "caption": "data",
                                 "selectable": False, "files": [BCD_FILE]},
                                {"type": "database", "logical_path": "tablespaces", "name": "ts", "caption": None,
                                 "selectable": True, "files": [dict(BCD_FILE, kind="database_log", recursive=False)]}],
                 "excluded": [dict(BCD_FILE, filespec="postmaster.pid", recursive=False)]}],
    "components": [{"writer_class_id": ID1, "writer_instance_id": ID2, "type": "filegroup", "logical_path": None,
                    "name": "cluster", "backup_succeeded": True, "backup_options": None, "selected_for_restore": True,
                    "restore_options": "fast", "new_targets": [{"path": "/srv/db", "filespec": "*", "recursive": True,
                                                                "alternate_path": "/restore/db"}]},
                   {"writer_class_id": ID1, "writer_instance_id": ID2, "type": "database",
                    "logical_path": "tablespaces", "name": "ts", "backup_succeeded": None, "backup_options": None,
                    "selected_for_restore": False, "restore_options": None, "new_targets": []}],
}
bcd_text = json.dumps(BCD, indent=2).encode()
seeds["fuzz-bcd"] = {
    "whole": bcd_text,
    "empty-backup": json.dumps(dict(BCD, writers=[], components=[],
                                    snapshot_set={"id": ID1, "snapshots": []})).encode(),
    "truncated": bcd_text[: len(bcd_text) // 2],
    "version-2": json.dumps(dict(BCD, version=2)).encode(),
    "deep": b"[" * 20 + b"]" * 20,
    "escapes": json.dumps(dict(BCD, backup=dict(BCD["backup"], state="\u00e9\ud83d\ude00"))).encode(),
}

for target, files in seeds.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
