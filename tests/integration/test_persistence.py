# SPDX-License-Identifier: LGPL-2.1-or-later
"""The catalog across daemon restarts and crashes, and its reconciliation
with the disk at start-up."""

import os
import subprocess

from conftest import REQUESTOR, VSSD, by_step, run, wait_until


def test_persistent_sets_survive_restart(btrfs, vssd):
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    vssd.vssadmin("create", "shadow", f"--for={a}", f"--for={b}")
    vssd.vssadmin("create", "shadow", f"--for={a}", "--context=nas_rollback")
    before = vssd.list_shadows()
    assert len(before) == 3
    vssd.restart()
    assert vssd.list_shadows() == before
    assert "0 disagreement(s)" in vssd.log()
    # After a crash too.
    vssd.kill()
    vssd.start()
    assert vssd.list_shadows() == before


def test_snapshot_missing_on_disk_is_reported_and_dropped(btrfs, vssd):
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    vssd.vssadmin("create", "shadow", f"--for={a}", f"--for={b}")
    gone, kept = vssd.list_shadows()
    vssd.stop()
    run("btrfs", "subvolume", "delete", gone["snapshot_path"])
    vssd.start()
    assert f"snapshot {gone['id']} of {a} is missing on disk" in vssd.log()
    assert vssd.list_shadows() == [kept]


def test_reconcile_tells_snapshots_from_other_entries(btrfs, vssd):
    """The btrfs provider lists a store's snapshots from the subvolume
    references of the store (one search), or, for a store that is a plain
    directory, entry by entry: either way a snapshot is one only where it
    is a subvolume right in the store. A directory named like a snapshot
    is not its snapshot, nor is a snapshot one level down."""
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    for plain in (False, True):
        if plain:
            vssd.stop()
            run("btrfs", "subvolume", "delete", btrfs.store())
            btrfs.store().mkdir(mode=0o700)
            vssd.start()
        vssd.vssadmin("create", "shadow", "--context=nas_rollback", f"--for={a}", f"--for={b}")
        rows = vssd.list_shadows()
        kept, swapped = rows[-2], rows[-1]
        name = os.path.basename(swapped["snapshot_path"])
        vssd.stop()
        # b's snapshot is now one level down, and a directory has its name.
        run("btrfs", "subvolume", "delete", swapped["snapshot_path"])
        down = btrfs.store() / "down"
        down.mkdir(mode=0o700)
        run("btrfs", "subvolume", "snapshot", "-r", b, down / name)
        os.mkdir(swapped["snapshot_path"], 0o700)
        vssd.start()
        log = vssd.log()
        assert f"snapshot {swapped['id']} of {b} is missing on disk" in log, (plain, log)
        assert f"snapshot {kept['id']} of {a} is missing" not in log
        assert kept in vssd.list_shadows() and swapped not in vssd.list_shadows()
        run("btrfs", "subvolume", "delete", down / name)
        os.rmdir(swapped["snapshot_path"])
        os.rmdir(down)
        vssd.vssadmin("delete", "shadows", f"--set={kept['set_id']}", "--quiet")


def test_unknown_entry_in_store_is_reported_and_left(btrfs, vssd):
    a = btrfs.subvolume("a")
    vssd.vssadmin("create", "shadow", f"--for={a}")
    stray = btrfs.store() / "{11111111-2222-3333-4444-555555555555}"
    run("btrfs", "subvolume", "snapshot", "-r", a, stray)
    vssd.restart()
    assert f"{stray} is in a snapshot store but not in the catalog; left in place" in vssd.log()
    assert stray.is_dir()
    run("btrfs", "subvolume", "delete", stray)


def test_crash_during_creation_is_cleaned_up_at_start(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:2:delay=5000"})
    vols = [btrfs.subvolume(f"v{i}") for i in range(3)]
    p = subprocess.Popen([REQUESTOR, "create", "init", "context=app_rollback", "gather", "start",
                          *[f"add={v}" for v in vols], "do"], stdout=subprocess.PIPE, text=True,
                         env=vssd.client_env())
    wait_until(lambda: len(btrfs.store_entries()) == 1, what="member 1 to be snapshotted")
    vssd.kill()
    out, _ = p.communicate(timeout=30)
    assert "VSS_E_UNEXPECTED" in out  # the requestor lost vssd
    del vssd.env["VSS_FAULTS"]
    vssd.start()
    assert "was being created when vssd stopped" in vssd.log()
    assert btrfs.store_entries() == []
    assert vssd.list_shadows() == []


def test_auto_release_set_of_a_crashed_daemon_is_deleted_at_start(btrfs, vssd):
    a = btrfs.subvolume("a")
    p, res = vssd.spawn_requestor("create", "init", "context=backup", "gather", "start", f"add={a}", "do", "props", "hold")
    path = by_step(res, "props")[0].detail.split()[0]
    try:
        vssd.kill()
        assert os.path.isdir(path)
        vssd.start()
    finally:
        p.kill()
        p.wait()
    assert "is auto-release and its requestor is gone" in vssd.log()
    assert not os.path.exists(path)
    assert vssd.list_shadows() == []


def test_second_daemon_on_same_state_dir_refuses(vssd, workdir):
    d, _ = workdir
    p = run(VSSD, "--socket", d / "other.sock", "--state-dir", vssd.state, "--config", vssd.config, check=False)
    assert p.returncode != 0
    assert "another vssd uses" in p.stderr
    # The first one is unaffected.
    assert vssd.list_shadows() == []
