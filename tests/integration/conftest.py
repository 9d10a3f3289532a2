# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for the integration tests: real loop-mounted filesystems and a
private vssd on a private socket and state directory.

Everything a test makes is undone in the fixture's teardown, also when the
test fails: daemons started here are stopped by PID, filesystems unmounted,
loop devices detached by their image file.
"""

import errno
import json
import fcntl
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
TEST_WRITER = BUILD / "tests" / "vss-test-writer"

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
    for binary in (VSSD, VSSADMIN, REQUESTOR, TEST_WRITER):
        if not binary.exists():
            pytest.exit(f"{binary} is missing: build first (make build)", returncode=1)
    config.addinivalue_line("markers", "app_load: drives an application under load (pgbench, transfers); "
                            "VSS_SKIP_APP_LOAD=1 deselects it")


def pytest_collection_modifyitems(config, items):
    # The sanitizer run of make check deselects the application load tests:
    # they spend their minutes in PostgreSQL and MariaDB, not in vss's code,
    # and the normal build runs them.
    if os.environ.get("VSS_SKIP_APP_LOAD") != "1":
        return
    skipped = [i for i in items if i.get_closest_marker("app_load")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [i for i in items if not i.get_closest_marker("app_load")]


FIFREEZE = 0xC0045877
FITHAW = 0xC0045878


def thaw(path):
    """FITHAW, ignoring "not frozen": a test must never leave a filesystem frozen."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        fcntl.ioctl(fd, FITHAW, 0)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_frozen_fd(fd):
    """Probe without writing (a write to a frozen filesystem would hang):
    FIFREEZE fails with EBUSY on a frozen filesystem; on a thawed one it
    succeeds and is undone at once. By fd: also a filesystem no longer
    mounted anywhere."""
    try:
        fcntl.ioctl(fd, FIFREEZE, 0)
    except OSError as e:
        if e.errno == errno.EBUSY:
            return True
        raise
    try:
        fcntl.ioctl(fd, FITHAW, 0)
    except OSError as e:
        # A guard thawing every member may have undone the probe's freeze.
        if e.errno != errno.EINVAL:
            raise
    return False


def is_frozen(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return is_frozen_fd(fd)
    finally:
        os.close(fd)


def mounts_below(directory):
    """Mount points at or below directory, deepest first."""
    targets = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].encode().decode("unicode_escape")
            if target == str(directory) or target.startswith(str(directory) + "/"):
                targets.append(target)
    return sorted(set(targets), key=lambda t: t.count("/"), reverse=True)


def unmount(target):
    thaw(target)
    for _ in range(50):
        if run("umount", target, check=False).returncode == 0:
            return
        time.sleep(0.1)
    run("umount", "-l", target, check=False)


def detach_loops_below(directory):
    for line in run("losetup", "-a", "-O", "NAME,BACK-FILE", "-n", check=False).stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().startswith(str(directory) + "/"):
            run("losetup", "-d", parts[0], check=False)


def no_clone_loops(directory):
    """Wait until no loop device reads a clone (a snapshot in a .vss store) of
    the test in directory: autoclear detaches them once their mount is gone,
    a moment later. Other tests' clones (tests run side by side) do not count."""
    def none():
        return not [line for line in run("losetup", "-a").stdout.splitlines()
                    if f"{directory}/" in line and ".vss/" in line]
    wait_until(none, what="the clones' loop devices to go")
    return True


class LoopFs:
    """A filesystem on a loop device backed by a sparse image file; on=another
    mounted filesystem (anything with .mnt: a LoopFs, an LV of tests/lvm) or
    a directory puts the image there (a guest on a host)."""

    def __init__(self, workdir, fstype="btrfs", size="1G", name=None, on=None, mount=True):
        name = name or fstype
        where = getattr(on, "mnt", None) or on or workdir
        self.image = where / f"{name}.img"
        self.mnt = workdir / name
        self.fstype = fstype
        self.device = None
        self.mounted = False
        self.mnt.mkdir()
        run("truncate", "-s", size, self.image)
        mkfs = {"btrfs": ["mkfs.btrfs", "-q", "-f"], "ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"]}
        run(*mkfs[fstype], self.image)
        if mount:
            self.mount()

    def mount(self):
        self.device = run("losetup", "-f", "--show", self.image).stdout.strip()
        run("mount", self.device, self.mnt)
        self.mounted = True
        os.chmod(self.mnt, 0o755)

    def subvolume(self, name):
        path = self.mnt / name
        run("btrfs", "subvolume", "create", path)
        return path

    def store(self):
        """The vss snapshot store of this filesystem."""
        return self.mnt / ".vss"

    def store_entries(self):
        store = self.store()
        return sorted(p.name for p in store.iterdir()) if store.exists() else []

    def destroy(self):
        if self.mounted:
            for target in mounts_below(self.mnt):
                unmount(target)
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
    # Whatever a test or vssd mounted below d (exposed snapshots too), then
    # the test's filesystems, guests before the hosts holding their images.
    for target in mounts_below(d):
        if not any(str(fs.mnt) == target for fs in made):
            unmount(target)
    for fs in reversed(made):
        fs.destroy()
    detach_loops_below(d)
    # Never remove a tree that still has something mounted in it.
    if not mounts_below(d):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_fs(workdir):
    d, made = workdir

    def make(fstype="btrfs", size="1G", name=None, on=None, mount=True):
        fs = LoopFs(d, fstype, size, name, on, mount)
        made.append(fs)
        return fs

    return make


