# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fault walk: every kernel and library call vssd depends on fails, in
turn, on each of its calls in one scenario (a set of two image volumes and a
btrfs subvolume made, exposed, unexposed, deleted, vssd restarted, the rest
deleted). After every step of every run the promises hold: no filesystem
stays frozen, no snapshot is on disk without its catalog row nor a row
without its snapshot, no exposure mount is unrecorded, vssd answers, and no
sanitizer complains.

The run of one point and call starts a fresh private vssd with
VSS_FAULTS="POINT:N:ERRNO". Call counts restart with the process, so the
walk goes over the calls of the first vssd (the restarted one runs clean),
then over those of the restarted one (the first runs clean); a point is
walked until its Nth call no longer happens. VSS_LONG=1 walks every point
with more errnos; make check walks the points the short list names.
"""

import collections
import json
import os
import re

import pytest

from conftest import Daemon, run, assert_no_sanitizer_report, is_frozen, mounts_below, thaw

NESTING = "MaxImageNesting = 2\n"
LONG = os.environ.get("VSS_LONG") == "1"

POINTS = ["freeze", "thaw", "clone", "sync", "snapshot", "remove", "mount", "umount", "loop", "catalog", "fork",
          "exec"]
# (point, errno) walked; the short walk keeps the points every step of the
# scenario goes through at least once.
WALK = [(p, "EIO") for p in POINTS] + [(p, "ENOSPC") for p in ("clone", "snapshot", "catalog", "sync")]
SHORT = {("freeze", "EIO"), ("thaw", "EIO"), ("clone", "ENOSPC"), ("snapshot", "EIO"), ("remove", "EIO"),
         ("mount", "EIO"), ("umount", "EIO"), ("loop", "EIO"), ("catalog", "EIO"), ("fork", "EIO")}
# A runaway walk (a point called on and on) stops here and fails.
MAX_CALLS = 60

CODE = re.compile(r"\b((?:VSS_)?E_[A-Z_]+) \(0x[0-9a-f]{8}\)")


class Walk:
    """The filesystems of the walk, made once; each run has a vssd of its
    own (its own state, socket and exposure directory)."""

    config = ""  # more vssd configuration

    def __init__(self, workdir, host, images, btrfs):
        self.workdir = workdir
        self.host = host
        self.a, self.b = images(2)
        self.btrfs = btrfs
        self.sub = btrfs.subvolume("sub")
        self.own_mounts = {str(fs.mnt) for fs in (host, self.a, self.b, btrfs)}
        self.runs = 0
        self.codes = collections.Counter()
        self.injected = 0
        self.broken = []

    def daemon(self, run_dir, faults):
        d = Daemon(run_dir, NESTING + self.config)
        self.set_faults(d, faults)
        return d

    @staticmethod
    def set_faults(vssd, faults):
        # Taken out of the runner's own environment too: a clean vssd is clean.
        vssd.env.pop("VSS_FAULTS", None)
        if faults:
            vssd.env["VSS_FAULTS"] = faults

    def check(self, vssd, what):
        """The promises, after one step; a broken one is kept (the walk goes
        on, to show every one) and fails the test at its end."""
        where = f"{vssd.env.get('VSS_FAULTS', 'no faults')}, after {what}"

        def broken(text):
            self.broken.append(f"{where}: {text}")

        for fs in (self.a.mnt, self.b.mnt, self.btrfs.mnt):
            if is_frozen(fs):
                broken(f"{fs} left frozen")
                thaw(fs)
        assert vssd.proc.poll() is None, f"vssd died ({where}):\n{vssd.log()}"
        vssd.vssadmin("list", "providers")
        listed = vssd.list_shadows()
        rows = sorted(os.path.basename(s["snapshot_path"]) for s in listed if s["snapshot_path"])
        on_disk = sorted(self.host.store_entries() + self.btrfs.store_entries())
        if rows != on_disk:
            broken(f"the catalog lists {sorted(set(rows) - set(on_disk))} not on disk, "
                   f"the stores hold {sorted(set(on_disk) - set(rows))} not in the catalog")
        if not all(s["snapshot_path"] for s in listed):
            broken(f"a row without its snapshot: {listed}")
        exposed = {s["exposed_name"] for s in listed if s["exposed_name"]}
        mounted = set(mounts_below(self.workdir)) - self.own_mounts
        if not mounted <= exposed:
            broken(f"mounts {mounted - exposed} not in the catalog")
        if not exposed <= mounted:
            broken(f"the catalog says exposed at {exposed - mounted}, not mounted")
        assert_no_sanitizer_report(vssd.log(), "vssd")

    def step(self, vssd, what, *args):
        p = vssd.vssadmin(*args, check=False)
        if p.returncode != 0:
            m = CODE.search(p.stderr)
            assert m, f"{what} failed without naming a VSS code:\n{p.stderr}"
            self.codes[m.group(1)] += 1
        self.check(vssd, what)
        return p

    def scenario(self, first, second, run_dir):
        """One run: first is the first vssd's VSS_FAULTS, second the
        restarted one's. Returns the log of every start."""
        at = run_dir / "at"
        at.mkdir()
        vssd = self.daemon(run_dir, first)
        vssd.start()
        made = []
        try:
            self.check(vssd, "start")
            p = self.step(vssd, "create", "create", "shadow", f"--for={self.a.mnt}", f"--for={self.b.mnt}",
                          f"--for={self.sub}", "--json")
            made = json.loads(p.stdout) if p.returncode == 0 else []
            if made:
                image, other, sub = made
                self.step(vssd, "expose", "expose", f"--shadow={image['id']}")
                self.step(vssd, "expose --at", "expose", f"--shadow={sub['id']}", f"--at={at}")
                self.step(vssd, "unexpose", "unexpose", f"--shadow={image['id']}")
                self.step(vssd, "delete one", "delete", "shadows", f"--shadow={other['id']}", "--quiet")
            # The restart: reconciliation runs in the new vssd.
            vssd.stop()
            self.set_faults(vssd, second)
            vssd.start()
            self.check(vssd, "restart")
            if made:
                self.step(vssd, "delete the rest", "delete", "shadows", f"--set={made[0]['set_id']}", "--quiet")
            vssd.stop()
            # Whatever a failed delete left (consistently) goes, by a clean
            # vssd on the same catalog: the next run starts from nothing.
            self.set_faults(vssd, None)
            vssd.start()
            for v in (self.a.mnt, self.b.mnt, self.sub):
                vssd.vssadmin("delete", "shadows", f"--for={v}", "--all", "--quiet", check=False)
            self.check(vssd, "the clean-up")
            vssd.stop()
        finally:
            if vssd.proc:
                vssd.kill()
        if self.host.store_entries() or self.btrfs.store_entries():
            self.broken.append(f"{first or second}: left on disk after a clean delete: "
                               f"{self.host.store_entries() + self.btrfs.store_entries()}")
            for e in self.btrfs.store().iterdir() if self.btrfs.store().exists() else []:
                run("btrfs", "subvolume", "delete", e, check=False)
            for e in self.host.store().iterdir() if self.host.store().exists() else []:
                e.unlink()
        self.runs += 1
        return vssd.log()

    def walk(self, point, errno):
        walked = 0
        for phase in (0, 1):
            for n in range(1, MAX_CALLS + 1):
                fault = f"{point}:{n}:{errno}"
                run_dir = self.workdir / f"run-{point}-{errno}-{phase}-{n}"
                run_dir.mkdir()
                log = self.scenario(fault if phase == 0 else None, fault if phase == 1 else None, run_dir)
                if f"into {point} call {n}\n" not in log:
                    break
                self.injected += 1
                walked += 1
            else:
                pytest.fail(f"{point} was called more than {MAX_CALLS} times in one run")
        return walked


