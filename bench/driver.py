#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Driver for bench-create.sh; not meant to be run on its own.

  driver.py populate DIR FILES MIB
      write FILES files totalling MIB MiB of random data under DIR
      (10 subdirectories, sizes drawn log-normally from a fixed seed).

  driver.py run --vssadmin=... --socket=... --subvol=... --mnt=... ...
      time `vssadmin create shadow` and `btrfs subvolume snapshot -r`,
      interleaved, and (with --inproc) a set made in-process through libvss
      and a bare btrfs_util_create_snapshot() by vss-bench-create, in blocks
      that alternate with the whole-process pairs; print the report. Exit 1
      if any create or delete fails.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

from benchutil import fail, pct, run, version


def timed(cmd):
    """Run cmd as a whole process; return (seconds, CompletedProcess)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t1 = time.perf_counter()
    return t1 - t0, p


# ---------------------------------------------------------------- populate

def populate(root, nfiles, mib):
    rng = random.Random(20240601)
    total = mib * 1024 * 1024
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(nfiles)]
    scale = total / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[-1] += total - sum(sizes)
    ndirs = 10
    for d in range(ndirs):
        os.mkdir(os.path.join(root, f"d{d:02d}"))
    for i, size in enumerate(sizes):
        path = os.path.join(root, f"d{i % ndirs:02d}", f"f{i:04d}.bin")
        with open(path, "wb") as f:
            left = size
            while left > 0:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n


# ---------------------------------------------------------------- bench

def settle(mnt):
    """Commit and wait for deleted subvolumes to be cleaned (untimed), so
    neither kind of run pays for the previous run's cleanup."""
    run(["btrfs", "filesystem", "sync", mnt], "btrfs filesystem sync")
    run(["btrfs", "subvolume", "sync", mnt], "btrfs subvolume sync")


class Bench:
    def __init__(self, a):
        self.a = a
        self.vss = [a.vssadmin, "--socket", a.socket]
        self.raw_n = 0

    def vss_once(self):
        """One timed create shadow; returns (seconds, hold_window_us)."""
        a = self.a
        dt, p = timed(self.vss + ["create", "shadow", f"--for={a.subvol}", "--json"])
        if p.returncode != 0:
            fail("vssadmin create shadow", p)
        try:
            created = json.loads(p.stdout)
            set_id = created[0]["set_id"]
            snap = created[0]["snapshot_path"]
        except (ValueError, LookupError, TypeError) as e:
            fail(f"cannot parse create shadow --json output ({e})", p)
        if not os.path.isdir(snap):
            fail(f"create shadow reported {snap}, which does not exist", p)
        # vss's own record of the hold window, from the catalog.
        lp = run(self.vss + ["list", "shadows", f"--set={set_id}", "--json"],
                 "vssadmin list shadows")
        try:
            rows = [r for r in json.loads(lp.stdout) if r["set_id"] == set_id]
            hold = int(rows[0]["hold_window_us"])
            state = rows[0]["state"]
        except (ValueError, LookupError, TypeError) as e:
            fail(f"cannot read hold_window_us of set {set_id} ({e})", lp)
        if state != "created":
            fail(f"set {set_id} is in state {state!r}, expected 'created'", lp)
        run(self.vss + ["delete", "shadows", f"--set={set_id}", "--quiet"],
            "vssadmin delete shadows")
        if os.path.lexists(snap):
            fail(f"{snap} still exists after delete shadows --set={set_id}")
        settle(a.mnt)
        return dt, hold

    def raw_once(self):
        a = self.a
        self.raw_n += 1
        dest = os.path.join(a.raw_dir, f"snap-{self.raw_n:03d}")
        dt, p = timed(["btrfs", "subvolume", "snapshot", "-r", a.subvol, dest])
        if p.returncode != 0:
            fail("btrfs subvolume snapshot -r", p)
        run(["btrfs", "subvolume", "delete", dest], "btrfs subvolume delete")
        settle(a.mnt)
        return dt


# Pairs per block: the whole-process pairs and the in-process ones take turns
# in blocks of this many, so that a change in the machine's load hits both.
BLOCK = 10


def inproc_block(a, runs, warmup):
    """One block of in-process pairs from vss-bench-create: a list of
    (pair, position, kind, seconds, {phase: seconds})."""
    p = subprocess.run([a.inproc, a.subvol, a.raw_dir, str(runs), str(warmup)],
                       env=dict(os.environ, VSS_SOCKET=a.socket),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        fail("vss-bench-create", p)
    out = []
    for line in p.stdout.decode().splitlines():
        f = line.split()
        if len(f) < 5 or f[0] != "sample":
            fail(f"vss-bench-create printed {line!r}", p)
        phases = {k: int(v) / 1e9 for k, v in (x.split("=", 1) for x in f[5:])}
        out.append((int(f[1]), int(f[2]), f[3], int(f[4]) / 1e9, phases))
    return out


def dataset(subvol):
    files = size = 0
    for dirpath, _, names in os.walk(subvol):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, n)).st_size
    return files, size


