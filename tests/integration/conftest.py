# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for the integration tests: real loop-mounted filesystems and a
private vssd on a private socket and state directory.

Everything a test makes is undone in the fixture's teardown, also when the
test fails: daemons started here are stopped by PID, filesystems unmounted,
loop devices detached by their image file.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("VSS_BUILD_DIR", ROOT / "build"))
VSSD = BUILD / "src" / "vssd" / "vssd"
VSSADMIN = BUILD / "src" / "vssadmin" / "vssadmin"
REQUESTOR = BUILD / "tests" / "vss-test-requestor"

# What a sanitizer prints when it finds something.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)


def assert_no_sanitizer_report(text, what):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, f"{what}: sanitizer report:\n{text}"


def run(*cmd, check=True, **kw):
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True, **kw)


def pytest_configure(config):
    if os.geteuid() != 0:
        pytest.exit("the integration tests need root (loop devices, mounts)", returncode=1)
    for binary in (VSSD, VSSADMIN, REQUESTOR):
        if not binary.exists():
            pytest.exit(f"{binary} is missing: build first (make build)", returncode=1)


class LoopFs:
    """A filesystem on a loop device backed by a sparse image file."""

    def __init__(self, workdir, fstype="btrfs", size="1G", name=None):
        name = name or fstype
        self.image = workdir / f"{name}.img"
        self.mnt = workdir / name
        self.fstype = fstype
        self.device = None
        self.mounted = False
        self.mnt.mkdir()
        run("truncate", "-s", size, self.image)
        self.device = run("losetup", "-f", "--show", self.image).stdout.strip()
        mkfs = {"btrfs": ["mkfs.btrfs", "-q", "-f"], "ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"]}
        run(*mkfs[fstype], self.device)
        run("mount", self.device, self.mnt)
        self.mounted = True
        os.chmod(self.mnt, 0o755)

    def subvolume(self, name):
        path = self.mnt / name
        run("btrfs", "subvolume", "create", path)
        return path

    def store(self):
        """The vss snapshot store of this btrfs filesystem."""
        return self.mnt / ".vss"

    def store_entries(self):
        store = self.store()
        return sorted(p.name for p in store.iterdir()) if store.exists() else []

    def destroy(self):
        if self.mounted:
            for _ in range(50):
                if run("umount", self.mnt, check=False).returncode == 0:
                    self.mounted = False
                    break
                time.sleep(0.1)
            else:
                run("umount", "-l", self.mnt, check=False)
                self.mounted = False
        for line in run("losetup", "-j", self.image, check=False).stdout.splitlines():
            run("losetup", "-d", line.split(":")[0], check=False)


@pytest.fixture
def workdir():
    # World-readable, so that a requestor run as another user reaches the socket.
    d = pathlib.Path(tempfile.mkdtemp(prefix="vss-test-", dir="/tmp"))
    os.chmod(d, 0o755)
    made = []
    yield d, made
    for fs in reversed(made):
        fs.destroy()
    # Never remove a tree that still has something mounted in it.
    if not any(fs.mounted for fs in made):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_fs(workdir):
    d, made = workdir

    def make(fstype="btrfs", size="1G", name=None):
        fs = LoopFs(d, fstype, size, name)
        made.append(fs)
        return fs

    return make


@pytest.fixture
def btrfs(make_fs):
    return make_fs("btrfs")


class Result:
    def __init__(self, line):
        main, _, self.message = line.partition(" | ")
        parts = main.split(" ", 2)
        self.step = parts[0]
        self.hr = parts[1] if len(parts) > 1 else ""
        self.detail = parts[2] if len(parts) > 2 else ""

    def __repr__(self):
        return f"{self.step} {self.hr} {self.detail} | {self.message}"


def parse_results(stdout):
    return [Result(line) for line in stdout.splitlines() if line.strip()]


class Daemon:
    """A private vssd: its own socket, state directory and configuration."""

    def __init__(self, workdir, config="", env=None):
        self.dir = workdir / "vssd"
        self.dir.mkdir(exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.socket = self.dir / "vssd.sock"
        self.state = self.dir / "state"
        self.config = self.dir / "vssd.conf"
        self.logfile = self.dir / "vssd.log"
        self.config.write_text(config)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.logs = []

    def start(self):
        log = open(self.logfile, "a")
        self.proc = subprocess.Popen(
            [VSSD, "--socket", self.socket, "--state-dir", self.state, "--config", self.config, "--log-level=debug"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"vssd exited at start:\n{self.log()}"
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.socket))
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"vssd did not start listening:\n{self.log()}")

    def log(self):
        return self.logfile.read_text() if self.logfile.exists() else ""

    def stop(self):
        """SIGTERM, and check that vssd exited cleanly with no sanitizer report."""
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"vssd did not stop on SIGTERM:\n{self.log()}")
        self.proc = None
        assert_no_sanitizer_report(self.log(), "vssd")
        assert code == 0, f"vssd exited with {code}:\n{self.log()}"

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def client_env(self):
        env = dict(os.environ)
        env["VSS_SOCKET"] = str(self.socket)
        return env

    def vssadmin(self, *args, check=True, user=None):
        cmd = [VSSADMIN, *args]
        if user:
            cmd = ["setpriv", *user, *cmd]
        p = run(*cmd, check=False, env=self.client_env())
        assert_no_sanitizer_report(p.stderr, "vssadmin")
        if check:
            assert p.returncode == 0, f"vssadmin {' '.join(map(str, args))} failed:\n{p.stderr}\n{self.log()}"
        return p

    def list_shadows(self, *args):
        import json
        return json.loads(self.vssadmin("list", "shadows", "--json", *args).stdout)

    def requestor(self, *steps, user=None, timeout=120):
        cmd = [REQUESTOR, *steps]
        if user:
            cmd = ["setpriv", *user, *cmd]
        p = run(*cmd, check=False, env=self.client_env(), timeout=timeout)
        assert_no_sanitizer_report(p.stderr, "vss-test-requestor")
        assert p.returncode == 0, f"requestor exited with {p.returncode}:\n{p.stdout}\n{p.stderr}"
        return parse_results(p.stdout)

    def spawn_requestor(self, *steps):
        """Start a requestor that stops at its "hold" step; returns once it got there."""
        p = subprocess.Popen([REQUESTOR, *map(str, steps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=self.client_env())
        lines = []
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("hold "):
                return p, [Result(x) for x in lines]
        p.wait()
        raise AssertionError(f"requestor ended before its hold step:\n" + "\n".join(lines) + p.stderr.read())

    def wait_log(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"vssd never logged {text!r}:\n{self.log()}")


@pytest.fixture
def daemon_factory(workdir):
    d, _ = workdir
    daemons = []

    def make(config="", env=None, start=True):
        dm = Daemon(d, config, env)
        daemons.append(dm)
        if start:
            dm.start()
        return dm

    yield make
    for dm in daemons:
        if dm.proc:
            dm.stop()


@pytest.fixture
def vssd(daemon_factory):
    return daemon_factory()


def by_step(results, step):
    return [r for r in results if r.step == step]


def wait_until(predicate, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
