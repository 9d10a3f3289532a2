# SPDX-License-Identifier: LGPL-2.1-or-later
"""Listing the catalog: vssd narrows by set and volume itself, and answers in
pages (QuerySnapshots, docs/DBUS.md) that return every snapshot once, in the
catalog's order, also to a backup operator whose calls go through the relay;
reconciliation reads a catalog longer than its page size whole."""

import json
import subprocess

from conftest import run

from test_peers import backup_user

# The most QuerySnapshots returns at once (QUERY_PAGE_MAX in backup-object.c).
PAGE = 1000

PAGES = """
import json, sys, uuid, dbus
c = dbus.connection.Connection("unix:path=" + sys.argv[1])
def ids(column):
    raw = bytes(column)
    return ["{%s}" % uuid.UUID(bytes=raw[i:i + 16]) for i in range(0, len(raw), 16)]
def call(path, iface, method, sig="", args=()):
    return c.call_blocking("org.vss", path, iface, method, sig, args, timeout=60)
o = call("/org/vss/Manager", "org.vss.Manager1", "CreateBackupComponents")
call(o, "org.vss.Backup1", "InitializeForBackup", "s", ("",))
call(o, "org.vss.Backup1", "SetContext", "i", (-1,))
out = {"query": [str(s["Id"]) for s in call(o, "org.vss.Backup1", "Query", "sii", ("", 1, 3))]}
pages, after = [], ""
while True:
    page = call(o, "org.vss.Backup1", "QuerySnapshots", "sssu", ("", "", after, int(sys.argv[2])))
    after = page[0]
    # Every column has a row per snapshot (docs/DBUS.md): the fixed ones an
    # element each, the strings a NUL-ended string each.
    rows = len(page[9])
    assert all(len(col) == rows for col in page[4:10]), [len(col) for col in page[1:]]
    assert all(bytes(col).count(0) == rows and bytes(col)[-1:] in (b"", bytes(1)) for col in page[10:])
    assert len(page[1]) == len(page[2]) == len(page[3]) == 16 * rows
    pages.append(ids(page[1]))
    if not after:
        break
out["pages"] = pages
try:
    call(o, "org.vss.Backup1", "QuerySnapshots", "sssu", ("", "", "not a position", 0))
    out["bad"] = "accepted"
except dbus.DBusException as e:
    out["bad"] = e.get_dbus_name()
print(json.dumps(out))
"""


def create(vssd, *volumes):
    p = vssd.vssadmin("create", "shadow", "--context=nas_rollback", "--json", *[f"--for={v}" for v in volumes])
    return json.loads(p.stdout)


def ids(rows):
    return [r["id"] for r in rows]


def test_for_and_set_filter_exactly(vssd, btrfs):
    """--for names one volume, not those whose path starts like it; --set
    one set; both keep the catalog's order (oldest set first)."""
    a, ab, b = btrfs.subvolume("a"), btrfs.subvolume("ab"), btrfs.subvolume("b")
    s1 = create(vssd, a, b)
    s2 = create(vssd, ab)
    s3 = create(vssd, a, ab)
    every = vssd.list_shadows()
    assert ids(every) == ids(s1) + ids(s2) + ids(s3)
    for vol in (a, ab, b):
        want = [r["id"] for r in every if r["volume"] == str(vol)]
        assert ids(vssd.list_shadows(f"--for={vol}")) == want
    assert ids(vssd.list_shadows(f"--set={s2[0]['set_id']}")) == ids(s2)
    both = vssd.list_shadows(f"--set={s3[0]['set_id']}", f"--for={ab}")
    assert ids(both) == [r["id"] for r in s3 if r["volume"] == str(ab)]
    p = vssd.vssadmin("list", "shadows", f"--for={btrfs.subvolume('none')}")
    assert "No items found" in p.stdout


