# SPDX-License-Identifier: LGPL-2.1-or-later
"""The restore side of the API (docs/RESTORE.md) with a real PostgreSQL:
a cluster on an image volume is backed up with `vssadmin exec` + tar, the
Backup Components Document saved with the archive; then restored into a
fresh directory through the restore calls (InitializeForRestore,
GatherWriterMetadata, SetSelectedForRestore, AddNewTarget, PreRestore, the
archive unpacked, PostRestore), and a server started on it reads the data
back. vss-pg-writer refuses PreRestore while a server runs on the target,
and fails PostRestore, saying why, when what was restored does not start.

Documents that are corrupt, truncated, too large, too deep, of another
version or with an unknown field are refused with
VSS_E_INVALID_XML_DOCUMENT naming the field; restore calls out of order get
VSS_E_BAD_STATE."""

import json
import os
import subprocess

import pytest

from conftest import VSSADMIN, Result, run, writers_by_name
from test_postgres import CLASS_ID, NESTING, PG_WRITER, Cluster, chown_postgres, prerequisites

PORT, RESTORED_PORT = 54331, 54332
STABLE, FAILED_AT_PRE_RESTORE, FAILED_AT_POST_RESTORE = 1, 13, 14


@pytest.fixture
def pg(images, workdir, daemon_factory):
    """A cluster on an image volume, with a table, served by a vssd with
    vss-pg-writer."""
    bindir = prerequisites()
    d, _ = workdir
    (vol,) = images(1, size="512M")
    data, sock, logs = vol.mnt / "pgdata", d / "pgsock", d / "pglogs"
    for p in (data, sock, logs):
        p.mkdir()
    os.chmod(data, 0o700)
    chown_postgres(data, sock, logs)
    server = Cluster(bindir, data, PORT, sock, logs / "server.log")
    clusters = [server]
    try:
        server.as_postgres("initdb", "-D", data, "--auth=trust", "-U", "postgres", "--encoding=UTF8", "--locale=C",
                           "--no-sync", "--no-instructions")
        server.start()
        server.sql("CREATE TABLE t (v text); INSERT INTO t VALUES ('before the backup')")
        vssd = daemon_factory(config=NESTING)
        vssd.spawn(PG_WRITER, f"host={sock} port={PORT} user=postgres dbname=postgres")
        yield vssd, vol, server, clusters, d
    finally:
        for c in reversed(clusters):
            c.stop()


def backup(vssd, vol, d):
    """`vssadmin exec` + tar of the volume; the archive and its document."""
    archive, doc = d / "backup.tar", d / "backup.json"
    e = vssd.client_env()
    p = run(VSSADMIN, "exec", f"--for={vol.mnt}", f"--document={doc}", "--",
            "tar", "-C", vol.mnt, "-cf", archive, "pgdata", check=False, env=e)
    assert p.returncode == 0, f"{p.stderr}\n{vssd.log()}"
    return archive, doc


