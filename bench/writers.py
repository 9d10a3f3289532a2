#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Driver for bench-writers.sh; not meant to be run on its own. Starts idle
writers, times create shadow, reads the writers' logs. Exit 1 if any create,
delete or writer fails."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchutil import fail, pct, run, version

LEVELS = ("front", "back", "system")


class Writers:
    """n vss-test-writer processes, levels front, back, system in turn, each
    in its own session (a Ctrl-C is for the driver, which stops them). Their
    PIDs go to pidfile, for the shell's trap should the driver die."""

    def __init__(self, a, n, log):
        self.procs = []
        self.pidfile = a.pidfile
        env = dict(os.environ, VSS_SOCKET=a.socket)
        for i in range(n):
            p = subprocess.Popen([a.writer, f"--name=w{i:02d}", f"--level={LEVELS[i % 3]}", f"--log={log}"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, start_new_session=True)
            self.procs.append(p)
            with open(a.pidfile, "a") as f:
                f.write(f"{p.pid}\n")
        for i, p in enumerate(self.procs):
            line = p.stdout.readline()
            if line.strip() != b"ready":
                p.wait()
                self.stop()
                fail(f"writer w{i:02d} did not start: {p.stderr.read().decode(errors='replace').strip()}")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        bad = []
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode != 0:
                bad.append((p.args[1], p.returncode, p.stderr.read().decode(errors="replace").strip()))
        self.procs = []
        open(self.pidfile, "w").close()  # nothing left for the shell's trap
        if bad:
            fail(f"writers exited badly: {bad}")


def registered(a):
    p = run([a.vssadmin, "--socket", a.socket, "list", "writers", "--json"], "vssadmin list writers")
    return len(json.loads(p.stdout))


def wait_registered(a, n):
    """vssd sees a writer leave when its connection closes; wait for that, so
    that no set of the next configuration sends events to a writer that is
    going."""
    deadline = time.monotonic() + 30
    while registered(a) != n:
        if time.monotonic() > deadline:
            fail(f"vssd lists {registered(a)} writer(s), expected {n}")
        time.sleep(0.05)


def settle(mnt):
    run(["btrfs", "filesystem", "sync", mnt], "btrfs filesystem sync")
    run(["btrfs", "subvolume", "sync", mnt], "btrfs subvolume sync")


def lock_waits(vssd_log):
    with open(vssd_log, errors="replace") as f:
        return sum("waiting for it" in line for line in f)


def cpu_s(pids):
    """CPU time the processes have used, in s (schedstat: ns, unlike the
    clock ticks of /proc/PID/stat); a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def one_set(a, log, writer_pids=()):
    """One timed create shadow; returns (seconds, hold_us, the writers' log
    lines written during it: (name, event, us), vssd's CPU seconds and the
    writers' during the create)."""
    start = os.path.getsize(log) if os.path.exists(log) else 0
    cpu0 = cpu_s([a.vssd_pid]), cpu_s(writer_pids)
    cmd = [a.vssadmin, "--socket", a.socket, "create", "shadow", f"--for={a.subvol}", "--json"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    cpu = cpu_s([a.vssd_pid]) - cpu0[0], cpu_s(writer_pids) - cpu0[1]
    if p.returncode != 0:
        fail("vssadmin create shadow", p)
    try:
        made = json.loads(p.stdout)[0]
        set_id, snap, hold = made["set_id"], made["snapshot_path"], int(made["hold_window_us"])
    except (ValueError, LookupError, TypeError) as e:
        fail(f"cannot parse create shadow --json output ({e})", p)
    if made.get("state") != "created":
        fail(f"set {set_id} is in state {made.get('state')!r}", p)
    if not os.path.isdir(snap):
        fail(f"create shadow reported {snap}, which does not exist", p)
    events = []
    if os.path.exists(log):
        with open(log, "rb") as f:
            f.seek(start)
            for line in f.read().decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2].isdigit():
                    events.append((parts[0], parts[1], int(parts[2])))
    run([a.vssadmin, "--socket", a.socket, "delete", "shadows", f"--set={set_id}", "--quiet"],
        "vssadmin delete shadows")
    settle(a.mnt)
    return dt, hold, events, cpu


ROUNDS = ("identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw", "post_snapshot",
          "backup_complete")


def rounds(events, n, hold_us):
    """From one set's log lines: the span of every round (first to last
    writer's callback; freeze and thaw run over the three levels in turn),
    how long the first writer to freeze stayed frozen (first freeze to last
    thaw), that minus vss's hold window, and first Identify to last
    BackupComplete."""
    by = {}
    for name, ev, us in events:
        by.setdefault(ev, []).append(us)
    if by.get("abort"):
        fail(f"{len(by['abort'])} writer(s) got abort")
    for ev in ROUNDS:
        if len(by.get(ev, [])) != n:
            fail(f"{len(by.get(ev, []))} writer(s) logged {ev} in one set, expected {n}")
    r = {ev: max(by[ev]) - min(by[ev]) for ev in ROUNDS}
    r["frozen"] = max(by["thaw"]) - min(by["freeze"])
    r["frozen-hold"] = r["frozen"] - hold_us
    r["all"] = max(by["backup_complete"]) - min(by["identify"])
    return r


def main():
    ap = argparse.ArgumentParser()
    for o in ("vssadmin", "vssd", "writer", "socket", "subvol", "mnt", "tmp", "pidfile", "device", "vssd-log",
              "vssd-pid"):
        ap.add_argument(f"--{o}", required=True)
    ap.add_argument("--writers", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--samples", default="")
    a = ap.parse_args()
    configs = list(dict.fromkeys(int(x) for x in a.writers.split()))
    load0 = os.getloadavg()[0]
    # Two passes, up then down (0 1 16 64 64 16 1 0), half the runs in each:
    # the configurations cannot be interleaved run by run, and this way a
    # drift of the machine over the bench weighs on all of them alike.
    passes = [(1, configs, (a.runs + 1) // 2), (2, configs[::-1], a.runs // 2)]
    res = {n: ([], [], [], 0, {}) for n in configs}  # times, holds, rounds, lock waits, median by pass
    cpus = {n: [] for n in configs}  # (vssd, writers) CPU seconds of each timed set
    samples = []
    for pas, order, runs in passes:
        for n in order:
            if not runs:
                continue
            log = os.path.join(a.tmp, f"writers-{n}.log")
            print(f"bench: pass {pas}, {n} writer(s): starting them..." if n else
                  f"bench: pass {pas}, no writers", file=sys.stderr)
            w = Writers(a, n, log)
            try:
                wait_registered(a, n)
                waits0 = lock_waits(a.vssd_log)
                print(f"bench: pass {pas}, {n} writer(s): {a.warmup} warm-up and {runs} timed sets...",
                      file=sys.stderr)
                for _ in range(a.warmup):
                    one_set(a, log, [p.pid for p in w.procs])
                t, holds, rs, waits, by_pass = res[n]
                mine = []
                pids = [p.pid for p in w.procs]
                for i in range(runs):
                    dt, hold, events, cpu = one_set(a, log, pids)
                    cpus[n].append((*cpu, len(events)))
                    r = rounds(events, n, hold) if n else {}
                    t.append(dt)
                    mine.append(dt)
                    holds.append(hold)
                    rs.append(r)
                    samples.append((pas, n, i, dt, hold, r, cpu))
                by_pass[pas] = statistics.median(mine)
                res[n] = (t, holds, rs, waits + lock_waits(a.vssd_log) - waits0, by_pass)
            finally:
                w.stop()
            wait_registered(a, 0)

    if a.samples:
        keys = ROUNDS + ("frozen", "frozen-hold", "all")
        with open(a.samples, "w") as f:
            f.write("pass,writers,run,seconds,hold_window_us,vssd_cpu_us,writers_cpu_us," +
                    ",".join(k.replace("-", "_") + ("_span_us" if k in ROUNDS else "_us") for k in keys) + "\n")
            for pas, n, i, dt, hold, r, cpu in samples:
                f.write(f"{pas},{n},{i},{dt:.6f},{hold},{cpu[0] * 1e6:.0f},{cpu[1] * 1e6:.0f}," +
                        ",".join(str(r.get(k, "")) for k in keys) + "\n")

    def ms(x):
        return f"{x * 1e3:9.2f}"

    def levels(n):
        return "/".join(str(len(range(k, n, 3))) for k in range(3))

    med0 = statistics.median(res[0][0]) if 0 in res else None
    print(f"vss bench: create shadow with idle writers registered ({a.runs} timed runs per configuration)")
    print("  whole vssadmin process, ms:")
    print(f"  {'writers':>7} {'f/b/s':>8}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}"
          f"{'added':>9}{'per writer':>11}{'pass 1 / 2':>16}")
    for n in configs:
        t, by_pass = res[n][0], res[n][4]
        m = statistics.median(t)
        added = per = ""
        if med0 is not None and n:
            added = ms(m - med0)
            per = f"{(m - med0) * 1e3 / n:11.3f}"
        halves = " / ".join(f"{by_pass[k] * 1e3:.2f}" for k in sorted(by_pass))
        print(f"  {n:>7} {levels(n):>8}{ms(m)}{ms(pct(t, 0.9))}{ms(min(t))}{ms(max(t))}{added:>9}{per:>11}"
              f"{halves:>16}")
    print("  (added = median - median of 0 writers; per writer = added / writers;\n"
          "   pass 1 / 2 = the median of each pass alone)")
    print("  CPU time during the create (schedstat), median, ms:")
    print(f"  {'writers':>7}{'vssd':>9}{'added':>9}{'per writer':>11}{'writers':>9}{'per event':>11}")
    cpu0 = statistics.median(c[0] for c in cpus[0]) if 0 in cpus else None
    for n in configs:
        v = statistics.median(c[0] for c in cpus[n])
        wr = statistics.median(c[1] for c in cpus[n])
        nev = statistics.median(c[2] for c in cpus[n])
        added = per = wper = ""
        if cpu0 is not None and n:
            added = ms(v - cpu0)
            per = f"{(v - cpu0) * 1e3 / n:11.3f}"
        if n and nev:
            wper = f"{wr * 1e6 / nev:9.1f} us"
        print(f"  {n:>7}{ms(v)}{added:>9}{per:>11}{ms(wr)}{wper:>11}")
    print("  (vssd: its CPU over the whole create, also the snapshot; writers: all of theirs together;\n"
          "   per event = writers / the events they logged in the set: 8 a writer, the 7 rounds\n"
          "   and BackupShutdown)")
    print("  hold window (hold_window_us of each set), ms:")
    print(f"  {'writers':>7}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}")
    for n in configs:
        h = [x / 1e6 for x in res[n][1]]
        print(f"  {n:>7}{ms(statistics.median(h))}{ms(pct(h, 0.9))}{ms(min(h))}{ms(max(h))}")
    if any(configs):
        def cell(rs, k, width=16):
            xs = [r[k] / 1e6 for r in rs]
            return f"{ms(statistics.median(xs)).strip()} ({ms(pct(xs, 0.9)).strip()})".rjust(width)

        print("  writer rounds, from the writers' logs (CLOCK_MONOTONIC at each callback), median (p90), ms:")
        print(f"  {'writers':>7}{'freeze span':>16}{'thaw span':>16}{'frozen':>16}{'frozen - hold':>16}"
              f"{'identify..complete':>20}")
        for n in (n for n in configs if n):
            rs = res[n][2]
            print(f"  {n:>7}{cell(rs, 'freeze')}{cell(rs, 'thaw')}{cell(rs, 'frozen')}{cell(rs, 'frozen-hold')}"
                  f"{cell(rs, 'all', 20)}")
        print("  (freeze span: first to last writer's freeze, over the three levels; thaw span likewise;\n"
              "   frozen: first freeze to last thaw, the longest any writer is frozen; frozen - hold:\n"
              "   what the writer rounds add around vss's hold window; identify..complete: the first\n"
              "   Identify to the last BackupComplete)")
        short = ("identify", "prep_backup", "prep_snap", "freeze", "thaw", "post_snap", "complete")
        print("  span of each round (first to last writer's callback), median, ms:")
        print(f"  {'writers':>7}" + "".join(f"{h:>12}" for h in short))
        for n in (n for n in configs if n):
            rs = res[n][2]
            print(f"  {n:>7}" + "".join(ms(statistics.median(r[k] for r in rs) / 1e6).rjust(12) for k in ROUNDS))
    waits = {n: res[n][3] for n in configs}
    st = os.statvfs(a.mnt)
    print(f"  kernel {os.uname().release}, {os.cpu_count()} CPU(s), {version(['btrfs', '--version'])}, "
          f"{version([a.vssd, '--version'])}, 1-min load {load0:.2f} before / {os.getloadavg()[0]:.2f} after")
    print(f"  filesystem: btrfs on {a.device}, {st.f_blocks * st.f_frsize / 2**30:.1f} GiB (sparse image); "
          f"vssd waited for the package lock in {sum(waits.values())} set(s)")
    print(f"  method: two passes over the configurations, {' '.join(map(str, configs))}, then back;\n"
          f"          in each, start the writers (levels front/back/system in turn), wait until vssd\n"
          f"          lists them, {a.warmup} uncounted sets, {passes[0][2]} then {passes[1][2]} timed sets "
          f"(whole process, perf_counter),\n"
          f"          stop the writers; each set deleted and the fs settled outside the timing")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
