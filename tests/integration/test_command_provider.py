# SPDX-License-Identifier: LGPL-2.1-or-later
"""The command provider (docs/COMMAND-PROVIDER.md), declared in vssd.conf, with
san-provider.sh acting as a storage array: its snapshots are reflink clones of
the image files behind the test's loop filesystems. The real vssd, real
freezes, real clones."""

import json
import os
import pathlib
import shutil
import signal

import pytest

from conftest import VSSADMIN, is_frozen, run, wait_until

SCRIPT = pathlib.Path(__file__).resolve().parent / "san-provider.sh"
SAN_ID = "{5a4e0c2d-8f41-4c7e-9b1a-3d2f6e7a8b90}"


class San:
    """The array: its directory on the test's reflink host, a private copy of
    the script (a program vssd runs as root must be root's, mode 0755)."""

    def __init__(self, workdir, host):
        self.dir = host.mnt / "san"
        self.dir.mkdir()
        self.script = workdir / "san-provider.sh"
        shutil.copy(SCRIPT, self.script)
        os.chmod(self.script, 0o755)

    def config(self, pattern, extra=""):
        return (f"[Provider]\nName = san\nType = command\nId = {SAN_ID}\nVolumes = {pattern}\n"
                f"Command = {self.script} {self.dir}\n{extra}")

    def log(self):
        path = self.dir / "log"
        return path.read_text().splitlines() if path.exists() else []

    def fail(self, step, action):
        (self.dir / "fail").write_text(f"{step} {action}\n")

    def entries(self):
        return sorted(p.name for p in self.dir.iterdir() if p.name not in ("log", "fail", "probe"))


@pytest.fixture
def san(workdir, host):
    d, _ = workdir
    return San(d, host)


