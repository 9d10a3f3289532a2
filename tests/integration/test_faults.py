# SPDX-License-Identifier: LGPL-2.1-or-later
"""All or nothing: a provider failing on one member aborts the whole set,
through the provider layer's fault seam (VSS_FAULTS) while every other step
runs for real on btrfs."""

import json
import os
import subprocess

import pytest

from conftest import REQUESTOR, by_step, parse_results, wait_until

CASES = [
    ("begin_prepare:2:ENOSPC", "VSS_E_INSUFFICIENT_STORAGE"),
    ("begin_prepare:2:veto", "VSS_E_PROVIDER_VETO"),
    ("end_prepare:1:EIO", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("pre_commit:2:EIO", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit:2:ENOSPC", "VSS_E_INSUFFICIENT_STORAGE"),
    ("commit:2:EDQUOT", "VSS_E_INSUFFICIENT_STORAGE"),
    ("commit:2:EIO", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit:2:EROFS", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit:2:veto", "VSS_E_PROVIDER_VETO"),
    ("commit:3:ENOSPC", "VSS_E_INSUFFICIENT_STORAGE"),
    ("post_commit:2:EIO", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("post_final_commit:2:ENOSPC", "VSS_E_INSUFFICIENT_STORAGE"),
]


@pytest.mark.parametrize("fault,expected", CASES, ids=[c[0] for c in CASES])
def test_failure_on_one_member_aborts_every_member(btrfs, daemon_factory, fault, expected):
    vssd = daemon_factory(env={"VSS_FAULTS": fault})
    vols = [btrfs.subvolume(f"v{i}") for i in range(3)]
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", *[f"add={v}" for v in vols], "do",
                         "query", "abort", "release")
    do = by_step(res, "do")[0]
    assert do.detail == expected, res
    # Nothing of the set remains: not on disk, not in the catalog.
    assert btrfs.store_entries() == []
    assert vssd.list_shadows() == []
    assert by_step(res, "query")[0].detail == "0"
    assert "every member aborted" in vssd.log()
    # And the next set works (one member: the fault targets a later one).
    if not fault.split(":")[1] == "1":
        vssd.vssadmin("create", "shadow", f"--for={vols[0]}")


def test_commit_fault_on_second_member_undoes_the_first(btrfs, daemon_factory):
    """Member 1 is really snapshotted while member 2 stalls and then fails
    (snapshots are made one after another); the abort removes it."""
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:2:delay=1500,commit:2:EIO"})
    vols = [btrfs.subvolume(f"v{i}") for i in range(3)]
    p = subprocess.Popen([REQUESTOR, "create", "init", "context=app_rollback", "gather", "start",
                          *[f"add={v}" for v in vols], "do"], stdout=subprocess.PIPE, text=True,
                         env=vssd.client_env())
    wait_until(lambda: len(btrfs.store_entries()) == 1, what="member 1 to be snapshotted")
    out, _ = p.communicate(timeout=60)
    assert by_step(parse_results(out), "do")[0].detail == "VSS_E_UNEXPECTED_PROVIDER_ERROR"
    assert btrfs.store_entries() == []
    assert vssd.list_shadows() == []


TIMEOUTS = [
    # (limit, the member step that stalls past it, result)
    ("FlushTimeoutMSec", "pre_commit", "VSS_E_FLUSH_WRITES_TIMEOUT"),
    # Member 2's snapshot is made after the deadline, the others' before: all go.
    ("HoldTimeoutMSec", "commit", "VSS_E_HOLD_WRITES_TIMEOUT"),
]


@pytest.mark.parametrize("limit,step,expected", TIMEOUTS, ids=[t[2] for t in TIMEOUTS])
def test_timeouts(btrfs, daemon_factory, limit, step, expected):
    vssd = daemon_factory(config=f"{limit} = 300\n", env={"VSS_FAULTS": f"{step}:2:delay=1500"})
    vols = [btrfs.subvolume(f"v{i}") for i in range(3)]
    res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", *[f"add={v}" for v in vols], "do")
    assert by_step(res, "do")[0].detail == expected
    assert btrfs.store_entries() == [] and vssd.list_shadows() == []


def test_delete_failure_reports_first_undeleted(btrfs, daemon_factory):
    vssd = daemon_factory(env={"VSS_FAULTS": "delete:*:veto"})
    a = btrfs.subvolume("a")
    vssd.vssadmin("create", "shadow", f"--for={a}")
    shadow = vssd.list_shadows()[0]
    p = vssd.vssadmin("delete", "shadows", f"--shadow={shadow['id']}", "--quiet", check=False)
    assert p.returncode == 1 and "VSS_E_PROVIDER_VETO (0x80042306)" in p.stderr
    # Still there, and still listed: the catalog does not lie.
    assert os.path.isdir(shadow["snapshot_path"])
    assert vssd.list_shadows() == [shadow]


def test_step_outlives_a_flush_deadline_of_one_millisecond(btrfs, daemon_factory):
    """With a 1 ms flush limit the engine gives up on the flush while most
    workers have not even started it; they start later and must still know
    which step to run (under ASan, with use-after-return detection, a step
    read from the engine's returned stack frame is reported)."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    vssd = daemon_factory(config="FlushTimeoutMSec = 1\n",
                          env={"ASAN_OPTIONS": f"{asan}:detect_stack_use_after_return=1"})
    vols = [btrfs.subvolume(f"v{i:02d}") for i in range(16)]
    for _ in range(5):
        res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start",
                             *[f"add={v}" for v in vols], "do", "release")
        assert by_step(res, "do")[0].detail in ("VSS_E_FLUSH_WRITES_TIMEOUT", "VSS_S_ASYNC_FINISHED"), res
    vssd.vssadmin("delete", "shadows", f"--for={vols[0]}", "--all", "--quiet", check=False)
    vssd.stop()


def test_requestor_hears_why_the_set_failed(btrfs, daemon_factory):
    """The reason vssd logs for a failed set reaches the requestor (the
    operation's Message property), not only the code."""
    import re
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:2:ENOSPC"})
    vols = [btrfs.subvolume(f"v{i}") for i in range(2)]
    p = vssd.vssadmin("create", "shadow", *[f"--for={v}" for v in vols], "--context=nas_rollback", check=False)
    assert p.returncode == 1
    logged = re.search(r"set \{[-0-9a-f]+\}: VSS_E_INSUFFICIENT_STORAGE \(0x8004231f\): (.*); every member aborted",
                       vssd.log())
    assert logged, vssd.log()
    assert p.stderr == f"vssadmin: VSS_E_INSUFFICIENT_STORAGE (0x8004231f): {logged.group(1)}\n"
    assert btrfs.store_entries() == [] and vssd.list_shadows() == []


def test_a_lone_btrfs_member_is_not_synced_before_its_snapshot(btrfs, daemon_factory):
    """The snapshot ioctl flushes the subvolume and commits by itself: a
    member alone in its set skips the sync before it (a sync that would fail
    is never called), while the members of a larger set still sync first."""
    vssd = daemon_factory(env={"VSS_FAULTS": "sync:1:EIO"})
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    made = json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", "--json").stdout)
    assert btrfs.store_entries() == [made[0]["id"]]
    p = vssd.vssadmin("create", "shadow", f"--for={a}", f"--for={b}", check=False)
    assert p.returncode != 0 and "VSS_E_UNEXPECTED_PROVIDER_ERROR (0x" in p.stderr, p.stderr
    assert "pre_commit of" in vssd.log()
    assert [s["id"] for s in vssd.list_shadows()] == [made[0]["id"]]
