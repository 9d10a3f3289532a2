# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every call out of order gives VSS_E_BAD_STATE (docs/STATE-MACHINE.md); bad
arguments give E_INVALIDARG; nothing is left behind by a refused call."""

import pytest

from conftest import by_step

# (steps, the step expected to fail); "V" stands for a volume, "W" for a second one.
ORDERING = [
    (["create", "start"], "start"),
    (["create", "add=V"], "add"),
    (["create", "do"], "do"),
    (["create", "abort"], "abort"),
    (["create", "query"], "query"),
    (["create", "gather"], "gather"),
    (["create", "context=backup"], "context=backup"),
    (["create", "init", "init"], "init"),
    (["create", "init", "context=backup", "context=backup"], "context=backup"),
    (["create", "init", "start", "context=app_rollback"], "context=app_rollback"),
    (["create", "init", "add=V"], "add"),
    (["create", "init", "do"], "do"),
    (["create", "init", "prepare"], "prepare"),
    (["create", "init", "complete"], "complete"),
    (["create", "init", "wstatus"], "wstatus"),
    (["create", "init", "gather", "gather"], "gather"),
    (["create", "init", "gather", "disable=X"], "disable"),
    (["create", "init", "start", "gather"], "gather"),
    (["create", "init", "start", "start"], "start"),
    (["create", "init", "gather", "start", "do"], "do"),
    # In a context with writers, DoSnapshotSet needs GatherWriterMetadata.
    (["create", "init", "start", "add=V", "do"], "do"),
    (["create", "init", "context=app_rollback", "start", "add=V", "do"], "do"),
    (["create", "init", "gather", "start", "add=V", "prepare"], "prepare"),
    (["create", "init", "gather", "start", "add=V", "complete"], "complete"),
    (["create", "init", "context=nas_rollback", "state", "start", "add=V", "prepare"], "prepare"),
    (["create", "init", "context=all", "start"], "start"),
    (["create", "init", "state", "gather", "start", "add=V", "prepare", "prepare"], "prepare"),
    (["create", "init", "state", "gather", "start", "add=V", "prepare", "add=W"], "add"),
    (["create", "init", "gather", "start", "add=V", "do", "add=W"], "add"),
    (["create", "init", "gather", "start", "add=V", "do", "do"], "do"),
    (["create", "init", "gather", "start", "add=V", "do", "start"], "start"),
    (["create", "init", "gather", "start", "add=V", "do", "init"], "init"),
    (["create", "init", "context=nas_rollback", "start", "add=V", "do", "complete"], "complete"),
    (["create", "init", "gather", "start", "add=V", "abort", "do"], "do"),
    (["create", "init", "gather", "start", "add=V", "abort", "add=W"], "add"),
    (["create", "init", "state", "gather", "start", "add=V", "do", "complete", "complete"], "complete"),
]


@pytest.mark.parametrize("steps,failing", ORDERING, ids=[" ".join(s) for s, _ in ORDERING])
def test_out_of_order_is_bad_state(btrfs, vssd, steps, failing):
    v, w = btrfs.subvolume("v"), btrfs.subvolume("w")
    steps = [s.replace("=V", f"={v}").replace("=W", f"={w}").replace("=X", "={12345678-1234-1234-1234-123456789abc}")
             for s in steps]
    res = vssd.requestor(*steps)
    name = failing.split("=")[0] if failing.startswith(("add", "disable")) else failing
    assert res[-1].step == name, res
    assert res[-1].hr == "VSS_E_BAD_STATE", res
    assert res[-1].message, "a refused call says why"
    assert all(r.hr == "S_OK" for r in res[:-1]), res
    # A refused call changes nothing: the object still works for what was in order.
    assert vssd.list_shadows() == [] or steps.count("do") > 0


def test_refused_call_leaves_object_usable(btrfs, vssd):
    v = btrfs.subvolume("v")
    res = vssd.requestor("create", "init", "do", "context=app_rollback", "gather", "start", "start", f"add={v}",
                         "do")
    assert [r.hr for r in res] == ["S_OK", "S_OK", "VSS_E_BAD_STATE", "S_OK", "S_OK", "S_OK", "VSS_E_BAD_STATE",
                                   "S_OK", "S_OK"]
    assert by_step(res, "do")[-1].detail == "VSS_S_ASYNC_FINISHED"
    assert len(vssd.list_shadows()) == 1


def test_null_out_pointers_are_invalidarg(btrfs, vssd):
    v = btrfs.subvolume("v")
    res = vssd.requestor("create", "init", "gather", "start", f"add={v}", "do-async", "wait", "nullargs")
    nulls = [r for r in res if r.step.startswith("null:")]
    assert len(nulls) >= 19
    for r in nulls:
        assert r.hr == "E_INVALIDARG", r


def test_bad_arguments(btrfs, vssd):
    v = btrfs.subvolume("v")
    res = vssd.requestor("create", "init-xml", "init", "context=0x12345", "context=0x29", "state-bad", "state",
                         "start", "add=", f"add={v}@not-an-id", "props-of=nonsense", "do")
    got = {r.step: r.hr for r in res}
    assert got["init-xml"] == "VSS_E_INVALID_XML_DOCUMENT"
    assert got["init"] == "S_OK"
    assert got["context=0x12345"] == "E_INVALIDARG"
    assert got["context=0x29"] == "VSS_E_UNSUPPORTED_CONTEXT"  # transportable
    assert got["state-bad"] == "E_INVALIDARG"
    assert got["state"] == "S_OK"
    assert [r.hr for r in by_step(res, "add")] == ["E_INVALIDARG", "VSS_E_PROVIDER_NOT_REGISTERED"]
    assert got["props-of"] == "VSS_E_OBJECT_NOT_FOUND"
    assert got["do"] == "VSS_E_BAD_STATE"  # nothing was added
