#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Driver for bench-catalog.sh; not meant to be run on its own.

  catalog.py run --vssd=... --vssadmin=... --mnt=... --full=DIR --full-state=DIR --empty=DIR
                 --volume=PATH --list-volume=PATH --runs=N --expect=N

Two private vssds on the same btrfs: FULL, whose state directory holds the
generated catalog, and EMPTY, with an empty one. Each lives in its own
directory (socket, runtime directory, vssd.conf, vssd.log, vssd.pid; EMPTY's
state/ too). The
driver starts and stops them itself (by PID), and times, for each, in
interleaved rounds: its start-up with reconciliation, `list shadows --json`,
`list shadows --for=ONE`, `create shadow --for=ONE`, and reads its memory
from /proc. Exit 1 if anything fails or the catalog is not what it should be.
"""
import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import time

from benchutil import fail, pct, run, version


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, out=subprocess.DEVNULL):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE)
    t1 = time.perf_counter()
    return t1 - t0, p


# CPU seconds as well as wall time: on a machine that others load, the
# CPU a listing or a start-up costs is what stays comparable.
CPU = {}


class Daemon:
    def __init__(self, name, a, d, state):
        self.name, self.a, self.dir, self.state = name, a, d, state
        self.sock = os.path.join(d, "vssd.sock")
        self.proc = None
        self.adm = [a.vssadmin, "--socket", self.sock]

    def start(self):
        """Start vssd; the seconds from exec to its first answer."""
        log = open(os.path.join(self.dir, "vssd.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.a.vssd, "--socket", self.sock, "--state-dir", self.state,
             "--config", os.path.join(self.dir, "vssd.conf")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        with open(os.path.join(self.dir, "vssd.pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")
        while True:
            if self.proc.poll() is not None:
                fail(f"{self.name} vssd exited during start-up (see {self.dir}/vssd.log)")
            p = subprocess.run(self.adm + ["list", "providers"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if p.returncode == 0:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > 120:
                fail(f"{self.name} vssd did not answer within 120 s")
            time.sleep(0.005)

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        os.unlink(os.path.join(self.dir, "vssd.pid"))

    def cpu(self):
        """CPU seconds (user + system) vssd has used since it started."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measured(self, what, fn, *args):
        """fn's wall time; its CPU (vssd's and the client's) into CPU."""
        d0, c0 = self.cpu(), child_cpu()
        dt = fn(*args)
        CPU.setdefault((what, self.name), []).append((self.cpu() - d0, child_cpu() - c0))
        return dt

    def memory(self):
        """VmRSS and VmHWM in MiB."""
        got = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    got[k] = int(v.split()[0]) / 1024
        return got["VmRSS"], got["VmHWM"]

    def list_all(self):
        dt, p = timed(self.adm + ["list", "shadows", "--json"])
        if p.returncode:
            fail(f"{self.name}: list shadows --json", p)
        return dt

    def list_for(self, volume):
        dt, p = timed(self.adm + ["list", "shadows", f"--for={volume}", "--json"])
        if p.returncode:
            fail(f"{self.name}: list shadows --for", p)
        return dt

    def create(self, volume):
        dt, p = timed(self.adm + ["create", "shadow", f"--for={volume}", "--json"], subprocess.PIPE)
        if p.returncode:
            fail(f"{self.name}: create shadow", p)
        set_id = json.loads(p.stdout)[0]["set_id"]
        run(self.adm + ["delete", "shadows", f"--set={set_id}", "--quiet"], f"{self.name}: delete shadows")
        return dt

    def count(self, volume=None):
        cmd = self.adm + ["list", "shadows", "--json"] + ([f"--for={volume}"] if volume else [])
        p = run(cmd, f"{self.name}: list shadows")
        rows = json.loads(p.stdout)
        if len({r["id"] for r in rows}) != len(rows):
            fail(f"{self.name}: list shadows repeats a snapshot")
        if volume and any(r["volume"] != volume for r in rows):
            fail(f"{self.name}: list shadows --for={volume} lists another volume's snapshot")
        return len(rows)


def settle(mnt):
    run(["btrfs", "filesystem", "sync", mnt], "btrfs filesystem sync")
    run(["btrfs", "subvolume", "sync", mnt], "btrfs subvolume sync")


