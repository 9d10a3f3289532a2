#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The LVM bench, run inside the test guest (bench/bench-lvm.sh boots it).

On a VG over the guest's disks: 16 thin LVs and 4 classic LVs, each an
ext4. For sets of 1, 4 and 16 thin LVs and of the 4 classic ones it times,
interleaved round by round:

  vss   `vssadmin create shadow --for=...` against a private vssd: the
        set's hold window (hold_window_us: every member frozen, then all
        the snapshots, then all thawed) and the command's whole time;
  raw   what a script (or snapm) does today, one LV after another:
        `lvcreate -s` of each, whose own suspend freezes that LV alone
        while its snapshot is made. (fsfreeze first, then lvcreate -s,
        fails on this 6.1 kernel: lvcreate's lockfs meets the frozen
        filesystem with EBUSY.) Its "hold" is the span from the first
        LV's lvcreate to the last one's end: the members are cut at as
        many instants.

Prints one JSON line per sample and a summary (medians).
"""

import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("VSS_BENCH_RUNS", "3"))
VG = "vssbench"

_spec = importlib.util.spec_from_file_location("vss_integration_conftest", ROOT / "tests" / "integration" / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)


def run(*cmd, check=True):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"bench-lvm: {' '.join(map(str, cmd))} failed ({p.returncode}): {p.stderr}")
    return p


def lvm(*args, check=True):
    return run("lvm", *args, check=check)


def setup(workdir):
    disks = os.environ["VSSGUEST_DISKS"].split()
    lvm("pvcreate", "-q", "-y", "-ff", *disks)
    lvm("vgcreate", "-q", VG, *disks)
    lvm("lvcreate", "-q", "-L", "2G", "-T", f"{VG}/pool")
    vols = {"thin": [], "classic": []}
    for kind, count in (("thin", 16), ("classic", 4)):
        for i in range(count):
            name = f"{kind}{i}"
            if kind == "thin":
                lvm("lvcreate", "-q", "-V", "64M", "-T", f"{VG}/pool", "-n", name)
            else:
                lvm("lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-L", "64M", "-n", name, VG)
            mnt = workdir / name
            mnt.mkdir()
            run("mkfs.ext4", "-q", "-F", f"/dev/{VG}/{name}")
            run("mount", f"/dev/{VG}/{name}", mnt)
            (mnt / "data").write_bytes(os.urandom(1 << 20))
            vols[kind].append((name, mnt))
    os.sync()
    return vols


def teardown(workdir):
    for target in integration.mounts_below(workdir):
        integration.unmount(target)
    lvm("vgremove", "-q", "-ff", "-y", VG, check=False)
    lvm("pvremove", "-q", "-y", "-ff", *os.environ["VSSGUEST_DISKS"].split(), check=False)


def vss_sample(vssd, vols):
    t0 = time.monotonic()
    p = vssd.vssadmin("create", "shadow", *[f"--for={m}" for _, m in vols], "--json")
    total = time.monotonic() - t0
    out = json.loads(p.stdout)
    hold = out[0]["hold_window_us"] / 1e6
    vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
    return hold, total


def raw_sample(vols, kind):
    names = []
    t0 = time.monotonic()
    for name, _ in vols:
        snap = f"raw-{name}"
        extra = ["-L", "16M"] if kind == "classic" else []
        lvm("lvcreate", "-q", "-s", *extra, "-n", snap, f"{VG}/{name}")
        names.append(f"{VG}/{snap}")
    span = time.monotonic() - t0
    lvm("lvremove", "-q", "-y", *names)
    return span, span


def main():
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="vss-bench-lvm-", dir="/tmp"))
    vols = setup(workdir)
    vssd = integration.Daemon(workdir, "MaxImageNesting = 2\n")
    vssd.start()
    cases = [("thin", 1), ("thin", 4), ("thin", 16), ("classic", 4)]
    samples = {}
    try:
        for rnd in range(ROUNDS):
            for kind, n in cases:
                members = vols[kind][:n]
                # Alternate which goes first, so that drift hits both.
                order = ("vss", "raw") if rnd % 2 == 0 else ("raw", "vss")
                for what in order:
                    hold, total = vss_sample(vssd, members) if what == "vss" else raw_sample(members, kind)
                    key = f"{n} {kind}"
                    samples.setdefault((key, what), []).append((hold, total))
                    print(json.dumps({"case": key, "what": what, "round": rnd, "hold_s": round(hold, 4),
                                      "total_s": round(total, 4)}), flush=True)
    finally:
        vssd.stop()
        teardown(workdir)
    print(f"\nbench-lvm: {ROUNDS} rounds, kernel {os.uname().release}, medians (s):")
    print(f"{'set':<12} {'vss hold':>9} {'vss create':>11} {'raw span':>9} {'raw/vss hold':>13}")
    for kind, n in cases:
        key = f"{n} {kind}"
        vh = statistics.median(h for h, _ in samples[(key, "vss")])
        vt = statistics.median(t for _, t in samples[(key, "vss")])
        rh = statistics.median(h for h, _ in samples[(key, "raw")])
        print(f"{key:<12} {vh:>9.3f} {vt:>11.3f} {rh:>9.3f} {rh / vh if vh else 0:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