def restore(vssd, doc, target, source_data, unpack=None):
    """The restore calls, with unpack() run between PreRestore and
    PostRestore; the requestor's results."""
    steps = ["create", f"restore-init={doc}", "gather", f"select={CLASS_ID}:cluster", f"select={CLASS_ID}:wal"]
    if target != source_data:
        steps += [f"target={CLASS_ID}:cluster:{source_data}:{target}",
                  f"target={CLASS_ID}:wal:{source_data}/pg_wal:{target}/pg_wal"]
    steps += ["pre-restore", "wstatus", "pause", "post-restore", "wstatus", f"save={doc}.after", "release"]
    p, results = vssd.spawn_requestor(*steps)
    try:
        if unpack:
            unpack()
        out, err = p.communicate("go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return results + [Result(x) for x in out.splitlines() if x.strip()]


def by_step(results):
    got = {}
    for r in results:
        got.setdefault(r.step, []).append(r)
    return got


def pg_status(result):
    """PostgreSQL's NAME:STATE:RESULT in a wstatus line."""
    (mine,) = [w for w in result.detail.split() if w.startswith("PostgreSQL:")]
    _, state, hr = mine.split(":")
    return int(state), hr


def test_backup_with_exec_and_restore_into_a_fresh_directory(pg):
    vssd, vol, server, clusters, d = pg
    archive, doc = backup(vssd, vol, d)
    server.sql("INSERT INTO t VALUES ('after the backup')")

    # The document: versioned, with the writer, its components' outcome and
    # the set's snapshot.
    bcd = json.loads(doc.read_text())
    assert (bcd["format"], bcd["version"]) == ("vss-backup-components", 1)
    assert bcd["backup"]["type"] == "full" and bcd["backup"]["state"] == "complete", bcd["backup"]
    (w,) = [w for w in bcd["writers"] if w["name"] == "PostgreSQL"]
    assert w["class_id"] == CLASS_ID and {c["name"] for c in w["components"]} == {"cluster", "wal"}
    assert {(c["name"], c["backup_succeeded"]) for c in bcd["components"]} == {("cluster", True), ("wal", True)}
    (snap,) = bcd["snapshot_set"]["snapshots"]
    assert snap["volume"] == str(vol.mnt) and snap["creation_timestamp"] > 0, snap
    assert vssd.list_shadows() == []  # exec's set went with it; the document stays

    target = d / "restored"
    target.mkdir(mode=0o700)
    chown_postgres(target)

    def unpack():
        run("tar", "-C", target, "--strip-components=1", "-xf", archive)
        chown_postgres(target)

    got = by_step(restore(vssd, doc, target, server.data, unpack))
    for step in ("restore-init", "gather", "select", "target", "save", "release"):
        assert all(r.hr == "S_OK" for r in got[step]), got[step]
    assert [(r.hr, r.detail) for r in got["pre-restore"]] == [("S_OK", "VSS_S_ASYNC_FINISHED")]
    assert [(r.hr, r.detail) for r in got["post-restore"]] == [("S_OK", "VSS_S_ASYNC_FINISHED")]
    assert [pg_status(r) for r in got["wstatus"]] == [(STABLE, "S_OK"), (STABLE, "S_OK")], got["wstatus"]
    # The writer started the restored cluster (its recovery) and stopped it.
    assert not (target / "postmaster.pid").exists()
    # A document saved during the restore says what was restored where.
    after = json.loads((d / "backup.json.after").read_text())
    assert after["backup"]["state"] == "restored", after["backup"]
    (cluster,) = [c for c in after["components"] if c["name"] == "cluster"]
    assert cluster["selected_for_restore"] and cluster["new_targets"] == [
        {"path": str(server.data), "filespec": "*", "recursive": True, "alternate_path": str(target)}]

    restored = Cluster(server.bin, target, RESTORED_PORT, server.sockdir, d / "pglogs" / "restored.log")
    clusters.append(restored)
    restored.start()
    assert restored.sql("SELECT v FROM t ORDER BY v").split() == ["before", "the", "backup"]
    restored.stop()


def test_pre_restore_refused_while_a_server_runs_on_the_target(pg):
    vssd, vol, server, clusters, d = pg
    _, doc = backup(vssd, vol, d)
    # In place, with the server still running on it.
    got = by_step(restore(vssd, doc, server.data, server.data))
    assert [(r.hr, r.detail) for r in got["pre-restore"]] == [("S_OK", "VSS_S_ASYNC_FINISHED")]
    assert pg_status(got["wstatus"][0]) == (FAILED_AT_PRE_RESTORE, "VSS_E_WRITERERROR_RETRYABLE")
    # It is not told of a PostRestore of what it refused.
    assert pg_status(got["wstatus"][1]) == (FAILED_AT_PRE_RESTORE, "VSS_E_WRITERERROR_RETRYABLE")
    w = writers_by_name(vssd)["PostgreSQL"]
    assert f"runs on {server.data}" in w["message"] and "stop it" in w["message"], w
    assert server.sql("SELECT count(*) FROM t").strip() == "1"


def test_post_restore_fails_when_the_restored_directory_does_not_start(pg):
    vssd, vol, server, clusters, d = pg
    _, doc = backup(vssd, vol, d)
    target = d / "empty"
    target.mkdir(mode=0o700)
    chown_postgres(target)
    got = by_step(restore(vssd, doc, target, server.data))  # nothing unpacked
    assert pg_status(got["wstatus"][0]) == (STABLE, "S_OK")
    assert pg_status(got["wstatus"][1]) == (FAILED_AT_POST_RESTORE, "VSS_E_WRITERERROR_NONRETRYABLE")
    w = writers_by_name(vssd)["PostgreSQL"]
    assert f"{target} is not a PostgreSQL cluster" in w["message"], w


ID = "{01122334-4556-6778-899a-abbccddeef00}"
WRITER_CLASS = "{a5a5a5a5-0000-4000-8000-000000000002}"


def document(**change):
    """A small valid document, as docs/RESTORE.md describes it."""
    d = {
        "format": "vss-backup-components", "version": 1,
        "backup": {"state": "complete", "type": "full", "select_components": True, "bootable_system_state": False,
                   "partial_file_support": False, "context": 0},
        "snapshot_set": {"id": ID, "snapshots": [
            {"id": ID, "volume": "/srv", "provider_id": ID, "device_object": None, "creation_timestamp": 1}]},
        "writers": [{"instance_id": ID, "class_id": WRITER_CLASS, "name": "app", "instance_name": None,
                     "usage": "user_data", "source": "other", "level": "back_end",
                     "components": [{"type": "filegroup", "logical_path": None, "name": "files", "caption": None,
                                     "selectable": True,
                                     "files": [{"kind": "files", "path": "/srv", "filespec": "*",
                                                "recursive": True}]}],
                     "excluded": []}],
        "components": [{"writer_class_id": WRITER_CLASS, "writer_instance_id": ID, "type": "filegroup",
                        "logical_path": None, "name": "files", "backup_succeeded": True, "backup_options": None,
                        "selected_for_restore": False, "restore_options": None, "new_targets": []}],
    }
    d.update(change)
    return d


def test_bad_documents_are_refused_naming_the_field(vssd, workdir):
    d, _ = workdir
    good = json.dumps(document(), indent=1)
    deep = json.loads(good)
    deep["writers"][0]["components"][0]["files"][0]["kind"] = [[[[["files"]]]]]
    unknown = json.loads(good)
    unknown["components"][0]["extra"] = 1
    nul = json.loads(good)
    nul["writers"][0]["name"] = "a\u0000b"
    refused = {
        "corrupt": ("<BackupComponents/>", "not JSON"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "oversized": (good + " " * (4 << 20), "larger than 4194304 bytes"),
        "version": (json.dumps(document(version=2)), "version: not 1"),
        "format": (json.dumps(document(format="other")), "format: not \"vss-backup-components\""),
        "unknown": (json.dumps(unknown), "components[0].extra: not a field"),
        "missing": (json.dumps({k: v for k, v in document().items() if k != "writers"}), "the document.writers: missing"),
        "type": (json.dumps(document(backup=dict(document()["backup"], context="0"))), "backup.context: not an integer"),
        "deep": (json.dumps(deep), "nested deeper than 8 levels"),
        "nul": (json.dumps(nul), "writers[0].name: holds a NUL character"),
        "too-many": (json.dumps(document(snapshot_set={"id": ID, "snapshots": [document()["snapshot_set"]["snapshots"][0]] * 65})),
                     "snapshot_set.snapshots: more than 64 entries"),
        "stray-component": (json.dumps(document(components=[dict(document()["components"][0], name="other")])),
                            "components[0]: names a component that no writer of the document has"),
        "trailing": (good + " {}", f"at byte {len(good) + 1}"),
        "context-all": (json.dumps(document(backup=dict(document()["backup"], context=-1))),
                        "backup.context: 0xffffffff is not a context"),
        "context-bits": (json.dumps(document(backup=dict(document()["backup"], context=0x10004))),
                         "backup.context: 0x10004 is not a context"),
    }
    steps = []
    for name, (text, _) in refused.items():
        (d / f"{name}.json").write_text(text)
        steps += ["create", f"restore-init={d / name}.json", "create", f"init-doc={d / name}.json"]
    (d / "good.json").write_text(good)
    steps += ["create", f"restore-init={d}/good.json", "create", f"init-doc={d}/good.json"]
    results = vssd.requestor(*steps)
    inits = [r for r in results if r.step != "create"]
    for k, (name, (_, why)) in enumerate(refused.items()):
        for r in inits[2 * k: 2 * k + 2]:
            assert r.hr == "VSS_E_INVALID_XML_DOCUMENT", (name, r)
            assert why in r.message, (name, r)
    assert [r.hr for r in inits[-2:]] == ["S_OK", "S_OK"], inits[-2:]


def test_restore_calls_out_of_order_are_bad_state(vssd, workdir):
    d, _ = workdir
    doc = d / "doc.json"
    doc.write_text(json.dumps(document()))
    comp = f"{WRITER_CLASS}:files"
    results = vssd.requestor(
        # A new object: nothing before an initialize.
        "create", "pre-restore", "save=" + str(d / "x"),
        # A backup object: no restore call; no document before PrepareForBackup.
        "create", "init", "pre-restore", f"select={comp}", "save=" + str(d / "x"), f"restore-init={doc}",
        # A restore object: no backup call, no abort, PreRestore after the
        # metadata, PostRestore after PreRestore, each once.
        "create", f"restore-init={doc}", f"restore-init={doc}", "init", "start", "state", "abort",
        "pre-restore", "post-restore", f"select={WRITER_CLASS}:nothing", f"select={comp}",
        f"target={comp}:/srv:relative", f"target={comp}:/srv:/elsewhere", f"options={comp}:fast",
        "gather", "pre-restore", "pre-restore", f"select={comp}", "post-restore", "post-restore",
        "save=" + str(d / "after.json"), "release")
    got = [(r.step, r.hr) for r in results if r.step != "create"]
    assert got == [
        ("pre-restore", "VSS_E_BAD_STATE"), ("save", "VSS_E_BAD_STATE"),
        ("init", "S_OK"), ("pre-restore", "VSS_E_BAD_STATE"), ("select", "VSS_E_BAD_STATE"),
        ("save", "VSS_E_BAD_STATE"), ("restore-init", "VSS_E_BAD_STATE"),
        ("restore-init", "S_OK"), ("restore-init", "VSS_E_BAD_STATE"), ("init", "VSS_E_BAD_STATE"),
        ("start", "VSS_E_BAD_STATE"), ("state", "VSS_E_BAD_STATE"), ("abort", "VSS_E_BAD_STATE"),
        ("pre-restore", "VSS_E_BAD_STATE"), ("post-restore", "VSS_E_BAD_STATE"),
        ("select", "VSS_E_OBJECT_NOT_FOUND"), ("select", "S_OK"), ("target", "E_INVALIDARG"), ("target", "S_OK"),
        ("options", "S_OK"), ("gather", "S_OK"), ("pre-restore", "S_OK"), ("pre-restore", "VSS_E_BAD_STATE"),
        ("select", "VSS_E_BAD_STATE"), ("post-restore", "S_OK"), ("post-restore", "VSS_E_BAD_STATE"),
        ("save", "S_OK"), ("release", "S_OK"),
    ], got
    abort = [r for r in results if r.step == "abort"][0]
    assert "a restore cannot be aborted" in abort.message, abort
    after = json.loads((d / "after.json").read_text())
    assert after["backup"]["state"] == "restored"
    (c,) = after["components"]
    assert c["selected_for_restore"] and c["restore_options"] == "fast", c
    assert c["new_targets"] == [{"path": "/srv", "filespec": "*", "recursive": True, "alternate_path": "/elsewhere"}]
