# SPDX-License-Identifier: LGPL-2.1-or-later
"""The system-wide creation slot and auto-release."""

import os
import signal

from conftest import by_step, wait_until


def test_second_requestor_gets_set_in_progress_until_first_is_killed(btrfs, vssd):
    a = btrfs.subvolume("a")
    first, _ = vssd.spawn_requestor("create", "init", "gather", "start", f"add={a}", "hold")
    try:
        res = vssd.requestor("create", "init", "gather", "start")
        assert res[-1].hr == "VSS_E_SNAPSHOT_SET_IN_PROGRESS", res
        # The holder dies without releasing anything: vssd frees the slot.
        first.send_signal(signal.SIGKILL)
        first.wait()
        wait_until(lambda: vssd.requestor("create", "init", "gather", "start")[-1].hr == "S_OK", what="the slot to be freed")
    finally:
        first.kill()
        first.wait()
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do")
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"


def test_slot_freed_by_release_and_by_abort(btrfs, vssd):
    a = btrfs.subvolume("a")
    res = vssd.requestor("create", "init", "gather", "start", "release", "create", "init", "gather", "start", "abort", "create",
                         "init", "gather", "start")
    assert [r.hr for r in by_step(res, "start")] == ["S_OK", "S_OK", "S_OK"]
    del a


def test_slot_held_until_do_snapshot_set_ends(btrfs, vssd):
    a = btrfs.subvolume("a")
    holder, _ = vssd.spawn_requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do",
                                     "hold")
    try:
        # The set is done: the slot is free although the object lives on.
        res = vssd.requestor("create", "init", "gather", "start")
        assert res[-1].hr == "S_OK"
    finally:
        holder.kill()
        holder.wait()


def test_auto_release_on_disconnect(btrfs, vssd):
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    p, res = vssd.spawn_requestor("create", "init", "gather", "start", f"add={a}", f"add={b}", "do", "props", "hold")
    paths = [r.detail.split()[0] for r in by_step(res, "props")]
    assert len(paths) == 2 and all(os.path.isdir(x) for x in paths)
    assert len(vssd.list_shadows()) == 2
    p.send_signal(signal.SIGKILL)
    p.wait()
    wait_until(lambda: vssd.list_shadows() == [], what="auto-release")
    assert not any(os.path.exists(x) for x in paths)
    assert btrfs.store_entries() == []
    assert "auto-release" in vssd.log()


def test_auto_release_on_release_but_persistent_stays(btrfs, vssd):
    a = btrfs.subvolume("a")
    res = vssd.requestor("create", "init", "context=file_share_backup", "gather", "start", f"add={a}", "do", "props",
                         "release")
    assert not os.path.exists(by_step(res, "props")[0].detail.split()[0])
    res = vssd.requestor("create", "init", "context=nas_rollback", "gather", "start", f"add={a}", "do", "props", "release")
    path = by_step(res, "props")[0].detail.split()[0]
    assert os.path.isdir(path)
    assert [s["snapshot_path"] for s in vssd.list_shadows()] == [path]
    assert vssd.list_shadows()[0]["context"] == "nas_rollback"


def test_query_sees_own_context_only(btrfs, vssd):
    a = btrfs.subvolume("a")
    vssd.requestor("create", "init", "context=nas_rollback", "gather", "start", f"add={a}", "do")
    vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do")
    for ctx, n in (("nas_rollback", "1"), ("app_rollback", "1"), ("client_accessible", "0"), ("all", "2")):
        res = vssd.requestor("create", "init", f"context={ctx}", "query")
        assert res[-1].detail == n, (ctx, res)
