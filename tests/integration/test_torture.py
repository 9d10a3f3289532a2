# SPDX-License-Identifier: LGPL-2.1-or-later
"""Crash torture: sets of 16 image volumes made and deleted over and over,
with vssd, the requestor or the writer killed (SIGKILL) at a random moment
of each cycle. After every kill the promises hold: every filesystem is
writable again within a second, the catalog and the snapshot store agree
(no clone without its row, no row without its clone), and the creation slot
is free (a new set succeeds).

The moment of each kill comes from a seeded RNG; the seed is printed, and
VSS_TORTURE_SEED=N replays a run's kill moments. VSS_LONG=1 (make check-long) runs the full
counts; VSS_TORTURE_KILLS=N chooses any other."""

import concurrent.futures
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import REQUESTOR, VSSADMIN, by_step, is_frozen, wait_until, write_summary

NESTING = "MaxImageNesting = 2\n"
VOLUMES = 16
KILLS = int(os.environ.get("VSS_TORTURE_KILLS", "200" if os.environ.get("VSS_LONG") == "1" else "20"))
# The guard's promise: writable within a second of vssd's death.
WRITABLE_WITHIN = 1.0


class Torture:
    """The pool of volumes, the daemon and the writer of one test, and the
    checks every kill is followed by."""

    def __init__(self, name, host, images, daemon_factory, workdir):
        self.name = name
        self.seed = int(os.environ.get("VSS_TORTURE_SEED") or random.SystemRandom().randrange(1 << 32))
        print(f"\n{name}: seed {self.seed} (replay: VSS_TORTURE_SEED={self.seed})", flush=True)
        self.rng = random.Random(self.seed)
        self.host = host
        self.vols = images(VOLUMES)
        self.vssd = daemon_factory(config=NESTING)
        self.writer_log = workdir[0] / "writer.log"
        self.writer = None
        self.kills = 0
        self.survived = 0
        self.longest = 0.0
        self.in_hold = 0
        self.markers_left = 0
        self.orphans = []
        self.outcomes = {}
        self.start_writer()

    def start_writer(self):
        if self.writer:
            self.reap_writer()
        self.writer = self.vssd.writer("torture", f"--log={self.writer_log}")

    def reap_writer(self):
        """Forget a writer that died (with vssd, or killed): its pipes closed."""
        w = self.writer
        self.vssd.children.remove(w)
        if w.poll() is None:
            w.kill()
        w.wait()
        w.stdout.close()
        w.stderr.close()
        self.writer = None

    def create_cmd(self):
        return [VSSADMIN, "create", "shadow", *[f"--for={v.mnt}" for v in self.vols], "--json"]

    def context(self):
        return f"seed {self.seed}, kill {self.kills}"

    def time_to_writable(self, t0, timeout=5.0):
        """Poll every volume in parallel until it is thawed; the seconds
        from t0 to the last one's thaw, and whether any was frozen."""
        def poll(v):
            was = False
            while is_frozen(v.mnt):
                was = True
                if time.monotonic() - t0 > timeout:
                    raise AssertionError(f"{v.mnt} still frozen {timeout} s after the kill ({self.context()})")
                time.sleep(0.005)
            return time.monotonic() - t0, was

        with concurrent.futures.ThreadPoolExecutor(len(self.vols)) as ex:
            results = list(ex.map(poll, self.vols))
        return max(t for t, _ in results), any(w for _, w in results)

    def assert_all_thawed(self):
        frozen = [str(v.mnt) for v in self.vols if is_frozen(v.mnt)]
        assert not frozen, f"frozen: {frozen} ({self.context()})\n{self.vssd.log()[-4000:]}"

    def count(self, outcome):
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def check_store(self, expect=None):
        """The catalog and the host's store agree; record disagreements."""
        shadows = self.vssd.list_shadows()
        listed = {os.path.basename(s["snapshot_path"]) for s in shadows}
        on_disk = set(self.host.store_entries())
        unlisted, missing = sorted(on_disk - listed), sorted(listed - on_disk)
        if unlisted or missing:
            self.orphans.append((self.kills, unlisted, missing))
        assert not unlisted and not missing, (
            f"on disk without a row: {unlisted}; rows without a clone: {missing} ({self.context()})\n"
            f"{self.vssd.log()[-6000:]}")
        if expect is not None:
            assert len(shadows) == expect, (shadows, self.context())
        return shadows

    def delete_all(self):
        for set_id in sorted({s["set_id"] for s in self.vssd.list_shadows()}):
            self.vssd.vssadmin("delete", "shadows", f"--set={set_id}", "--quiet")
        assert self.host.store_entries() == [], self.context()

    def wait_slot_free(self, timeout=30):
        """Until StartSnapshotSet is accepted: a set a killed client was
        making holds the slot until vssd is done cutting it, and is deleted
        then. Before that the store may look right by chance (no clone yet)."""
        deadline = time.monotonic() + timeout
        while True:
            start = by_step(self.vssd.requestor("create", "init", "gather", "start", "release"), "start")[0]
            if start.hr == "S_OK":
                return
            assert start.hr == "VSS_E_SNAPSHOT_SET_IN_PROGRESS" and time.monotonic() < deadline, (
                f"the slot is not freed: {start} ({self.context()})\n{self.vssd.log()[-6000:]}")
            time.sleep(0.05)

    def slot_is_free(self):
        """A new set succeeds, and is deleted."""
        p = self.vssd.vssadmin(*self.create_cmd()[1:], check=False)
        assert p.returncode == 0, f"no new set: {p.stderr} ({self.context()})\n{self.vssd.log()[-6000:]}"
        out = json.loads(p.stdout)
        # The writer (a new one, if the last was killed) took part.
        assert {s["consistency"] for s in out} == {"application-consistent"}, (out, self.context())
        self.check_store(expect=len(out))
        self.vssd.vssadmin("delete", "shadows", f"--set={out[0]['set_id']}", "--quiet")
        assert self.host.store_entries() == [] and self.vssd.list_shadows() == [], self.context()

    def cycles(self, cmds):
        """For each kill: the kind of cycle and the cycle, started, once a
        random moment within the time such a cycle takes has passed. The
        kinds (cmds: kind -> command) take turns."""
        spans = {kind: calibrate(self, cmd) for kind, cmd in cmds.items()}
        print("one cycle takes " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in spans.items()), flush=True)
        kinds = list(cmds)
        for self.kills in range(1, KILLS + 1):
            kind = kinds[(self.kills - 1) % len(kinds)]
            cycle = Cycle(self.vssd.client_env(), cmds[kind])
            cycle.start()
            time.sleep(self.rng.uniform(0, spans[kind]))
            yield kind, cycle
            self.survived = self.kills

    def summary(self):
        """Printed (pytest -s) and kept in the build directory, also when the
        test failed: a failure's figures say how far it got."""
        name = self.name
        orphans = sum(len(u) + len(m) for _, u, m in self.orphans)
        text = f"{name}: {self.survived} kills survived of {KILLS} ({VOLUMES}-volume sets, seed {self.seed}); "
        if name == "kill vssd":
            text += (f"longest time to writable {self.longest * 1000:.0f} ms; kills with a volume frozen "
                     f"{self.in_hold}; freeze markers left to the restart {self.markers_left}; ")
        text += f"orphans found {orphans}; outcomes {dict(sorted(self.outcomes.items()))}"
        print(text, flush=True)
        write_summary(name, text)


