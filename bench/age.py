#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Driver for bench-age.sh; not meant to be run on its own.

The layout is bench-age.sh's: guest filesystems mounted at TMP/v00..,
from images TMP/host/img/g00.img.. on the host XFS mounted at TMP/host
(device HOSTDEV), each guest under its own fio writer from the start.

  age.py run --tmp=TMP --n=N --sets=S --interval=I --keep=K ... --out=FILE
      BASELINE seconds of fio alone, then S sets of all N volumes, one
      every I seconds (start to start), the oldest set deleted once more
      than K are kept. A set that fails is counted, and the run goes on; it
      stops only after STOP failures in a row. Every WINDOW sets (and
      before the first), the extents of each live image and of the clones,
      and the host's free space. Writes everything to FILE (JSON).

  age.py report --run=FILE --lat-prefix=PREFIX [--fio=FILE] [--samples=CSV]
      per window of WINDOW sets: sets ok/failed, hold and create times,
      extents, and the fio writes' completion latency in that window
      (from fio's per-I/O log, PREFIX_clat.*.log); then the summary figures.
      Exit 2 if the run was stopped by failures in a row.

Nothing here freezes or writes to a guest filesystem: vssd does the freezing.
"""
import argparse
import array
import bisect
import collections
import csv
import fcntl
import glob
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

from benchutil import fail, pct, version


def guest(tmp, i):
    return os.path.join(tmp, f"v{i:02d}")


def image(tmp, i):
    return os.path.join(tmp, "host", "img", f"g{i:02d}.img")


# ---------------------------------------------------------------- FIEMAP

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
_HDR = struct.Struct("=QQIIII")          # fm_start, fm_length, flags, mapped, count, reserved
_EXT = struct.Struct("=QQQQQIIII")       # logical, physical, length, 2 reserved, flags, 3 reserved
_BATCH = 1024


def fiemap(path):
    """(extents, shared extents) of a file, by FIEMAP without FIEMAP_FLAG_SYNC,
    so that counting does not write anything out (delayed allocations count
    as the extents they are at that moment)."""
    n = shared = 0
    start = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while True:
            buf = bytearray(_HDR.size + _BATCH * _EXT.size)
            _HDR.pack_into(buf, 0, start, 0xFFFFFFFFFFFFFFFF - start, 0, 0, _BATCH, 0)
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
            mapped = _HDR.unpack_from(buf, 0)[3]
            if mapped == 0:
                return n, shared
            last = False
            for k in range(mapped):
                logical, _, length, _, _, flags, _, _, _ = _EXT.unpack_from(buf, _HDR.size + k * _EXT.size)
                n += 1
                if flags & FIEMAP_EXTENT_SHARED:
                    shared += 1
                if flags & FIEMAP_EXTENT_LAST:
                    last = True
                start = logical + length
            if last:
                return n, shared
    finally:
        os.close(fd)


def freesp(mnt, dev):
    """The host's free-space fragmentation: `xfs_spaceman -c 'freesp -s'` on
    the mount (GETFSMAP: the live state), else `xfs_db -r -c 'freesp -s'` on
    the device (read-only; it reads the on-disk free-space btrees, which lag
    what the log has not written back yet). {"free_extents", "free_blocks",
    "avg_free_blocks", "tool"}, or a string saying why neither worked."""
    why = []
    for tool, cmd in (("xfs_spaceman", ["xfs_spaceman", "-c", "freesp -s", mnt]),
                      ("xfs_db", ["xfs_db", "-r", "-c", "freesp -s", dev])):
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            why.append(f"{tool}: {e}")
            continue
        text = p.stdout.decode(errors="replace")
        m = {k: re.search(rf"{k}\s+([0-9.]+)", text) for k in
             ("total free extents", "total free blocks", "average free extent size")}
        if p.returncode == 0 and all(m.values()):
            return {"free_extents": int(m["total free extents"].group(1)),
                    "free_blocks": int(m["total free blocks"].group(1)),
                    "avg_free_blocks": float(m["average free extent size"].group(1)), "tool": tool}
        err = (p.stderr.decode(errors="replace").strip() or text.strip()).splitlines()
        why.append(f"{tool} exit {p.returncode}: {err[0] if err else 'no freesp summary'}")
    return "; ".join(why)


# ---------------------------------------------------------------- run


class Vss:
    def __init__(self, a):
        self.cmd = [a.vssadmin, f"--socket={a.socket}"]
        self.vols = [guest(a.tmp, i) for i in range(a.n)]

    def _run(self, args, timeout):
        try:
            p = subprocess.run(self.cmd + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
            return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            return None, "", f"timed out after {timeout} s"

    @staticmethod
    def error(rc, out, err):
        """The VSS code a failed command names, else its first words."""
        m = re.search(r"VSS_E_[A-Z0-9_]+|E_[A-Z0-9_]+", err + " " + out)
        if m:
            return m.group(0)
        if rc is None:
            return "timeout"
        first = (err.strip() or out.strip() or f"exit {rc}").splitlines()[0]
        return first[:80]

    def create(self):
        """One set of all volumes: (set id, hold_window_us, snapshot paths,
        wall seconds, None) or (None, None, None, wall, error)."""
        t0 = time.perf_counter()
        rc, out, err = self._run(["create", "shadow"] + [f"--for={v}" for v in self.vols] + ["--json"], 600)
        wall = time.perf_counter() - t0
        if rc != 0:
            return None, None, None, wall, self.error(rc, out, err)
        try:
            created = json.loads(out)
            set_id = created[0]["set_id"]
            snaps = {c["volume"]: c["snapshot_path"] for c in created}
            hold_created = int(created[0]["hold_window_us"])
        except (ValueError, LookupError, TypeError) as e:
            return None, None, None, wall, f"bad --json output ({e})"
        if len(created) != len(self.vols):
            return set_id, None, snaps, wall, f"{len(created)} snapshots for {len(self.vols)} volumes"
        # vss's own record of the set, from the catalog.
        rc, lout, lerr = self._run(["list", "shadows", f"--set={set_id}", "--json"], 120)
        if rc != 0:
            return set_id, None, snaps, wall, "list shadows: " + self.error(rc, lout, lerr)
        try:
            rows = [r for r in json.loads(lout) if r["set_id"] == set_id]
            holds = {int(r["hold_window_us"]) for r in rows}
            states = {r["state"] for r in rows}
        except (ValueError, LookupError, TypeError) as e:
            return set_id, None, snaps, wall, f"bad list --json output ({e})"
        if len(rows) != len(self.vols) or states != {"created"} or len(holds) != 1:
            return set_id, None, snaps, wall, (f"catalog: {len(rows)} row(s), states {sorted(states)}, "
                                               f"holds {sorted(holds)}")
        hold = holds.pop()
        if hold != hold_created:
            return set_id, None, snaps, wall, f"create said hold {hold_created} us, list says {hold} us"
        for s in snaps.values():
            if not os.path.isfile(s):
                return set_id, hold, snaps, wall, f"{s} does not exist"
        return set_id, hold, snaps, wall, None

    def delete(self, set_id, snaps):
        """(wall seconds, None or the error)."""
        t0 = time.perf_counter()
        rc, out, err = self._run(["delete", "shadows", f"--set={set_id}", "--quiet"], 300)
        wall = time.perf_counter() - t0
        if rc != 0:
            return wall, self.error(rc, out, err)
        left = [s for s in snaps.values() if os.path.lexists(s)]
        if left:
            return wall, f"{len(left)} snapshot file(s) left, e.g. {left[0]}"
        return wall, None


def sample_extents(a, after, kept):
    """Extents of every live image and of the newest and oldest kept clone
    of each volume, and the host's free space."""
    t0 = time.perf_counter()
    vols = []
    newest = kept[-1][1] if kept else {}
    oldest = kept[0][1] if kept else {}
    for i in range(a.n):
        live, shared = fiemap(image(a.tmp, i))
        row = {"volume": i, "live": live, "live_shared": shared, "clone_newest": None, "clone_oldest": None}
        g = guest(a.tmp, i)
        for key, snaps in (("clone_newest", newest), ("clone_oldest", oldest)):
            path = snaps.get(g)
            if path:
                try:
                    row[key] = fiemap(path)[0]
                except OSError:
                    pass
        vols.append(row)
    fs = freesp(os.path.join(a.tmp, "host"), a.hostdev)
    return {"after_set": after, "t": time.time(), "volumes": vols, "freesp": fs,
            "seconds": time.perf_counter() - t0}


def run_sets(a):
    for i in range(a.n):
        g = guest(a.tmp, i)
        if not os.path.ismount(g):
            fail(f"{g} is not mounted")
    vss = Vss(a)
    out = {"n": a.n, "sets_planned": a.sets, "interval": a.interval, "keep": a.keep, "window": a.window,
           "baseline_sec": a.baseline, "stop_after": a.stop_after, "load_before": os.getloadavg()[0],
           "sets": [], "extents": [], "stopped": None}

    def save():
        out["load_after"] = os.getloadavg()[0]
        with open(a.out + ".new", "w") as f:
            json.dump(out, f)
        os.replace(a.out + ".new", a.out)

    def alive():
        if a.fio_pid and not os.path.exists(f"/proc/{a.fio_pid}"):
            fail("fio stopped during the run")

    print(f"bench: baseline: {a.baseline} s of fio alone on {a.n} volumes...", file=sys.stderr)
    out["baseline"] = [time.time(), None]
    end = time.monotonic() + a.baseline
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        alive()
    out["baseline"][1] = time.time()

    kept = collections.deque()   # (set id, {volume: snapshot path}), oldest first
    out["extents"].append(sample_extents(a, 0, kept))
    print(f"bench: {a.sets} sets of {a.n} volumes, one every {a.interval} s, {a.keep} kept...",
          file=sys.stderr)
    in_a_row = 0
    next_start = time.monotonic()
    try:
        for k in range(1, a.sets + 1):
            now = time.monotonic()
            late = now - next_start
            if late < 0:
                time.sleep(-late)
                late = 0.0
            next_start = max(now, next_start) + a.interval
            alive()
            t_start = time.time()
            set_id, hold, snaps, wall, err = vss.create()
            t_end = time.time()
            rec = {"set": k, "t_start": t_start, "t_end": t_end, "ok": err is None, "error": err,
                   "hold_us": hold, "create_s": wall, "late_s": late, "delete_s": None, "delete_error": None}
            if snaps is not None and set_id is not None:
                # A set that exists (even one that failed a check) is kept and
                # deleted in turn, so that the count of kept sets holds.
                kept.append((set_id, snaps))
            while len(kept) > a.keep:
                old_id, old_snaps = kept.popleft()
                rec["delete_s"], rec["delete_error"] = vss.delete(old_id, old_snaps)
            out["sets"].append(rec)
            in_a_row = 0 if err is None else in_a_row + 1
            what = f"hold {hold / 1e6:6.3f} s" if hold is not None else f"FAILED: {err}"
            print(f"bench: set {k:4d}/{a.sets}: {what}, create {wall:6.2f} s"
                  + (f", delete FAILED: {rec['delete_error']}" if rec["delete_error"] else ""),
                  file=sys.stderr)
            if k % a.window == 0 or k == a.sets:
                out["extents"].append(sample_extents(a, k, kept))
                save()
            if in_a_row >= a.stop_after:
                out["stopped"] = f"stopped after set {k}: {in_a_row} sets failed in a row"
                print(f"bench: {out['stopped']}", file=sys.stderr)
                if k % a.window != 0:
                    out["extents"].append(sample_extents(a, k, kept))
                break
    finally:
        out["run_end"] = time.time()
        save()


# ---------------------------------------------------------------- report


def read_lat(prefix):
    """Every write's (completion time in ms since the epoch, clat in ns),
    from fio's per-I/O logs (log_unix_epoch=1), sorted by time."""
    times, lats = array.array("q"), array.array("q")
    files = sorted(glob.glob(f"{prefix}_clat.*.log"))
    rows = []
    for path in files:
        with open(path) as f:
            for line in f:
                p = line.split(",", 3)
                if len(p) >= 3 and p[2].strip() == "1":
                    rows.append((int(p[0]), int(p[1])))
    rows.sort()
    for t, v in rows:
        times.append(t)
        lats.append(v)
    return files, times, lats


def lat_between(times, lats, t0, t1):
    """Write latencies (ns) of the writes that completed in [t0, t1) (s)."""
    lo = bisect.bisect_left(times, int(t0 * 1000))
    hi = bisect.bisect_left(times, int(t1 * 1000))
    return sorted(lats[lo:hi])


def lat_stats(xs, seconds, nvol):
    """Percentiles of sorted latencies, and the writes per second per writer
    (a writer stalled by holds does not catch up: fio's rate is a ceiling)."""
    if not xs:
        return None
    return {"n": len(xs), "p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "p999": pct(xs, 0.999), "max": xs[-1],
            "rate": len(xs) / seconds / nvol if seconds > 0 else None}


def fmt_lat(ns):
    if ns is None:
        return "-"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e3:.0f}us"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fio_summary(path):
    try:
        with open(path) as f:
            text = f.read()
        d = json.loads(text[text.index("{"):])
        jobs = d["jobs"]
        bw = [j["write"]["bw"] for j in jobs]  # KiB/s
        syncs = [j["sync"]["lat_ns"] for j in jobs if j.get("sync", {}).get("total_ios")]
        s = (f"{len(jobs)} writer(s), {sum(bw) / 1024:.1f} MiB/s in total "
             f"({min(bw) / 1024:.2f}-{max(bw) / 1024:.2f} MiB/s each), over {max(j['elapsed'] for j in jobs)} s")
        if syncs:
            p99 = max(x["percentile"].get("99.000000", 0) for x in syncs)
            s += (f"; fsync latency over the whole run: mean {fmt_lat(statistics.mean(x['mean'] for x in syncs))}, "
                  f"p99 up to {fmt_lat(p99)}, max {fmt_lat(max(x['max'] for x in syncs))}")
        return s
    except (OSError, ValueError, LookupError, TypeError) as e:
        return f"no fio summary ({e})"