@pytest.fixture
def walk(workdir, host, images, btrfs):
    d, _ = workdir
    return Walk(d, host, images, btrfs)


def test_fault_walk(walk):
    # VSS_FAULT_WALK="clone:EIO,..." walks just those (to chase one).
    only = os.environ.get("VSS_FAULT_WALK")
    points = [tuple(w.split(":")) for w in only.split(",")] if only else [w for w in WALK if LONG or w in SHORT]
    calls = {}
    for point, errno in points:
        calls[f"{point}:{errno}"] = walk.walk(point, errno)
    summary = ", ".join(f"{k}={v}" for k, v in calls.items())
    codes = ", ".join(f"{k}={v}" for k, v in sorted(walk.codes.items()))
    print(f"\nfault walk: {len(points)} points, {walk.injected} calls injected in {walk.runs} runs: {summary}\n"
          f"failures seen: {codes}")
    assert not walk.broken, "promises broken:\n" + "\n".join(walk.broken)
    # Every point the scenario reaches was injected at least once.
    never = [k for k, v in calls.items() if v == 0 and not k.startswith(("fork:", "exec:"))]
    assert not never, f"never reached: {never}"


# The clone calls of a set of the two image volumes: 1-2 the whole images
# before the hold, 3-4 what was written since, 5-6 inside the hold.
@pytest.mark.parametrize("fault", ["freeze:1:delay=1500", "clone:6:delay=1500"])
def test_delay_past_the_hold_timeout(walk, fault):
    """A freeze or a clone that stalls past HoldTimeoutMSec: the set fails
    with a VSS code and every promise holds."""
    walk.config = "HoldTimeoutMSec = 500\n"
    run_dir = walk.workdir / "delay"
    run_dir.mkdir()
    walk.scenario(fault, None, run_dir)
    assert not walk.broken, "promises broken:\n" + "\n".join(walk.broken)
    assert sum(walk.codes.values()) >= 1, "the stalled set did not fail"
