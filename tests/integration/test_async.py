# SPDX-License-Identifier: LGPL-2.1-or-later
"""IVssAsync: wait, query_status and cancel, and abort or release while a set
is being cut. Delays come from the provider fault seam."""

from conftest import by_step


def steps_for(vols, *tail, context="app_rollback"):
    return ["create", "init", f"context={context}", "gather", "start", *[f"add={v}" for v in vols], *tail]


def test_wait_with_timeout_then_infinite(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "pre_commit:1:delay=1500"})
    a = btrfs.subvolume("a")
    res = vssd.requestor(*steps_for([a], "do-async", "status", "wait=100", "wait", "status"))
    assert [(r.step, r.hr, r.detail) for r in res[-5:]] == [
        ("do-async", "S_OK", ""), ("status", "S_OK", "VSS_S_ASYNC_PENDING"), ("wait", "VSS_S_ASYNC_PENDING", ""),
        ("wait", "S_OK", ""), ("status", "S_OK", "VSS_S_ASYNC_FINISHED")]
    assert len(vssd.list_shadows()) == 1


def test_cancel_before_commit(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "pre_commit:1:delay=1000"})
    vols = [btrfs.subvolume("a"), btrfs.subvolume("b")]
    res = vssd.requestor(*steps_for(vols, "do-async", "cancel", "status", "cancel", "wait", "abort"))
    assert [(r.step, r.hr) for r in res[-6:]] == [
        ("do-async", "S_OK"), ("cancel", "S_OK"), ("status", "S_OK"), ("cancel", "VSS_S_ASYNC_CANCELLED"),
        ("wait", "S_OK"), ("abort", "S_OK")]
    assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_CANCELLED"
    assert btrfs.store_entries() == [] and vssd.list_shadows() == []
    # The slot is free again.
    assert vssd.requestor("create", "init", "gather", "start")[-1].hr == "S_OK"


def test_cancel_too_late(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:delay=800"})
    a = btrfs.subvolume("a")
    res = vssd.requestor(*steps_for([a], "do-async", "sleep=200", "cancel", "status", "cancel"))
    assert [r.hr for r in by_step(res, "cancel")] == ["VSS_S_ASYNC_FINISHED", "VSS_S_ASYNC_FINISHED"]
    assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert len(vssd.list_shadows()) == 1


def test_failed_operation_through_wait_and_cancel(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:ENOSPC"})
    a = btrfs.subvolume("a")
    res = vssd.requestor(*steps_for([a], "do-async", "wait", "status", "cancel", "complete", "abort"))
    assert by_step(res, "wait")[0].hr == "VSS_E_INSUFFICIENT_STORAGE"
    assert by_step(res, "status")[0].detail == "VSS_E_INSUFFICIENT_STORAGE"
    assert by_step(res, "cancel")[0].hr == "VSS_E_INSUFFICIENT_STORAGE"
    assert by_step(res, "complete")[0].hr == "VSS_E_BAD_STATE"  # never after a failed DoSnapshotSet
    assert by_step(res, "abort")[0].hr == "S_OK"


def test_abort_while_creating_before_commit(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "pre_commit:1:delay=1000"})
    a = btrfs.subvolume("a")
    res = vssd.requestor(*steps_for([a], "do-async", "abort", "wait", "status"))
    assert by_step(res, "abort")[0].hr == "S_OK"
    assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_CANCELLED"
    assert btrfs.store_entries() == [] and vssd.list_shadows() == []


def test_abort_while_committing_deletes_the_set_when_done(btrfs, daemon_factory):
    """Too late to cancel: the set is finished, then deleted, since its requestor gave it up."""
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:delay=800"})
    a = btrfs.subvolume("a")
    res = vssd.requestor(*steps_for([a], "do-async", "sleep=200", "abort", "wait", "status"))
    assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert btrfs.store_entries() == [] and vssd.list_shadows() == []
    assert "gave it up" in vssd.log()


def test_release_while_creating(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:delay=800"})
    a = btrfs.subvolume("a")
    vssd.requestor(*steps_for([a], "do-async", "sleep=200", "release"))
    vssd.wait_log("gave it up")
    assert btrfs.store_entries() == [] and vssd.list_shadows() == []
    assert vssd.requestor("create", "init", "gather", "start")[-1].hr == "S_OK"