def write_samples(path, sets, ext):
    """Every set, every image's extents and every free-space reading, one
    row each, in one CSV (the columns a kind does not have are empty)."""
    cols = ["kind", "set", "volume", "time", "ok", "error", "hold_us", "create_s", "delete_s", "delete_error",
            "live_extents", "live_shared_extents", "clone_newest_extents", "clone_oldest_extents",
            "free_extents", "free_blocks", "avg_free_blocks"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for s in sets:
            w.writerow({"kind": "set", "set": s["set"], "time": f"{s['t_start']:.3f}", "ok": int(s["ok"]),
                        "error": s["error"], "hold_us": s["hold_us"], "create_s": f"{s['create_s']:.4f}",
                        "delete_s": None if s["delete_s"] is None else f"{s['delete_s']:.4f}",
                        "delete_error": s["delete_error"]})
        for e in ext:
            for v in e["volumes"]:
                w.writerow({"kind": "extents", "set": e["after_set"], "volume": v["volume"], "time": f"{e['t']:.3f}",
                            "live_extents": v["live"], "live_shared_extents": v["live_shared"],
                            "clone_newest_extents": v["clone_newest"], "clone_oldest_extents": v["clone_oldest"]})
            fs = e["freesp"]
            if isinstance(fs, dict):
                w.writerow({"kind": "freesp", "set": e["after_set"], "time": f"{e['t']:.3f}",
                            "free_extents": fs["free_extents"], "free_blocks": fs["free_blocks"],
                            "avg_free_blocks": fs["avg_free_blocks"]})


def report(a):
    with open(a.run) as f:
        r = json.load(f)
    sets, ext = r["sets"], r["extents"]
    win = r["window"]
    files, times, lats = read_lat(a.lat_prefix)
    b0, b1 = r["baseline"]
    # The first second of the baseline is fio's ramp (file open, first writes).
    base = lat_stats(lat_between(times, lats, b0 + 1, b1), b1 - b0 - 1, r["n"])

    def ext_at(k):
        for e in ext:
            if e["after_set"] == k:
                return e
        return None

    windows = []
    for w0 in range(0, len(sets), win):
        ws = sets[w0:w0 + win]
        t0 = ws[0]["t_start"]
        t1 = sets[w0 + win]["t_start"] if w0 + win < len(sets) else ws[-1]["t_end"]
        ok = [s for s in ws if s["ok"]]
        e = ext_at(ws[-1]["set"])
        vols = e["volumes"] if e else []
        fs = e["freesp"] if e else None
        windows.append({
            "first": ws[0]["set"], "last": ws[-1]["set"], "ok": len(ok), "failed": len(ws) - len(ok),
            "errors": collections.Counter(s["error"] for s in ws if not s["ok"]),
            "hold_med": med([s["hold_us"] / 1e6 for s in ok]), "hold_max": max((s["hold_us"] / 1e6 for s in ok), default=None),
            "create_med": med([s["create_s"] for s in ws]),
            "live": med([v["live"] for v in vols]), "unshared": med([v["live"] - v["live_shared"] for v in vols]),
            "clone": med([v["clone_newest"] for v in vols]),
            "free_ext": fs["free_extents"] if isinstance(fs, dict) else None,
            "lat": lat_stats(lat_between(times, lats, t0, t1), t1 - t0, r["n"]),
        })

    if a.samples:
        write_samples(a.samples, sets, ext)

    n_ok = sum(1 for s in sets if s["ok"])
    print(f"vss bench: hold window as image volumes age: {r['n']} volumes under random writers, "
          f"a set of all of them every {r['interval']} s, {r['keep']} kept")
    print(f"baseline ({r['baseline_sec']} s of fio alone, no sets): write latency "
          + (f"p50 {fmt_lat(base['p50'])}, p99 {fmt_lat(base['p99'])}, p99.9 {fmt_lat(base['p999'])}, "
             f"max {fmt_lat(base['max'])}; {base['rate']:.0f} writes/s per writer ({base['n']} writes)"
             if base else "- (no writes logged)"))
    e0 = ext_at(0)
    if e0:
        fs = e0["freesp"]
        print(f"before the first set: live image extents median {med([v['live'] for v in e0['volumes']])}; "
              f"host free space: " + (f"{fs['free_extents']} free extents, avg {fs['avg_free_blocks']:.0f} blocks"
                                      if isinstance(fs, dict) else f"not read ({fs})"))
    hdr = (f"{'sets':>9} {'ok':>3} {'fail':>4} {'hold med':>9} {'hold max':>9} {'create med':>10} "
           f"{'live ext':>9} {'unshared':>9} {'clone ext':>9} {'free ext':>9} "
           f"{'write p50':>9} {'p99':>8} {'p99.9':>8} {'max':>8} {'rate':>5}")
    print(hdr)
    for w in windows:
        lat = w["lat"] or {}

        def sec(x):
            return f"{x:8.3f}s" if x is not None else f"{'-':>9}"

        def num(x):
            return f"{x:9.0f}" if x is not None else f"{'-':>9}"
        ratio = (f"{lat['rate'] / base['rate']:4.2f}x" if lat and base and base["rate"] else f"{'-':>5}")
        print(f"{w['first']:4d}-{w['last']:<4d} {w['ok']:3d} {w['failed']:4d} {sec(w['hold_med'])} {sec(w['hold_max'])} "
              f"{sec(w['create_med']):>10} {num(w['live'])} {num(w['unshared'])} {num(w['clone'])} {num(w['free_ext'])} "
              f"{fmt_lat(lat.get('p50')):>9} {fmt_lat(lat.get('p99')):>8} {fmt_lat(lat.get('p999')):>8} "
              f"{fmt_lat(lat.get('max')):>8} {ratio}")
        if w["errors"]:
            print("            failed: " + ", ".join(f"{k} x{v}" for k, v in w["errors"].most_common()))

    print("summary:")
    first = [s["hold_us"] / 1e6 for s in sets[:win] if s["ok"]]
    last = [s["hold_us"] / 1e6 for s in sets[-win:] if s["ok"]]
    fails = [s for s in sets if not s["ok"]]
    print(f"  every set succeeded:       {'yes' if not fails and not r['stopped'] and len(sets) == r['sets_planned'] else 'NO'}"
          f"  ({n_ok}/{len(sets)} ok of {r['sets_planned']} planned"
          + (f"; first failure at set {fails[0]['set']}: {fails[0]['error']}" if fails else "") + ")")
    if r["stopped"]:
        print(f"  {r['stopped']}")
    if last:
        lm = statistics.median(last)
        print(f"  hold, last {win} sets:       median {lm:.3f} s (target < 0.5 s: {'met' if lm < 0.5 and len(last) == len(sets[-win:]) else 'MISSED'})"
              f"{'' if len(last) == len(sets[-win:]) else f', only {len(last)} of them succeeded'}")
    else:
        print(f"  hold, last {win} sets:       none succeeded (target < 0.5 s: MISSED)")
    if len(sets) < 2 * win:
        print(f"  last {win} / first {win}:       n/a (fewer than {2 * win} sets: the windows overlap)")
    elif first and last:
        fm, lm = statistics.median(first), statistics.median(last)
        print(f"  last {win} / first {win}:       {lm / fm:.2f}x ({lm:.3f} s / {fm:.3f} s; target <= 1.5x: "
              f"{'met' if lm <= 1.5 * fm else 'MISSED'})")
    if base and windows and windows[-1]["lat"]:
        wl = windows[-1]["lat"]
        lw = windows[-1]

        def x(k):
            return f"{wl[k] / base[k]:.1f}x" if base[k] else "-"
        print(f"  write latency, sets {lw['first']}-{lw['last']} vs baseline: p50 {x('p50')}, p99 {x('p99')}, "
              f"p99.9 {x('p999')}, max {x('max')} ({fmt_lat(wl['max'])} / {fmt_lat(base['max'])}); "
              f"writes/s {wl['rate'] / base['rate']:.2f}x")
        worst = max((w for w in windows if w["lat"]), key=lambda w: w["lat"]["p999"])
        print(f"  worst window at p99.9: sets {worst['first']}-{worst['last']}, {fmt_lat(worst['lat']['p999'])} "
              f"({worst['lat']['p999'] / base['p999']:.1f}x the baseline)")
    dels = [s for s in sets if s["delete_error"]]
    if dels:
        print(f"  deletes that failed: {len(dels)} (first after set {dels[0]['set']}: {dels[0]['delete_error']})")
    fsd = [e["freesp"] for e in ext if not isinstance(e["freesp"], dict)]
    if fsd:
        print(f"  host free space not read: {fsd[0]}")
    late = [s for s in sets if s["late_s"] > 0.05]
    tool = next((e["freesp"]["tool"] for e in ext if isinstance(e["freesp"], dict)), "no")
    print(f"  kernel {os.uname().release}, {os.cpu_count()} CPU(s), {version(['fio', '--version'])}, "
          f"{version([a.vssd, '--version'])}, 1-min load {r['load_before']:.2f} before / {r['load_after']:.2f} after")
    print(f"  host: {a.host_desc}; guests: {a.guest_desc}")
    print(f"  load: {a.fio_desc}")
    if a.fio:
        print(f"        {fio_summary(a.fio)}")
    print(f"  method: hold = hold_window_us of each set from `vssadmin list shadows --json`; create = wall time\n"
          f"          of `vssadmin create shadow --json`; extents by FIEMAP (live image, the newest set's\n"
          f"          clone; 'unshared' = live extents not shared with any clone) and free extents by\n"
          f"          {tool} 'freesp -s' on the host, after the last set of each window; write latency =\n"
          f"          fio's completion latency of every write that completed in the window ({len(times)} writes\n"
          f"          logged in {len(files)} file(s)); rate = writes/s per writer against the baseline's;\n"
          f"          {len(late)} set(s) started > 50 ms late (the one before ran long)")
    if r["stopped"]:
        sys.exit(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run", "report"])
    ap.add_argument("--tmp")
    ap.add_argument("--vssadmin")
    ap.add_argument("--vssd")
    ap.add_argument("--socket")
    ap.add_argument("--hostdev")
    ap.add_argument("--fio-pid", type=int, default=0)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--sets", type=int, default=200)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--keep", type=int, default=5)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--baseline", type=float, default=20.0)
    ap.add_argument("--stop-after", type=int, default=10)
    ap.add_argument("--out")
    ap.add_argument("--run")
    ap.add_argument("--lat-prefix")
    ap.add_argument("--fio", default="")
    ap.add_argument("--samples", default="")
    ap.add_argument("--fio-desc", default="")
    ap.add_argument("--host-desc", default="")
    ap.add_argument("--guest-desc", default="")
    a = ap.parse_args()
    try:
        if a.cmd == "run":
            run_sets(a)
        else:
            report(a)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
