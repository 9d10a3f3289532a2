# SPDX-License-Identifier: LGPL-2.1-or-later
"""The image provider: filesystems in image files on a reflink-capable host,
held (frozen) together while their images are cloned, under a guard that
always thaws."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import REQUESTOR, by_step, is_frozen, parse_results, run, wait_until

# The host filesystem of these tests is itself on a loop device, so an image
# on it is nested two levels deep.
NESTING = "MaxImageNesting = 2\n"


def wait_for_hold(marker, settle=0.3):
    """Wait until vssd starts holding writes (its marker appears), then let the
    freezes happen: probing with FIFREEZE before vssd's own would make vssd's
    fail. Returns when the marker appeared."""
    wait_until(marker.exists, what="the hold")
    start = time.monotonic()
    time.sleep(settle)
    return start


def create(vssd, *vols, check=True):
    p = vssd.vssadmin("create", "shadow", *[f"--for={v}" for v in vols], "--json", check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def test_two_image_volumes_are_one_instant(host, images, daemon_factory):
    a, b = images(2)
    vssd = daemon_factory(config=NESTING)
    (a.mnt / "f").write_text("a\n")
    (b.mnt / "f").write_text("b\n")
    out = create(vssd, a.mnt, b.mnt)
    assert [s["provider"] for s in out] == ["image", "image"]
    assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
    for s in out:
        assert s["snapshot_path"].startswith(str(host.store()) + "/") and s["snapshot_path"].endswith(".img")
        assert os.path.isfile(s["snapshot_path"])
        assert s["hold_window_us"] > 0
    # Nothing stays frozen, the marker and the guard are gone.
    assert not is_frozen(a.mnt) and not is_frozen(b.mnt)
    assert not (vssd.dir / "frozen").exists()
    assert run("pgrep", "-P", str(vssd.proc.pid), "vssd-guard", check=False).stdout == ""
    (a.mnt / "after").write_text("writable\n")
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    assert host.store_entries() == []


def test_xfs_guest_and_image_file_given_directly(host, make_fs, daemon_factory):
    x = make_fs("xfs", "512M", "xfsvol", on=host)
    unmounted = make_fs("ext4", "64M", "loose", on=host, mount=False)
    vssd = daemon_factory(config=NESTING)
    out = create(vssd, x.mnt, unmounted.image)
    assert [s["volume"] for s in out] == [str(x.mnt), str(unmounted.image)]
    # Nobody vss knows writes to an unmounted image: it cannot be held, so
    # the set is not one instant.
    assert out[0]["consistency"] == "crash-consistent per volume"
    # The image of a mounted volume, given directly, is held like its mount.
    out = create(vssd, x.image)
    assert out[0]["consistency"] == "crash-consistent across the set"
    p = create(vssd, x.mnt, x.image, check=False)
    assert "VSS_E_OBJECT_ALREADY_EXISTS" in p.stderr


def test_mixed_set_with_btrfs(btrfs, images, daemon_factory):
    (a,) = images(1)
    sub = btrfs.subvolume("sub")
    vssd = daemon_factory(config=NESTING)
    out = create(vssd, a.mnt, sub)
    assert [s["provider"] for s in out] == ["image", "btrfs"]
    assert {s["consistency"] for s in out} == {"crash-consistent per volume"}


def test_nesting_limits(make_fs, images, daemon_factory, host):
    (a,) = images(1, fstype="xfs")
    # By default an image inside an image is refused: the host here is one.
    vssd = daemon_factory()
    p = create(vssd, a.mnt, check=False)
    assert p.returncode == 1 and "VSS_E_NESTED_VOLUME_LIMIT (0x8004232c)" in p.stderr
    vssd.stop()
    vssd = daemon_factory(config=NESTING)
    create(vssd, a.mnt)
    # Three levels: an image inside a volume (reflink-capable XFS) that is
    # itself in an image on the host.
    deep = make_fs("ext4", "32M", "deep", on=a)
    p = create(vssd, deep.mnt, check=False)
    assert "VSS_E_NESTED_VOLUME_LIMIT" in p.stderr and "3 levels" in p.stderr


def test_member_whose_image_lies_on_another_member(make_fs, daemon_factory):
    pool = make_fs("btrfs", "1G", "pool")
    vms = pool.subvolume("vms")
    guest = make_fs("ext4", "64M", "guest", on=vms)
    vssd = daemon_factory(config=NESTING)
    for order in ((vms, guest.mnt), (guest.mnt, vms)):
        res = vssd.requestor("create", "init", "gather", "start", *[f"add={v}" for v in order])
        adds = by_step(res, "add")
        assert [r.hr for r in adds] == ["S_OK", "VSS_E_NESTED_VOLUME_LIMIT"], res


def test_kill_vssd_inside_the_hold_window(images, daemon_factory):
    """The guard thaws every member within a second of vssd's death."""
    a, b = images(2)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "commit:1:delay=8000"})
    p = subprocess.Popen([REQUESTOR, "create", "init", "context=app_rollback", "gather", "start", f"add={a.mnt}",
                          f"add={b.mnt}", "do"], stdout=subprocess.PIPE, text=True, env=vssd.client_env())
    marker = vssd.dir / "frozen"
    wait_for_hold(marker)
    assert is_frozen(a.mnt) and is_frozen(b.mnt)
    vssd.kill()
    t = time.monotonic()
    wait_until(lambda: not is_frozen(a.mnt) and not is_frozen(b.mnt), timeout=1, what="the guard to thaw")
    assert time.monotonic() - t < 1
    assert not marker.exists()  # the guard removes it once all is thawed
    (a.mnt / "after").write_text("writable\n")
    p.communicate(timeout=30)
    # A new vssd removes the half-made set.
    del vssd.env["VSS_FAULTS"]
    vssd.start()
    assert "was being created when vssd stopped" in vssd.log()
    assert vssd.list_shadows() == []


