# SPDX-License-Identifier: LGPL-2.1-or-later
"""The end-to-end path: create, list, read, delete, through vssadmin and the
library, against a real vssd and a real btrfs."""

import json
import os
import re
import signal
import subprocess
import threading

from conftest import VSSADMIN, VSSD, by_step, run, wait_until


def test_create_list_delete_two_subvolumes(btrfs, vssd):
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    (a / "before").write_text("in a before the set\n")
    (b / "before").write_text("in b before the set\n")

    out = json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", f"--for={b}", "--json").stdout)
    assert [s["volume"] for s in out] == [str(a), str(b)]
    assert len({s["set_id"] for s in out}) == 1
    (a / "after").write_text("written after the set\n")

    listed = vssd.list_shadows()
    assert {s["id"] for s in listed} == {s["id"] for s in out}
    for s in listed:
        assert s["state"] == "created"
        assert s["provider"] == "btrfs"
        assert s["context"] == "app_rollback"
        assert s["attributes"] & 0x1 and s["attributes"] & 0x8  # persistent, no auto-release
        assert s["consistency"] == "crash-consistent per volume"
        assert s["hold_window_us"] > 0
        assert s["snapshots_in_set"] == 2
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", s["created"])
        assert re.fullmatch(r"\{[0-9a-f-]{36}\}", s["id"])

    snap_a = next(s for s in listed if s["volume"] == str(a))["snapshot_path"]
    snap_b = next(s for s in listed if s["volume"] == str(b))["snapshot_path"]
    assert open(os.path.join(snap_a, "before")).read() == "in a before the set\n"
    assert open(os.path.join(snap_b, "before")).read() == "in b before the set\n"
    assert not os.path.exists(os.path.join(snap_a, "after"))
    # Read-only: the kernel refuses a write into the snapshot.
    p = run("touch", os.path.join(snap_a, "new"), check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    assert run("btrfs", "property", "get", snap_a, "ro").stdout.strip() == "ro=true"

    # Filters.
    assert [s["volume"] for s in vssd.list_shadows(f"--for={a}")] == [str(a)]
    assert len(vssd.list_shadows(f"--set={out[0]['set_id']}")) == 2

    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    assert vssd.list_shadows() == []
    assert not os.path.exists(snap_a) and not os.path.exists(snap_b)
    assert btrfs.store_entries() == []


def test_snapshot_holds_data_as_of_commit_while_writing(btrfs, vssd):
    """A process appends numbered records to both volumes during the set: each
    snapshot holds a clean prefix of its live file, and nothing written after
    the set was made."""
    vols = [btrfs.subvolume("a"), btrfs.subvolume("b")]
    stop = threading.Event()
    written = [0]

    def writer():
        files = [open(v / "log", "a") for v in vols]
        while not stop.is_set():
            for f in files:
                f.write(f"{written[0]:08d}\n")
                f.flush()
            written[0] += 1
        for f in files:
            f.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        out = json.loads(vssd.vssadmin("create", "shadow", *[f"--for={v}" for v in vols], "--json").stdout)
        # On a loaded machine the writer may not have run since the set.
        after = written[0]
        wait_until(lambda: written[0] > after + 1, what="writes after the set")
    finally:
        stop.set()
        t.join()
    for v, s in zip(vols, out):
        snap = open(os.path.join(s["snapshot_path"], "log")).read()
        live = open(v / "log").read()
        assert live.startswith(snap), "the snapshot is not a prefix of the live file"
        assert len(live) > len(snap), "writes after the set must not be in the snapshot"
        lines = snap.splitlines()
        assert lines == [f"{i:08d}" for i in range(len(lines))]


def test_library_sequence_backup_context(btrfs, vssd):
    """The documented requestor sequence through libvss, in the default
    (auto-release) context."""
    a = btrfs.subvolume("a")
    res = vssd.requestor("create", "init", "state", "gather", "start", f"add={a}", "prepare", "do", "props", "query",
                         "complete", "release")
    assert [(r.step, r.hr) for r in res] == [
        ("create", "S_OK"), ("init", "S_OK"), ("state", "S_OK"), ("gather", "S_OK"), ("start", "S_OK"),
        ("add", "S_OK"),
        ("prepare", "S_OK"), ("do", "S_OK"), ("props", "S_OK"), ("query", "S_OK"), ("complete", "S_OK"),
        ("release", "S_OK")]
    assert by_step(res, "prepare")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert by_step(res, "query")[0].detail == "1"
    path, volume = by_step(res, "props")[0].detail.split()
    assert volume == str(a)
    # Auto-release: released with the object.
    assert not os.path.exists(path)
    assert vssd.list_shadows() == []


def test_providers(vssd):
    out = json.loads(vssd.vssadmin("list", "providers", "--json").stdout)
    assert [p["name"] for p in out] == ["btrfs", "image", "lvm"]
    assert {p["type"] for p in out} == {"Software"}
    text = vssd.vssadmin("list", "providers").stdout
    assert "Provider name: 'btrfs'" in text
    res = vssd.requestor("create", "init", "providers")
    assert res[-1].hr == "S_OK" and res[-1].detail.startswith("btrfs={")


def test_named_provider(btrfs, vssd):
    a = btrfs.subvolume("a")
    out = json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", "--provider=btrfs", "--json").stdout)
    assert out[0]["provider"] == "btrfs"
    pid = out[0]["provider_id"]
    out = json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", f"--provider={pid}", "--json").stdout)
    assert out[0]["provider_id"] == pid


def test_text_listing(btrfs, vssd):
    a = btrfs.subvolume("a")
    vssd.vssadmin("create", "shadow", f"--for={a}")
    text = vssd.vssadmin("list", "shadows").stdout
    assert "Contents of shadow copy set ID: {" in text
    assert f"Original Volume: {a}" in text
    assert "Type: ApplicationRollback" in text
    assert "No items found" in vssd.vssadmin("list", "shadows", "--for=/").stdout


def test_failure_output_names_code_and_hex(vssd, workdir):
    d, _ = workdir
    p = vssd.vssadmin("create", "shadow", f"--for={d}/missing", check=False)
    assert p.returncode != 0
    assert p.stderr.startswith("vssadmin: VSS_E_OBJECT_NOT_FOUND (0x80042308): ")
    p = vssd.vssadmin("list", "shadows", "--set=not-an-id", check=False)
    assert p.returncode == 2 and "E_INVALIDARG (0x80070057)" in p.stderr
    p = vssd.vssadmin("create", "shadow", "--for=/", "--context=backup", check=False)
    assert p.returncode == 2 and "auto-release" in p.stderr
    p = vssd.vssadmin("delete", "shadows", "--shadow={00000000-0000-0000-0000-000000000001}", "--quiet",
                      check=False)
    assert p.returncode == 1 and p.stderr.startswith("vssadmin: VSS_E_OBJECT_NOT_FOUND (0x80042308)")


def test_options_a_command_does_not_take_are_refused(btrfs, vssd):
    a = btrfs.subvolume("a")
    made = json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", "--json").stdout)[0]
    ID = "{00000000-0000-0000-0000-000000000001}"
    for args, option in [
        (["list", "writers", f"--for={a}"], "for"),
        (["list", "providers", f"--set={made['set_id']}"], "set"),
        (["list", "shadows", "--oldest"], "oldest"),
        (["list", "shadowstorage", "--maxsize=1G"], "maxsize"),
        (["create", "shadow", f"--for={a}", "--quiet"], "quiet"),
        (["create", "shadow", f"--for={a}", f"--set={ID}"], "set"),
        (["delete", "shadows", f"--set={made['set_id']}", "--json"], "json"),
        (["delete", "shadows", f"--for={a}", "--all", "--provider=btrfs"], "provider"),
        (["resize", "shadowstorage", f"--for={a}", "--maxsize=1G", "--all"], "all"),
        (["expose", f"--shadow={made['id']}", "--context=nas_rollback"], "context"),
        (["unexpose", f"--shadow={made['id']}", f"--at={a}"], "at"),
    ]:
        p = vssd.vssadmin(*args, check=False)
        command = " ".join(w for w in args if not w.startswith("--"))
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith(f"vssadmin: E_INVALIDARG (0x80070057): {command} takes no --{option} "), p.stderr
    # Nothing was made, deleted or resized.
    assert vssd.list_shadows() == [made]
    assert "Maximum Shadow Copy Storage space: UNBOUNDED" in vssd.vssadmin("list", "shadowstorage").stdout
    # --socket goes with every command.
    vssd.vssadmin(f"--socket={vssd.socket}", "list", "writers", "--json")


def test_daemon_unreachable(workdir):
    d, _ = workdir
    p = run(VSSADMIN, f"--socket={d}/nothing.sock", "list", "shadows", check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("vssadmin: VSS_E_UNEXPECTED (0x80042302): cannot reach vssd")


def test_delete_for_volume_oldest_and_all(btrfs, vssd):
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    ids = [json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", "--json").stdout)[0]["id"] for _ in range(3)]
    vssd.vssadmin("create", "shadow", f"--for={b}")
    out = vssd.vssadmin("delete", "shadows", f"--for={a}", "--oldest").stdout
    assert "Successfully deleted 1 shadow copy." in out
    assert [s["id"] for s in vssd.list_shadows(f"--for={a}")] == ids[1:]
    vssd.vssadmin("delete", "shadows", f"--for={a}", "--all", "--quiet")
    assert vssd.list_shadows(f"--for={a}") == []
    assert len(vssd.list_shadows(f"--for={b}")) == 1
    vssd.vssadmin("delete", "shadows", f"--shadow={vssd.list_shadows()[0]['id']}", "--quiet")
    assert vssd.list_shadows() == []


def test_busctl_introspects_the_interface(btrfs, vssd):
    """The D-Bus interface can be explored with busctl, peer to peer; an
    object made on one connection cannot be driven from another."""
    addr = f"--address=unix:path={vssd.socket}"
    out = run("busctl", addr, "introspect", "org.vss", "/org/vss/Manager").stdout
    assert "org.vss.Manager1" in out and ".CreateBackupComponents" in out and ".CreationInProgress" in out
    path = run("busctl", addr, "call", "org.vss", "/org/vss/Manager", "org.vss.Manager1",
               "CreateBackupComponents").stdout.split()[1].strip('"')
    assert path.startswith("/org/vss/backup/")
    p = run("busctl", addr, "call", "org.vss", path, "org.vss.Backup1", "InitializeForBackup", "s", "",
            check=False)
    assert p.returncode != 0 and "Unknown object" in p.stderr


def test_socket_activation(btrfs, workdir):
    """vssd takes its listening socket from the service manager (sd_listen_fds)."""
    d, _ = workdir
    sock = d / "activated.sock"
    a = btrfs.subvolume("a")
    rundir = d / "run"
    # The socket says nothing of where vssd keeps its runtime files: they go
    # where it is told, never to the default /run/vss.
    p = subprocess.Popen(["systemd-socket-activate", "-l", str(sock), str(VSSD), "--state-dir", str(d / "state"),
                          "--runtime-dir", str(rundir), "--config", "/dev/null"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(sock.exists, what="the socket")
        out = json.loads(run(VSSADMIN, f"--socket={sock}", "create", "shadow", f"--for={a}", "--json").stdout)
        assert out[0]["volume"] == str(a)
        exposed = run(VSSADMIN, f"--socket={sock}", "expose", f"--shadow={out[0]['id']}").stdout
        assert f"{rundir}/exposed/" in exposed, exposed
        run(VSSADMIN, f"--socket={sock}", "unexpose", f"--shadow={out[0]['id']}")
    finally:
        p.send_signal(signal.SIGTERM)
        log = p.communicate(timeout=60)[0]
    assert p.returncode == 0, log
    assert "ready on the socket passed by the service manager" in log