def create(vssd, *vols, check=True):
    p = vssd.vssadmin("create", "shadow", *[f"--for={v.mnt}" for v in vols], "--json", check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def test_san_set_of_two_volumes(san, images, make_fs, host, daemon_factory, workdir):
    d, _ = workdir
    a = images(1)[0]
    b = make_fs("xfs", "512M", "vol1", on=host)
    vssd = daemon_factory(config=san.config(f"{d}/vol*", "CommitGroup = yes\n"))
    (a.mnt / "f").write_text("a before\n")
    (b.mnt / "g").write_text("b before\n")

    providers = json.loads(vssd.vssadmin("list", "providers", "--json").stdout)
    assert [p["id"] for p in providers if p["name"] == "san"] == [SAN_ID]
    # Asked first: the image provider would take these volumes otherwise.
    assert providers[0]["name"] == "san"

    out = create(vssd, a, b)
    (a.mnt / "f").write_text("a after\n")
    assert [s["provider"] for s in out] == ["san", "san"]
    assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
    for s in out:
        assert s["snapshot_path"] == f"{san.dir}/{s['id']}.img"
        assert os.path.isfile(s["snapshot_path"])
    # One commit for the group, run while both filesystems were frozen;
    # nothing is frozen now.
    assert [line for line in san.log() if line.startswith("commit")] == ["commit 2 frozen frozen"], san.log()
    assert not is_frozen(a.mnt) and not is_frozen(b.mnt)
    assert not (vssd.dir / "frozen").exists()

    listed = {s["id"]: s for s in vssd.list_shadows()}
    assert set(listed) == {s["id"] for s in out}
    assert all(listed[s["id"]]["snapshot_path"] == s["snapshot_path"] for s in out)

    # Exposed read-only from the array's clone: the volume as it was.
    sa = next(s for s in out if s["volume"] == str(a.mnt))
    sb = next(s for s in out if s["volume"] == str(b.mnt))
    for s, name, text in ((sa, "f", "a before\n"), (sb, "g", "b before\n")):
        vssd.vssadmin("expose", f"--shadow={s['id']}")
        where = next(x for x in vssd.list_shadows() if x["id"] == s["id"])["exposed_name"]
        assert open(os.path.join(where, name)).read() == text
        assert "Read-only file system" in run("touch", os.path.join(where, "x"), check=False).stderr
        vssd.vssadmin("unexpose", f"--shadow={s['id']}")

    # Survives a restart: the catalog keeps what the commit printed.
    vssd.restart()
    assert {s["id"] for s in vssd.list_shadows()} == set(listed)

    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    assert vssd.list_shadows() == []
    assert san.entries() == []
    assert "delete 1" in san.log()


# Each step made to fail in turn: (the fail file, the code the requestor gets).
FAILURES = [
    ("is-supported exit:1", "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER"),
    ("is-supported exit:3", "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER"),
    ("is-supported hang", "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER"),
    ("prepare exit:10", "VSS_E_PROVIDER_VETO"),
    ("prepare exit:11", "VSS_E_INSUFFICIENT_STORAGE"),
    ("prepare exit:1", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("prepare hang", "VSS_E_PROVIDER_VETO"),
    ("commit exit:11", "VSS_E_INSUFFICIENT_STORAGE"),
    ("commit exit:12", "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED"),
    ("commit exit:77", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit garbage", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit partial", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit hang", "VSS_E_HOLD_WRITES_TIMEOUT"),
    # An abort that fails or hangs is followed by the delete command.
    ("commit partial\nabort exit:1", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("commit partial\nabort hang", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
    ("prepare exit:10\nabort garbage", "VSS_E_PROVIDER_VETO"),
]


def test_each_step_failing(san, images, daemon_factory, workdir):
    """Every way a command can fail, one after another on one vssd: the
    requestor gets the code the protocol names, nothing is left frozen, in the
    array or in the catalog, and the next set works."""
    d, _ = workdir
    a, b = images(2)
    vssd = daemon_factory(config=san.config(f"{d}/vol*", "CommitGroup = yes\nTimeoutMSec = 400\n"))
    for fail, code in FAILURES:
        san.fail(*fail.split(" ", 1)) if "\n" not in fail else (san.dir / "fail").write_text(fail + "\n")
        p = vssd.vssadmin("create", "shadow", f"--for={a.mnt}", f"--for={b.mnt}", "--provider=san", "--json",
                          check=False)
        assert p.returncode != 0 and code in p.stderr, (fail, p.stderr, vssd.log()[-3000:])
        assert not is_frozen(a.mnt) and not is_frozen(b.mnt), fail
        assert not (vssd.dir / "frozen").exists(), fail
        assert vssd.list_shadows() == [], fail
        assert san.entries() == [], (fail, san.entries(), san.log())
    # The next set works, with the default deadlines: 400 ms is short for a
    # real commit on a loaded machine. An is-supported that prints garbage
    # still supports the volume: its output is not read.
    vssd.config.write_text(vssd.config.read_text().replace("TimeoutMSec = 400\n", ""))
    vssd.restart()
    san.fail("is-supported", "garbage")
    out = create(vssd, a, b)
    assert [s["provider"] for s in out] == ["san", "san"]


def test_delete_failing_keeps_the_snapshot_listed(san, images, daemon_factory, workdir):
    """A delete that fails or hangs leaves the snapshot in the catalog (it
    still exists), with the code named; the next delete removes it. One
    already gone from the array is deleted all the same (idempotent)."""
    d, _ = workdir
    (a,) = images(1)
    vssd = daemon_factory(config=san.config(f"{d}/vol*", "DeleteTimeoutMSec = 400\n"))
    (s,) = create(vssd, a)
    for action in ("exit:1", "hang", "exit:10"):
        san.fail("delete", action)
        p = vssd.vssadmin("delete", "shadows", f"--shadow={s['id']}", "--quiet", check=False)
        code = "VSS_E_PROVIDER_VETO" if action == "exit:10" else "VSS_E_UNEXPECTED_PROVIDER_ERROR"
        assert p.returncode != 0 and code in p.stderr, (action, p.stderr)
        assert [x["id"] for x in vssd.list_shadows()] == [s["id"]]
        assert os.path.isfile(s["snapshot_path"])
    (san.dir / "fail").unlink()
    os.unlink(s["snapshot_path"])
    vssd.vssadmin("delete", "shadows", f"--shadow={s['id']}", "--quiet")
    assert vssd.list_shadows() == [] and san.entries() == []


def test_crash_inside_the_commit(san, images, daemon_factory, workdir):
    """vssd killed while the commit command runs: the guard thaws, and at the
    next start the set is deleted through the delete command, which finds the
    snapshots by the ids vss recorded before the cut (the commit never
    answered)."""
    d, _ = workdir
    a, b = images(2)
    vssd = daemon_factory(config=san.config(f"{d}/vol*", "CommitGroup = yes\nCommitTimeoutSec = 5\n"))
    san.fail("commit", "hang")
    client = vssd.background(VSSADMIN, "create", "shadow", f"--for={a.mnt}", f"--for={b.mnt}")
    wait_until(lambda: any("hangs in process group" in line for line in san.log()), what="the commit")
    group = int(next(line for line in san.log() if "hangs in process group" in line).split()[-1])
    try:
        assert "commit 2 frozen frozen" in san.log()
        entries = san.entries()
        assert len([e for e in entries if e.endswith(".reserved")]) == 2
        vssd.kill()
        client.communicate(timeout=30)
        wait_until(lambda: not is_frozen(a.mnt) and not is_frozen(b.mnt), what="the guard to thaw")
    finally:
        os.killpg(group, signal.SIGKILL)
    (san.dir / "fail").unlink()
    vssd.start()
    vssd.wait_log("reconcile: catalog holds")
    assert vssd.list_shadows() == []
    assert san.entries() == []
    assert [line for line in san.log() if line.startswith("delete")] == ["delete 1", "delete 1"]


def test_mixed_set_with_an_image_member(san, images, daemon_factory, workdir, host):
    """One member the command provider claims, one the image provider takes:
    the commit command runs while the image member's filesystem is frozen as
    well, so the set is one instant across providers. The same volume twice
    is refused."""
    d, _ = workdir
    a, b = images(2)
    vssd = daemon_factory(config="MaxImageNesting = 2\n" + san.config(f"{d}/vol0"))
    (san.dir / "probe").write_text(f"{b.mnt}\n")
    out = create(vssd, a, b)
    assert sorted(s["provider"] for s in out) == ["image", "san"]
    assert {s["consistency"] for s in out} == {"crash-consistent across the set"}
    assert [line for line in san.log() if line.startswith("commit")] == ["commit 1 frozen frozen"], san.log()
    vssd.vssadmin("delete", "shadows", "--all", "--quiet")
    assert san.entries() == [] and host.store_entries() == []

    p = create(vssd, a, a, check=False)
    assert p.returncode != 0 and "VSS_E_OBJECT_ALREADY_EXISTS" in p.stderr, p.stderr
    assert san.entries() == [] and vssd.list_shadows() == []


def test_list_command_lets_reconcile_find_what_exists(san, images, daemon_factory, workdir):
    """With a list command, reconcile asks the array what exists: a snapshot
    gone from the array loses its row, and one the array holds for vss that
    the catalog does not know (its set lost) is deleted through the delete
    command, by its id alone. Output the protocol does not allow changes
    nothing."""
    d, _ = workdir
    a, b = images(2)
    vssd = daemon_factory(config=san.config(f"{d}/vol*", f"ListCommand = {san.script} {san.dir} list\n"))
    (sa,) = create(vssd, a)
    (sb,) = create(vssd, b)
    orphan = "{0f1e2d3c-4b5a-4968-8776-655443322110}"
    (san.dir / f"{orphan}.img").write_bytes(b"")
    (san.dir / f"{orphan}.set").write_text("{11111111-2222-4333-8444-555555555555}\n")
    for suffix in (".img", ".set", ".reserved"):
        (san.dir / f"{sb['id']}{suffix}").unlink()

    # A broken list: nothing is dropped or deleted.
    san.fail("list", "garbage")
    vssd.restart()
    assert {s["id"] for s in vssd.list_shadows()} == {sa["id"], sb["id"]}
    assert f"{orphan}.img" in san.entries()
    assert "its list command printed other than records" in vssd.log()

    (san.dir / "fail").unlink()
    vssd.restart()
    assert [s["id"] for s in vssd.list_shadows()] == [sa["id"]]
    assert san.entries() == sorted(f"{sa['id']}{suffix}" for suffix in (".img", ".reserved", ".set"))
    assert "is not in the catalog; deleting it" in vssd.log()
    vssd.vssadmin("delete", "shadows", "--all", "--quiet")
    assert san.entries() == []
