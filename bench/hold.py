#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Driver for bench-hold.sh; not meant to be run on its own.

The layout is bench-hold.sh's: guest filesystems mounted at TMP/v00..v63,
from images TMP/host/img/g00.img..g63.img on the host XFS mounted at TMP/host.

  hold.py measure --tmp=TMP --phase=idle|load --out=FILE ...
      interleave, round by round, a hand-made hold of one volume (FIFREEZE,
      FICLONE of its image, FITHAW; plain, and right after the syncfs +
      fdatasync that vss does before it freezes) with `vssadmin create
      shadow` sets of 1, 4, 16 and 64 volumes; write every sample to FILE
      (JSON). Exit 1 if any create, delete or check fails.

  hold.py breakdown --tmp=TMP --out=FILE ...
      hold all the volumes by hand, per phase (freeze all, clone all, thaw
      all): in parallel threads, in parallel with the clones one after
      another, and all one after another.

  hold.py report --idle=FILE --load=FILE [--breakdown=FILE] [--fio=FILE] ...
      print the report (targets included). Exit 1 if a set was not
      "crash-consistent across the set".

Every freeze made here is thawed on every path (try/finally), and nothing
here writes to a guest filesystem.
"""
import argparse
import ctypes
import fcntl
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

from benchutil import fail, pct, run, version


FIFREEZE = 0xC0045877
FITHAW = 0xC0045878
FICLONE = 0x40049409

# Between the end of one timed hold and the start of the next. A freeze
# within ~50 ms of the last one skips the kernel's RCU grace periods and is
# ~100x cheaper than a cold one, so every timed hold starts cold.
GAP = 0.2

SIZES = (1, 4, 16, 64)

_libc = ctypes.CDLL(None, use_errno=True)


def guest(tmp, i):
    return os.path.join(tmp, f"v{i:02d}")


def image(tmp, i):
    return os.path.join(tmp, "host", "img", f"g{i:02d}.img")


def syncfs(fd):
    if _libc.syncfs(fd) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def check_guests(tmp, n):
    """Refuse to freeze anything but the bench's own loop-mounted guests:
    never /, never the host, never something that is not a mount point."""
    host = os.path.join(tmp, "host")
    forbidden = {os.stat("/").st_dev, os.stat(host).st_dev, os.stat(tmp).st_dev}
    for i in range(n):
        g = guest(tmp, i)
        if not os.path.ismount(g) or os.stat(g).st_dev in forbidden:
            fail(f"{g} is not one of the bench's guest mounts; refusing to freeze it")


class Member:
    """One guest volume held by hand: its mount (to freeze) and its image on
    the host (to clone), with the clone's destination on the host."""

    def __init__(self, tmp, i, dest):
        self.path = guest(tmp, i)
        self.dest = dest
        self.gfd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.sfd = os.open(image(tmp, i), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(self.gfd)
            raise
        self.dfd = -1
        self.frozen = False

    def presync(self):
        """What vss's pre_commit does, outside its hold window: write out
        the guest filesystem, then its image on the host."""
        syncfs(self.gfd)
        os.fdatasync(self.sfd)

    def open_dest(self):
        self.dfd = os.open(self.dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def freeze(self):
        fcntl.ioctl(self.gfd, FIFREEZE, 0)
        self.frozen = True

    def clone(self):
        fcntl.ioctl(self.dfd, FICLONE, self.sfd)

    def thaw(self):
        # A thaw that fails is tried again for a second: nothing may stay
        # frozen. EINVAL: not frozen (any more).
        for attempt in range(11):
            try:
                fcntl.ioctl(self.gfd, FITHAW, 0)
                break
            except OSError as e:
                if e.errno == 22:
                    break
                if attempt == 10:
                    raise
                time.sleep(0.1)
        self.frozen = False

    def close(self):
        """Thaw, remove the clone, close everything. The thaw is
        unconditional: a Ctrl-C can land between a FIFREEZE's return and
        `frozen` being set. Nothing else freezes the bench's guests."""
        try:
            self.thaw()
        finally:
            if self.dfd >= 0:
                os.close(self.dfd)
                self.dfd = -1
            if os.path.lexists(self.dest):
                os.unlink(self.dest)
            os.close(self.sfd)
            os.close(self.gfd)


def hold_one(tmp, i, dest, presync):
    """FIFREEZE -> FICLONE -> FITHAW of volume i, timed from the FIFREEZE
    call to the FITHAW return; returns seconds. The clone is removed."""
    m = Member(tmp, i, dest)
    try:
        m.open_dest()
        if presync:
            m.presync()
        t0 = time.perf_counter()
        try:
            m.freeze()
            m.clone()
        finally:
            if m.frozen:
                m.thaw()
        return time.perf_counter() - t0
    finally:
        m.close()


class Crew:
    """One worker thread per member, started once, so that a step runs on
    all members at the same time (as vssd's crew). fcntl.ioctl releases the
    GIL while it waits."""

    def __init__(self, n):
        self.inbox = [queue.SimpleQueue() for _ in range(n)]
        self.done = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, args=(i,)) for i in range(n)]
        for t in self.threads:
            t.start()

    def _work(self, i):
        while True:
            fn = self.inbox[i].get()
            if fn is None:
                return
            try:
                fn(i)
                self.done.put((i, None))
            except BaseException as e:  # noqa: B036 - reported to the caller
                self.done.put((i, e))

    def run(self, fn):
        for q in self.inbox:
            q.put(fn)
        errors = [e for _, e in (self.done.get() for _ in self.inbox) if e is not None]
        if errors:
            raise errors[0]

    def close(self):
        """Let every worker finish its step and stop; a Ctrl-C does not cut
        this short, so that nothing freezes after the caller thawed."""
        for q in self.inbox:
            q.put(None)
        for t in self.threads:
            while True:
                try:
                    t.join()
                    break
                except KeyboardInterrupt:
                    continue