def med(xs):
    return statistics.median(xs)


def line(name, full, empty, unit="ms", scale=1000.0, goal=None):
    f, e = med(full) * scale, med(empty) * scale
    s = (f"  {name:<28} 100k {f:9.2f} (p90 {pct(full, 0.9) * scale:9.2f})  "
         f"empty {e:8.2f} (p90 {pct(empty, 0.9) * scale:8.2f}) {unit}  ratio {f / e:6.2f}x")
    if goal:
        s += f"   goal {goal[0]}: {'met' if goal[1](f, e) else 'MISSED'}"
    print(s)


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    for k in ("vssd", "vssadmin", "mnt", "full", "full-state", "empty", "volume", "list-volume"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--expect", type=int, default=0)
    a = ap.parse_args()

    full = Daemon("100k", a, a.full, a.full_state)
    empty = Daemon("empty", a, a.empty, os.path.join(a.empty, "state"))
    print(f"catalog bench: {version([a.vssd, '--version'])}, {version(['uname', '-r'])}, load {load()}")
    try:
        res = {k: ([], []) for k in ("start", "list", "listfor", "create")}
        mem = {}
        # Start-ups, alternating, each after a stop of the same daemon.
        for i in range(a.starts):
            for j, d in enumerate((full, empty) if i % 2 == 0 else (empty, full)):
                d.stop()
                res["start"][0 if d is full else 1].append(d.start())
                CPU.setdefault(("start", d.name), []).append((d.cpu(), 0.0))
        mem["after start"] = (full.memory(), empty.memory())
        n = full.count()
        n_one = full.count(a.list_volume)
        if a.expect and n != a.expect:
            fail(f"the catalog lists {n} snapshots, not {a.expect}")
        if empty.count() != 0:
            fail("the empty catalog is not empty")
        print(f"  catalog: {n} snapshots, {n_one} of {a.list_volume}")
        for d in (full, empty):
            d.create(a.volume)   # warm-up
        settle(a.mnt)
        for i in range(a.runs):
            order = (full, empty) if i % 2 == 0 else (empty, full)
            for d in order:
                res["list"][0 if d is full else 1].append(d.measured("list", d.list_all))
            for d in order:
                res["listfor"][0 if d is full else 1].append(d.measured("listfor", d.list_for, a.list_volume))
            for d in order:
                res["create"][0 if d is full else 1].append(d.measured("create", d.create, a.volume))
                settle(a.mnt)
        mem["after runs"] = (full.memory(), empty.memory())
        if full.count() != n:
            fail("the catalog's count changed over the runs")
        print(f"  medians of {a.runs} interleaved rounds ({a.starts} start-ups each):")
        line("vssd start + reconcile", *res["start"], "s", 1.0, ("< 3 s", lambda f, e: f < 3.0))
        line("list shadows --json", *res["list"], goal=("< 500 ms", lambda f, e: f < 500))
        line("list shadows --for=ONE", *res["listfor"], goal=("< 50 ms", lambda f, e: f < 50))
        line("create shadow --for=ONE", *res["create"], goal=("<= 1.1x", lambda f, e: f <= 1.1 * e))
        print("  CPU seconds, medians (vssd + client; create's client includes its delete):")
        for what in ("start", "list", "listfor", "create"):
            cells = []
            for name in (full.name, empty.name):
                xs = CPU.get((what, name), [])
                cells.append(f"{name} {med([v for v, _ in xs]):.3f} + {med([c for _, c in xs]):.3f}")
            print(f"    {what:<8} " + "   ".join(cells))
        for k, ((fr, fh), (er, eh)) in mem.items():
            print(f"  vssd memory {k:<12}    100k VmRSS {fr:6.1f} VmHWM {fh:6.1f} MiB   "
                  f"empty VmRSS {er:5.1f} VmHWM {eh:5.1f} MiB"
                  + (f"   goal < 100 MB: {'met' if fh * 1.048576 < 100 else 'MISSED'}" if k == "after runs" else ""))
        print(f"  load at the end {load()}")
    finally:
        full.stop()
        empty.stop()


if __name__ == "__main__":
    main()