def test_pages_return_every_snapshot_once(vssd, btrfs):
    """Pages of any size, handed their positions back, list what Query
    lists, in its order, each snapshot once; a position QuerySnapshots did
    not return is E_INVALIDARG."""
    vols = [btrfs.subvolume(f"v{i}") for i in range(4)]
    for k in range(5):
        create(vssd, *vols[k % 2:k % 2 + 3])
    for limit in (1, 2, 7, 15, 0):
        p = subprocess.run(["/usr/bin/python3", "-c", PAGES, str(vssd.socket), str(limit)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        listed = [i for page in out["pages"] for i in page]
        assert len(out["query"]) == 15
        assert listed == out["query"], f"limit {limit}"
        if limit:
            assert all(len(page) <= limit for page in out["pages"])
        assert out["bad"] == "org.vss.Error.E_INVALIDARG"


def test_json_listing_is_the_canonical_document(vssd, btrfs):
    """`list shadows --json` writes, byte for byte, what Python's own JSON
    writer makes of the document it parses (two-space indents), for paths
    that need escaping, unset fields (null) and an exposed snapshot; and
    each row says what GetSnapshotProperties says."""
    odd = btrfs.subvolume('q"uote\\back\tslash \u00e9')
    plain = btrfs.subvolume("plain")
    made = create(vssd, odd, plain) + create(vssd, plain)
    vssd.vssadmin("expose", f"--shadow={made[1]['id']}")
    try:
        p = vssd.vssadmin("list", "shadows", "--json")
        rows = json.loads(p.stdout)
        assert p.stdout == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
        assert ids(rows) == ids(made)
        assert rows[0]["volume"] == str(odd)
        assert rows[0]["exposed_name"] is None and rows[1]["exposed_name"]
        for r in rows:
            one = json.loads(vssd.vssadmin("list", "shadows", f"--set={r['set_id']}", "--json").stdout)
            assert r in one
    finally:
        vssd.vssadmin("unexpose", f"--shadow={made[1]['id']}")


def long_catalog(vssd, btrfs):
    """More snapshots than a page: 17 sets of 64 volumes."""
    vols = [btrfs.subvolume(f"v{i:02d}") for i in range(64)]
    made = []
    for _ in range(PAGE // 64 + 1):
        made += ids(create(vssd, *vols))
    assert len(made) > PAGE
    return vols, made


def test_long_list_to_backup_operator(vssd, btrfs):
    """More snapshots than one page and far more than 64 KiB, listed by a
    backup operator (through the relay) and by root alike, each once."""
    vols, made = long_catalog(vssd, btrfs)
    as_root = vssd.list_shadows()
    p = vssd.vssadmin("list", "shadows", "--json", user=backup_user())
    as_operator = json.loads(p.stdout)
    assert len(p.stdout) > 64 * 1024
    assert ids(as_root) == made
    assert ids(as_operator) == made
    one = vssd.list_shadows(f"--for={vols[5]}")
    assert ids(one) == made[5::64]


def test_reconcile_reads_every_page(vssd, btrfs):
    """At start-up, a snapshot missing on disk past the first page is
    dropped, and a stranger in the store is the only one reported: the
    snapshots of every page count as known."""
    vols, made = long_catalog(vssd, btrfs)
    rows = vssd.list_shadows()
    gone = rows[PAGE + 3]
    vssd.stop()
    run("btrfs", "subvolume", "delete", gone["snapshot_path"])
    stray = btrfs.store() / "{11111111-2222-3333-4444-555555555555}"
    run("btrfs", "subvolume", "snapshot", "-r", vols[0], stray)
    try:
        vssd.start()
        log = vssd.log()
        assert f"snapshot {gone['id']} of {gone['volume']} is missing on disk" in log
        assert log.count("is in a snapshot store but not in the catalog") == 1
        assert f"{stray} is in a snapshot store but not in the catalog" in log
        assert f"catalog holds {len(made)} snapshot(s); 2 disagreement(s)" in log
        assert ids(vssd.list_shadows()) == [i for i in made if i != gone["id"]]
    finally:
        run("btrfs", "subvolume", "delete", stray)