def hold_many(tmp, n, mode, dest_dir):
    """Hold volumes 0..n-1 by hand: freeze all, clone all, thaw all.
    mode: 'parallel' (each step on all members at once), 'serial-clone'
    (freeze and thaw in parallel, the clones one after another) or
    'serial' (everything one after another). Returns the seconds from the
    first FIFREEZE call to the end of each step (freeze, clone, thaw)."""
    members, crew = [], None
    try:
        for i in range(n):
            members.append(Member(tmp, i, os.path.join(dest_dir, f"hand-{i:02d}.img")))
            members[-1].open_dest()
        for m in members:
            m.presync()
        if mode != "serial":
            crew = Crew(n)

        def step(fn, parallel):
            if parallel:
                crew.run(lambda i: fn(members[i]))
            else:
                for m in members:
                    fn(m)

        t0 = time.perf_counter()
        try:
            step(Member.freeze, mode != "serial")
            t1 = time.perf_counter()
            step(Member.clone, mode == "parallel")
            t2 = time.perf_counter()
            step(Member.thaw, mode != "serial")
            t3 = time.perf_counter()
        finally:
            if any(m.frozen for m in members):
                # A failure or a Ctrl-C: let the workers finish what they
                # are doing (a freeze, maybe), then thaw here.
                if crew:
                    crew.close()
                    crew = None
                for m in members:
                    if m.frozen:
                        m.thaw()
        return t1 - t0, t2 - t0, t3 - t0
    finally:
        if crew:
            crew.close()
        for m in members:
            m.close()