class Cycle(threading.Thread):
    """One cycle's clients, run one after another in a thread: a set made
    (vssadmin create shadow, or a whole requestor run), then, for vssadmin,
    its deletion. kill() stops the client running at that moment."""

    def __init__(self, env, cmd):
        super().__init__()
        self.env = env
        self.queue = [cmd]
        self.lock = threading.Lock()
        self.proc = None
        self.killed = False
        self.results = []  # (cmd, returncode, stdout, stderr)

    def run(self):
        while self.queue:
            cmd = [str(c) for c in self.queue.pop(0)]
            with self.lock:
                if self.killed:
                    return
                self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             env=self.env)
            out, err = self.proc.communicate(timeout=120)
            self.results.append((cmd, self.proc.returncode, out, err))
            if self.proc.returncode != 0:
                return
            if cmd[1:3] == ["create", "shadow"]:
                set_id = json.loads(out)[0]["set_id"]
                self.queue.append([VSSADMIN, "delete", "shadows", f"--set={set_id}", "--quiet"])

    def kill(self):
        """SIGKILL the client running now; which one it was, or None."""
        with self.lock:
            self.killed = True
            p = self.proc
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                return p.args
        return None

    def finish(self, what):
        self.join(timeout=150)
        assert not self.is_alive(), f"a client hangs ({what})"
        return self.results