@pytest.fixture
def btrfs(make_fs):
    return make_fs("btrfs")


@pytest.fixture
def host(make_fs):
    """An XFS with reflink (the default), to hold image files."""
    return make_fs("xfs", "2G", "host")


@pytest.fixture
def images(make_fs, host):
    """make(n, fstype="ext4"): n image volumes on the host, mounted."""
    def make(n, fstype="ext4", size=None):
        size = size or ("512M" if fstype == "xfs" else "256M")  # XFS needs 300 MB at least
        return [make_fs(fstype, size, f"vol{i}", on=host) for i in range(n)]
    return make


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
        # A lock of its own in place of dpkg's, so that daemons of tests
        # running side by side do not wait for each other; a test's own
        # DpkgLock= comes later and wins.
        self.dpkg_lock = self.dir / "dpkg-lock-frontend"
        self.dpkg_lock.touch()
        self.config.write_text(f"[vssd]\nDpkgLock = {self.dpkg_lock}\n{config}")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.logs = []
        self.children = []

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
        # errors="replace": a log line may quote a file name in any encoding.
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

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
        """Start a requestor that stops at its "hold" step (or "pause": write a
        line to p.stdin to let it go on); returns once it got there."""
        p = subprocess.Popen([REQUESTOR, *map(str, steps)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=self.client_env())
        lines = []
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("hold ") or line.startswith("pause "):
                return p, [Result(x) for x in lines]
        p.wait()
        raise AssertionError("requestor ended before its hold step:\n" + "\n".join(lines) + p.stderr.read())

    def background(self, *cmd):
        """Start a client (a requestor, vssadmin) and return at once; the
        caller reads its output with communicate()."""
        return subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.client_env())

    def spawn(self, *cmd, ready="ready", user=None):
        """Start a program (a writer) with VSS_SOCKET set; returns once it
        printed its ready line. It is stopped (SIGTERM, then SIGKILL) when the
        test ends, and must not have printed a sanitizer report."""
        cmd = [str(c) for c in cmd]
        if user:
            cmd = ["setpriv", *user, *cmd]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.client_env())
        self.children.append(p)
        for line in p.stdout:
            if line.strip() == ready:
                return p
        p.wait()
        raise AssertionError(f"{cmd[0]} ended before it was ready:\n{p.stderr.read()}")

    def writer(self, name, *args):
        """A vss-test-writer (tests/integration/writer.c) named name."""
        return self.spawn(TEST_WRITER, f"--name={name}", *args)

    def stop_children(self):
        for p in self.children:
            terminate(p)
            err = p.stderr.read() if p.stderr else ""
            assert_no_sanitizer_report(err, "child")
        self.children = []

    def wait_log(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"vssd never logged {text!r}:\n{self.log()}")


def daemons_in(d, default_config=""):
    """make(config, env, start) of Daemons in d, and stop_all() for the
    fixture's teardown (their children first)."""
    daemons = []

    def make(config=default_config, env=None, start=True):
        dm = Daemon(d, config, env)
        daemons.append(dm)
        if start:
            dm.start()
        return dm

    def stop_all():
        for dm in daemons:
            dm.stop_children()
            if dm.proc:
                dm.stop()

    return make, stop_all


@pytest.fixture
def daemon_factory(workdir):
    d, _ = workdir
    make, stop_all = daemons_in(d)
    yield make
    stop_all()


@pytest.fixture
def vssd(daemon_factory):
    return daemon_factory()


def by_step(results, step):
    return [r for r in results if r.step == step]


def terminate(p, timeout=10):
    """SIGTERM, then SIGKILL if it does not end in time."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def write_summary(name, text):
    """Keep one line per long-running test in $VSS_BUILD_DIR/torture-summary.txt
    (make check-long reports its figures there), replacing that test's last one."""
    path = BUILD / "torture-summary.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [line for line in lines if not line.startswith(f"{name}: ")] + [text]
    path.write_text("\n".join(lines) + "\n")


def wait_until(predicate, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def create_shadow(vssd, *vols, check=True):
    """vssadmin create shadow of the volumes (objects with .mnt), --json."""
    return vssd.vssadmin("create", "shadow", *[f"--for={v.mnt}" for v in vols], "--json", check=check)


def writers_by_name(vssd):
    return {w["name"]: w for w in json.loads(vssd.vssadmin("list", "writers", "--json").stdout)}


def stop_writer(p, what):
    """SIGTERM: a writer unsubscribes and exits 0. Returns its stderr."""
    p.terminate()
    code = p.wait(timeout=30)
    err = p.stderr.read()
    assert_no_sanitizer_report(err, what)
    assert code == 0, f"{what} exited with {code} on SIGTERM:\n{err}"
    return err