def test_kill_vssd_and_its_guard(host, images, daemon_factory):
    """With the guard gone too, the marker makes the next vssd thaw first."""
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "commit:1:delay=20000"})
    p = subprocess.Popen([REQUESTOR, "create", "init", "context=app_rollback", "gather", "start", f"add={a.mnt}", "do"],
                         stdout=subprocess.PIPE, text=True, env=vssd.client_env())
    wait_for_hold(vssd.dir / "frozen")
    assert is_frozen(a.mnt)
    guard = run("pgrep", "-P", str(vssd.proc.pid), "vssd-guard").stdout.split()
    assert len(guard) == 1
    os.kill(int(guard[0]), signal.SIGKILL)
    vssd.kill()
    time.sleep(0.3)
    assert is_frozen(a.mnt)  # nobody left to thaw
    del vssd.env["VSS_FAULTS"]
    vssd.start()
    assert not is_frozen(a.mnt)
    assert "thawed it" in vssd.log()
    assert not (vssd.dir / "frozen").exists()
    p.communicate(timeout=30)
    assert host.store_entries() == []


TIMEOUTS = [
    ("FlushTimeoutMSec", "hold:2:delay=1500", "VSS_E_FLUSH_WRITES_TIMEOUT"),
    ("HoldTimeoutMSec", "commit:2:delay=3000", "VSS_E_HOLD_WRITES_TIMEOUT"),
]


@pytest.mark.parametrize("limit,fault,expected", TIMEOUTS, ids=[t[2] for t in TIMEOUTS])
def test_timeouts_thaw_at_once(host, images, daemon_factory, limit, fault, expected):
    a, b = images(2)
    vssd = daemon_factory(config=NESTING + f"{limit} = 300\n", env={"VSS_FAULTS": fault})
    p = subprocess.Popen([REQUESTOR, "create", "init", "context=app_rollback", "gather", "start", f"add={a.mnt}",
                          f"add={b.mnt}", "do"], stdout=subprocess.PIPE, text=True, env=vssd.client_env())
    start = wait_for_hold(vssd.dir / "frozen", settle=0.1)
    # Thawed at the limit, long before the stalled step returns.
    wait_until(lambda: not is_frozen(a.mnt) and not is_frozen(b.mnt), timeout=1.2, what="the thaw")
    assert time.monotonic() - start < 1.2
    assert p.poll() is None, "the thaw came only when the set ended"
    out, _ = p.communicate(timeout=30)
    assert by_step(parse_results(out), "do")[0].detail == expected
    assert host.store_entries() == [] and vssd.list_shadows() == []


def test_thaw_failure_that_recovers(images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "release:1:EIO*3"})
    out = create(vssd, a.mnt)
    assert out[0]["consistency"] == "crash-consistent across the set"
    assert "cannot thaw" in vssd.log()
    assert not is_frozen(a.mnt)


def test_thaw_failure_is_reboot_required(host, images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "release:1:EIO"})
    p = create(vssd, a.mnt, check=False)
    assert "VSS_E_REBOOT_REQUIRED (0x80042327)" in p.stderr
    # vssd could not thaw; its guard did, and nothing of the set remains.
    assert not is_frozen(a.mnt)
    assert "its guard did" in vssd.log()
    assert host.store_entries() == [] and vssd.list_shadows() == []


def test_failure_aborts_every_member(host, images, daemon_factory):
    a, b, c = images(3)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": "commit:2:EIO"})
    p = create(vssd, a.mnt, b.mnt, c.mnt, check=False)
    assert "VSS_E_UNEXPECTED_PROVIDER_ERROR" in p.stderr
    assert host.store_entries() == [] and vssd.list_shadows() == []
    assert not any(is_frozen(v.mnt) for v in (a, b, c))


def test_host_out_of_space(make_fs, daemon_factory):
    host = make_fs("xfs", "300M", "smallhost")
    guest = make_fs("ext4", "64M", "guest", on=host)
    vssd = daemon_factory(config=NESTING)
    # Fill the host to the last block.
    with open(host.mnt / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    subprocess.run(["dd", "if=/dev/zero", f"of={host.mnt}/filler2", "bs=4k"], capture_output=True)
    p = create(vssd, guest.mnt, check=False)
    assert "VSS_E_INSUFFICIENT_STORAGE (0x8004231f)" in p.stderr, p.stderr
    assert [e for e in host.store_entries()] == [] and vssd.list_shadows() == []
    assert not is_frozen(guest.mnt)