def bench(a):
    b = Bench(a)
    load0 = os.getloadavg()[0]
    t_vss, t_raw, holds = [], [], []
    t_lib, t_bare, phases = [], [], {}
    samples = []  # (pair, position in pair, kind, seconds, hold_us)

    print(f"bench: {a.warmup} warm-up pair(s)...", file=sys.stderr)
    for _ in range(a.warmup):
        b.vss_once()
        b.raw_once()
    print(f"bench: {a.runs} timed pairs" + (" of each kind" if a.inproc else "") + "...", file=sys.stderr)
    for i in range(a.runs):
        # Alternate the order inside each pair (AB, BA, AB...) so neither
        # kind always runs first after the other's settle.
        order = ("vss", "raw") if i % 2 == 0 else ("raw", "vss")
        for pos, kind in enumerate(order):
            if kind == "vss":
                dt, hold = b.vss_once()
                t_vss.append(dt)
                holds.append(hold / 1e6)
            else:
                dt, hold = b.raw_once(), ""
                t_raw.append(dt)
            samples.append((i, pos, kind, dt, hold))
        if a.inproc and ((i + 1) % BLOCK == 0 or i + 1 == a.runs):
            # As many in-process pairs as whole-process ones so far.
            n = i + 1 - len(t_lib)
            for pair, pos, kind, dt, ph in inproc_block(a, n, a.warmup if not t_lib else 0):
                (t_lib if kind == "vss" else t_bare).append(dt)
                for k, v in ph.items():
                    phases.setdefault(k, []).append(v)
                samples.append((len(t_lib) - 1 if kind == "vss" else len(t_bare) - 1, pos,
                                "lib-" + kind, dt, ""))
        if (i + 1) % 10 == 0:
            print(f"bench:   {i + 1}/{a.runs}", file=sys.stderr)

    if a.samples:
        with open(a.samples, "w") as f:
            f.write("pair,position,kind,seconds,hold_window_us\n")
            for r in samples:
                f.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.6f},{r[4]}\n")

    files, size = dataset(a.subvol)
    st = os.statvfs(a.mnt)
    fs_size = st.f_blocks * st.f_frsize
    fs_used = (st.f_blocks - st.f_bfree) * st.f_frsize
    mib = 1024 * 1024

    def ms(x):
        return f"{x * 1e3:8.2f} ms"

    def row(name, xs):
        print(f"{name:<26}{ms(statistics.median(xs))}{ms(pct(xs, 0.9))}"
              f"{ms(min(xs))}{ms(max(xs))}")

    m_vss, m_raw = statistics.median(t_vss), statistics.median(t_raw)
    print(f"vss bench: create shadow vs btrfs subvolume snapshot -r "
          f"({a.runs} runs each, {files} files / {size / mib:.0f} MiB)")
    print(f"{'':<26}{'median':>11}{'p90':>11}{'min':>11}{'max':>11}")
    print("(a) whole processes")
    row("vssadmin create shadow", t_vss)
    row("btrfs snapshot -r", t_raw)
    print(f"{'ratio (median/median)':<26}{m_vss / m_raw:8.2f}x    "
          f"= median(vssadmin) / median(raw)")
    row("hold window (vss record)", holds)
    print("  (hold window: hold_window_us of each set, from `vssadmin list shadows --json`)")
    if a.inproc:
        m_lib, m_bare = statistics.median(t_lib), statistics.median(t_bare)
        print("(b) in one process (vss-bench-create)")
        row("libvss set", t_lib)
        row("btrfs_util_create_snapshot", t_bare)
        print(f"{'ratio (median/median)':<26}{m_lib / m_bare:8.2f}x    "
              f"= median(libvss set) / median(btrfs_util)")
        print("  libvss set, median of each call (ms): " +
              ", ".join(f"{k} {statistics.median(v) * 1e3:.2f}" for k, v in phases.items()))
    print(f"  kernel {os.uname().release}, {os.cpu_count()} CPU(s), "
          f"{version(['btrfs', '--version'])}, {version([a.vssd, '--version'])}, "
          f"1-min load {load0:.2f} before / {os.getloadavg()[0]:.2f} after")
    print(f"  filesystem: btrfs on {a.device or 'a loop device'}, {fs_size / 2**30:.1f} GiB "
          f"(sparse image), {fs_used / mib:.0f} MiB used")
    print(f"  data set: subvolume 'data', {files} files in 10 dirs, "
          f"{size / mib:.1f} MiB of random bytes")
    print(f"  method: {a.warmup} uncounted warm-up pair(s), then {a.runs} interleaved pairs "
          f"(order AB, BA, AB...);\n"
          f"          (a) each run is a whole process timed with perf_counter,\n"
          f"          (b) each run is timed in the process with CLOCK_MONOTONIC, in blocks of\n"
          f"          {BLOCK} pairs after each {BLOCK} of (a); the snapshot is deleted and the fs\n"
          f"          settled after each run, outside the timing")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "populate":
        populate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("--vssadmin", required=True)
    ap.add_argument("--vssd", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--subvol", required=True)
    ap.add_argument("--mnt", required=True)
    ap.add_argument("--raw-dir", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="")
    ap.add_argument("--samples", default="", help="also write every sample to this CSV")
    ap.add_argument("--inproc", default="", help="vss-bench-create, for the in-process pairs")
    try:
        bench(ap.parse_args())
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