def requestor_cycle(vols):
    """A whole backup in an auto-release context: its set goes with the release."""
    return [REQUESTOR, "create", "init", "context=backup", "state", "gather", "start", *[f"add={v.mnt}" for v in vols],
            "prepare", "do", "props", "complete", "release"]


def calibrate(t, cmd, runs=2):
    """How long one whole cycle takes here: each kill falls within it."""
    times = []
    for _ in range(runs):
        start = time.monotonic()
        c = Cycle(t.vssd.client_env(), cmd)
        c.start()
        for _cmd, code, out, err in c.finish("calibration"):
            assert code == 0, (out, err)
        times.append(time.monotonic() - start)
    t.check_store(expect=0)
    return max(times)


@pytest.fixture
def torture(host, images, daemon_factory, workdir):
    """torture(name): the pool, daemon and writer of a test; its summary is
    written when the test ends, passed or failed."""
    made = []

    def make(name):
        made.append(Torture(name, host, images, daemon_factory, workdir))
        return made[-1]

    yield make
    for t in made:
        t.summary()


def test_kill_vssd_at_random_moments(torture):
    t = torture("kill vssd")
    vssd = t.vssd
    marker = vssd.dir / "frozen"
    for _, cycle in t.cycles({"vssadmin": t.create_cmd()}):
        t0 = time.monotonic()
        vssd.proc.send_signal(signal.SIGKILL)
        # Reaped, so that no freeze of vssd's is still in flight: from here on
        # only the guard may touch the volumes.
        vssd.proc.wait()
        vssd.proc = None
        took, was_frozen = t.time_to_writable(t0)
        t.in_hold += was_frozen
        t.longest = max(t.longest, took)
        assert took < WRITABLE_WITHIN, f"writable only {took:.3f} s after the kill ({t.context()})"
        cycle.finish(t.context())
        t.assert_all_thawed()
        # The guard removes the marker once it thawed every member; killed
        # before the guard started, or after it was told all is thawed,
        # vssd leaves it to the next start, which must find nothing frozen.
        t.markers_left += marker.exists()
        log_before = len(vssd.log())
        vssd.start()
        assert not marker.exists(), t.context()
        assert "was still frozen" not in vssd.log()[log_before:], (t.context(), vssd.log()[log_before:])
        t.start_writer()
        t.count("a set survived" if t.check_store() else "no set")
        t.delete_all()
        t.slot_is_free()


def test_kill_requestor_at_random_moments(torture):
    """vss-test-requestor (an auto-release set: it must vanish) and vssadmin
    (a persistent set: it stays if it was finished) killed in turn."""
    t = torture("kill requestor")
    vssd = t.vssd
    for kind, cycle in t.cycles({"requestor": requestor_cycle(t.vols), "vssadmin": t.create_cmd()}):
        killed = cycle.kill()
        results = cycle.finish(t.context())
        t.wait_slot_free()
        if kind == "requestor":
            # The last step the requestor got an answer to.
            lines = results[-1][2].splitlines() if results else []
            t.count(f"requestor after {lines[-1].split()[0] if lines else 'nothing'}")
            # Its auto-release set goes as vssd sees its connection drop.
            wait_until(lambda: vssd.list_shadows() == [] and t.host.store_entries() == [], timeout=30,
                       what=f"the auto-release set to vanish ({t.context()})")
        else:
            t.count(f"vssadmin in {killed[1] if killed else 'between'}")
        # A set vssadmin finished is persistent and stays.
        t.check_store()
        t.delete_all()
        t.slot_is_free()
        t.assert_all_thawed()


def test_kill_writer_at_random_moments(torture):
    """The set fails or succeeds without the writer; nothing stays frozen."""
    t = torture("kill writer")
    for _, cycle in t.cycles({"vssadmin": t.create_cmd()}):
        t.writer.send_signal(signal.SIGKILL)
        _, code, out, err = cycle.finish(t.context())[0]
        if code == 0:
            t.count("set made: " + json.loads(out)[0]["consistency"])
        else:
            # "writer 'torture' failed: [9] Failed at freeze: VSS_E_WRITER_NOT_RESPONDING (0x80042319): ..."
            m = re.search(r"writer 'torture' failed: \[\d+\] ([^:]+): (VSS_E_\w+)", err)
            assert m, f"the failure does not name the writer: {err} ({t.context()})"
            t.count(f"set failed: {m[1].lower()}, {m[2]}")
        # vssadmin deleted a set that failed.
        t.check_store()
        t.assert_all_thawed()
        t.delete_all()
        t.start_writer()
        t.slot_is_free()