class Vss:
    def __init__(self, a):
        self.a = a
        self.cmd = [a.vssadmin, f"--socket={a.socket}"]

    def once(self, n):
        """One set of volumes 0..n-1: returns (hold window in seconds,
        consistency, create shadow's wall time)."""
        tmp = self.a.tmp
        t0 = time.perf_counter()
        p = subprocess.run(self.cmd + ["create", "shadow"] + [f"--for={guest(tmp, i)}" for i in range(n)] +
                           ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            fail(f"vssadmin create shadow ({n} volumes)", p)
        try:
            created = json.loads(p.stdout)
            set_id = created[0]["set_id"]
            snaps = [c["snapshot_path"] for c in created]
            hold_created = int(created[0]["hold_window_us"])
        except (ValueError, LookupError, TypeError) as e:
            fail(f"cannot parse create shadow --json output ({e})", p)
        if len(created) != n or any(c["set_id"] != set_id for c in created):
            fail(f"create shadow of {n} volumes reported {len(created)} snapshot(s)", p)
        for s in snaps:
            if not os.path.isfile(s):
                fail(f"create shadow reported {s}, which does not exist", p)
        # vss's own record of the set, from the catalog.
        lp = run(self.cmd + ["list", "shadows", f"--set={set_id}", "--json"], "vssadmin list shadows")
        try:
            rows = [r for r in json.loads(lp.stdout) if r["set_id"] == set_id]
            holds = {int(r["hold_window_us"]) for r in rows}
            states = {r["state"] for r in rows}
            consistency = {r["consistency"] for r in rows}
        except (ValueError, LookupError, TypeError) as e:
            fail(f"cannot read hold_window_us of set {set_id} ({e})", lp)
        if len(rows) != n or states != {"created"}:
            fail(f"set {set_id}: {len(rows)} row(s) in state(s) {sorted(states)}, "
                 f"expected {n} 'created'", lp)
        if len(holds) != 1 or len(consistency) != 1:
            fail(f"set {set_id}: its snapshots disagree: hold_window_us {sorted(holds)}, "
                 f"consistency {sorted(consistency)}", lp)
        hold = holds.pop()
        if hold != hold_created:
            fail(f"set {set_id}: create shadow said hold_window_us {hold_created}, "
                 f"list shadows says {hold}", lp)
        run(self.cmd + ["delete", "shadows", f"--set={set_id}", "--quiet"], "vssadmin delete shadows")
        for s in snaps:
            if os.path.lexists(s):
                fail(f"{s} still exists after delete shadows --set={set_id}")
        return hold / 1e6, consistency.pop(), wall


class Pacer:
    """Keeps GAP seconds between the end of one timed hold and the start of
    the next."""

    def __init__(self):
        self.last = 0.0

    def wait(self):
        left = self.last + GAP - time.monotonic()
        if left > 0:
            time.sleep(left)

    def done(self):
        self.last = time.monotonic()


def measure(a):
    check_guests(a.tmp, max(SIZES))
    vss = Vss(a)
    pace = Pacer()
    dest = os.path.join(a.tmp, "host", "raw", "clone.img")
    kinds = ["raw", "raw-presync"] + [f"vss{n}" for n in SIZES]
    samples = []
    load0 = os.getloadavg()[0]

    def one(kind):
        pace.wait()
        try:
            if kind == "raw":
                return hold_one(a.tmp, 0, dest, False), None, None
            if kind == "raw-presync":
                return hold_one(a.tmp, 0, dest, True), None, None
            return vss.once(int(kind[3:]))
        finally:
            pace.done()

    print(f"bench: {a.phase}: {a.warmup} warm-up round(s)...", file=sys.stderr)
    for _ in range(a.warmup):
        for kind in kinds:
            one(kind)
    print(f"bench: {a.phase}: {a.runs} timed rounds of {len(kinds)}...", file=sys.stderr)
    for r in range(a.runs):
        # Rotate the order from round to round, so that no kind always
        # follows the same other kind, and drift hits all of them.
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for pos, kind in enumerate(order):
            t, consistency, wall = one(kind)
            samples.append({"round": r, "position": pos, "kind": kind, "seconds": t,
                            "consistency": consistency, "create_wall": wall})
        if (r + 1) % 5 == 0:
            print(f"bench: {a.phase}:   {r + 1}/{a.runs}", file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump({"phase": a.phase, "runs": a.runs, "warmup": a.warmup, "load_before": load0,
                   "load_after": os.getloadavg()[0], "samples": samples}, f)


def breakdown(a):
    check_guests(a.tmp, a.n)
    pace = Pacer()
    dest_dir = os.path.join(a.tmp, "host", "raw")
    out = {"n": a.n, "modes": {}}
    plan = [("parallel", a.runs), ("serial-clone", a.runs), ("serial", a.serial_runs)]
    print(f"bench: breakdown: {a.n} volumes held by hand...", file=sys.stderr)
    for mode, _ in plan:
        out["modes"][mode] = []
    # Interleaved, like the rest; the serial runs only in the first rounds.
    for r in range(max(n for _, n in plan)):
        for mode, n in plan:
            if r >= n:
                continue
            pace.wait()
            try:
                out["modes"][mode].append(hold_many(a.tmp, a.n, mode, dest_dir))
            finally:
                pace.done()
    with open(a.out, "w") as f:
        json.dump(out, f)


# ---------------------------------------------------------------- report


def ms(x):
    return f"{x * 1e3:9.1f} ms"


def fio_summary(path):
    """Aggregate write rate of the fio run, from its JSON output (fio puts a
    line about the signal that stopped it before the JSON)."""
    try:
        with open(path) as f:
            text = f.read()
        d = json.loads(text[text.index("{"):])
        jobs = d["jobs"]
        bw = [j["write"]["bw"] for j in jobs]  # KiB/s
        iops = sum(j["write"]["iops"] for j in jobs)
        return (f"{len(jobs)} writer(s) did {sum(bw) / 1024:.1f} MiB/s in total "
                f"({min(bw) / 1024:.2f}-{max(bw) / 1024:.2f} MiB/s each, {iops:.0f} writes/s), "
                f"over {max(j['elapsed'] for j in jobs)} s")
    except (OSError, ValueError, LookupError, TypeError) as e:
        return f"no fio summary ({e})"


LABELS = {
    "raw": "raw 1 volume",
    "raw-presync": "raw 1 volume, after pre-sync",
    "vss1": "vss  1 volume",
    "vss4": "vss  4 volumes",
    "vss16": "vss 16 volumes",
    "vss64": "vss 64 volumes",
}


def report(a):
    phases = {}
    for name, path in (("idle", a.idle), ("load", a.load)):
        with open(path) as f:
            phases[name] = json.load(f)
    bd = None
    if a.breakdown:
        with open(a.breakdown) as f:
            bd = json.load(f)

    def xs(phase, kind):
        return [s["seconds"] for s in phases[phase]["samples"] if s["kind"] == kind]

    def med(phase, kind):
        return statistics.median(xs(phase, kind))

    runs = phases["idle"]["runs"]
    if a.samples:
        with open(a.samples, "w") as f:
            f.write("phase,round,position,kind,seconds\n")
            for name, p in phases.items():
                for x in p["samples"]:
                    f.write(f"{name},{x['round']},{x['position']},{x['kind']},{x['seconds']:.6f}\n")
    print(f"vss bench: hold window of image-volume sets vs a hand-made hold "
          f"({runs} runs each, idle and under load)")
    titles = {"idle": "idle", "load": "under load"}
    for phase in ("idle", "load"):
        print(f"{titles[phase]:<30}{'median':>12}{'p90':>12}{'min':>12}{'max':>12}")
        for kind in LABELS:
            v = xs(phase, kind)
            print(f"  {LABELS[kind]:<28}{ms(statistics.median(v))}{ms(pct(v, 0.9))}"
                  f"{ms(min(v))}{ms(max(v))}")

    print("targets (median over median):")
    raw, v1, v64, v16l = med("idle", "raw"), med("idle", "vss1"), med("idle", "vss64"), med("load", "vss16")
    raw_ps = med("idle", "raw-presync")
    for name, what, value, target, ok, detail in (
        ("1 volume, idle", "vss/raw", f"{v1 / raw:6.2f}x", "<= 1.2x", v1 <= 1.2 * raw,
         f"vss {v1 * 1e3:.1f} ms, raw {raw * 1e3:.1f} ms (raw after pre-sync: {v1 / raw_ps:.2f}x)"),
        ("64 volumes, idle", "vss/raw", f"{v64 / raw:6.2f}x", "<= 2x", v64 <= 2 * raw,
         f"vss {v64 * 1e3:.1f} ms, raw 1 volume {raw * 1e3:.1f} ms (after pre-sync: {v64 / raw_ps:.2f}x)"),
        ("16 volumes, load", "vss", f"{v16l:6.3f} s", "< 0.5 s", v16l < 0.5,
         f"{v16l / 0.5:.2f}x the target"),
    ):
        print(f"  {name + ':':<19}{what:<8}= {value:<9} (target {target + ')':<8} "
              f"{'met   ' if ok else 'MISSED'}  {detail}")

    seen = {}
    for p in phases.values():
        for s in p["samples"]:
            if s["consistency"] is not None:
                seen[s["consistency"]] = seen.get(s["consistency"], 0) + 1
    total = sum(seen.values())
    print("consistency seen: " + ", ".join(f'"{k}" in {v}/{total} sets' for k, v in seen.items()))

    if bd:
        n = bd["n"]
        print(f"where the time goes: {n} idle volumes held by hand, after vss's pre-sync "
              f"(medians; from the\n  first FIFREEZE call to the end of each step)")
        print(f"  {'':<48}{'freeze':>10}{'+clone':>10}{'+thaw':>10}")
        names = {
            "parallel": f"{n} threads, each step in parallel",
            "serial-clone": f"{n} threads, the clones one by one",
            "serial": "1 thread, all one after another",
        }
        for mode, rows in bd["modes"].items():
            cols = [statistics.median(r[k] for r in rows) for k in range(3)]
            print(f"  {names[mode] + f' ({len(rows)} runs)':<48}" + "".join(f"{c * 1e3:7.1f} ms" for c in cols))
        print(f"  (vss, the same {n} idle volumes: {med('idle', f'vss{n}') * 1e3:.1f} ms; raw, 1 volume: "
              f"{med('idle', 'raw') * 1e3:.1f} ms)")

    print(f"  kernel {os.uname().release}, {os.cpu_count()} CPU(s), {version(['fio', '--version'])}, "
          f"{version([a.vssd, '--version'])}, 1-min load {phases['idle']['load_before']:.2f} before idle / "
          f"{phases['load']['load_after']:.2f} after load")
    print(f"  host: {a.host_desc}; guests: {a.guest_desc}")
    print(f"  load: {a.load_desc}; {a.fio_desc}")
    if a.fio:
        print(f"        {fio_summary(a.fio)}")
    if a.frag_desc:
        print(f"        {a.frag_desc}")
    print(f"  method: raw = this driver's FIFREEZE -> FICLONE (image -> file on the host) -> FITHAW\n"
          f"          of v00, timed from the FIFREEZE call to the FITHAW return ('after pre-sync':\n"
          f"          right after the syncfs(guest) + fdatasync(image) that vss does before it\n"
          f"          freezes); vss = hold_window_us of each set (volumes v00..), from\n"
          f"          `vssadmin list shadows --json`; clones and sets deleted after each run.\n"
          f"          {phases['idle']['warmup']} uncounted warm-up round(s) per phase, then {runs} rounds "
          f"of all six kinds, order\n"
          f"          rotating; >= {GAP * 1e3:.0f} ms from the end of one hold to the start of the next")
    if set(seen) != {"crash-consistent across the set"}:
        print("bench: FAILED: a set was not crash-consistent across the set", file=sys.stderr)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["measure", "breakdown", "report"])
    ap.add_argument("--tmp")
    ap.add_argument("--vssadmin")
    ap.add_argument("--vssd")
    ap.add_argument("--socket")
    ap.add_argument("--phase", choices=["idle", "load"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--serial-runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--out")
    ap.add_argument("--idle")
    ap.add_argument("--load")
    ap.add_argument("--breakdown", default="")
    ap.add_argument("--fio", default="")
    ap.add_argument("--samples", default="", help="also write every sample to this CSV")
    ap.add_argument("--load-desc", default="")
    ap.add_argument("--fio-desc", default="")
    ap.add_argument("--frag-desc", default="")
    ap.add_argument("--host-desc", default="")
    ap.add_argument("--guest-desc", default="")
    a = ap.parse_args()
    try:
        if a.cmd == "measure":
            measure(a)
        elif a.cmd == "breakdown":
            breakdown(a)
        else:
            report(a)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
