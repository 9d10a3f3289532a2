# SPDX-License-Identifier: LGPL-2.1-or-later
"""vssadmin exec: a command reads a set at its volumes' own paths, in a mount
namespace of its own, and nothing is left once it is done, however it ends.

A writer keeps changing both volumes while the sets are made: files f0..f7,
alternately on volume A and B, each overwritten in turn with the sequence
number of the write (16 bytes, durable on return). At any instant, for some
k, each file holds the last of the writes 1..k made to it; so must every
archive made from a set, at the volumes' paths."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import VSSADMIN, run, wait_until

NESTING = "MaxImageNesting = 2\n"
NFILES = 8

WRITER = r"""
import os, signal, sys
dirs, n = sys.argv[1:3], int(sys.argv[3])
fds = [os.open(os.path.join(dirs[i % 2], f"f{i}"), os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o644) for i in range(n)]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
seq = 0
while not stop:
    seq += 1
    os.pwrite(fds[seq % n], b"%016d" % seq, 0)
    if seq == 1:
        open(sys.argv[4], "w").close()
"""


def path_of(vols, i):
    return f"{vols[i % 2]}/f{i}"


def check_cut(got):
    """got[i]: the sequence number file i holds in one archive."""
    k = max(got)
    want = [max((s for s in range(1, k + 1) if s % NFILES == i), default=0) for i in range(NFILES)]
    assert got == want, f"not one instant: files hold {got}, a cut after write {k} holds {want}"
    return k


@pytest.fixture
def live(images, workdir, daemon_factory):
    """Two image volumes under the writer, and a vssd."""
    d, _ = workdir
    a, b = images(2)
    vols = [str(a.mnt), str(b.mnt)]
    started = d / "writer-started"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, *vols, str(NFILES), str(started)])
    try:
        wait_until(started.exists, what="the writer to start")
        yield daemon_factory(config=NESTING), vols, d
    finally:
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=60) == 0


def exec_(vssd, *args, check=True, env=None):
    e = vssd.client_env()
    e.update(env or {})
    p = run(VSSADMIN, "exec", *args, check=False, env=e)
    if check:
        assert p.returncode == 0, f"vssadmin exec {' '.join(map(str, args))}: {p.returncode}\n{p.stderr}\n{vssd.log()}"
    return p


def assert_nothing_left(vssd):
    """No snapshot, no exposure, no clone attached: of this test's own
    (other suites may run beside it)."""
    assert vssd.list_shadows() == []
    mine = str(vssd.dir.parent) + "/"
    mounts = [m for m in run("findmnt", "-rn", "-o", "TARGET").stdout.split() if m.startswith(mine)]
    assert not [m for m in mounts if "/exposed/" in m], mounts
    backing = [f for f in run("losetup", "-a", "-n", "-O", "BACK-FILE").stdout.split() if f.startswith(mine)]
    assert not [f for f in backing if "/.vss/" in f], backing


def test_exec_reads_the_cut_at_the_volumes_paths_with_tar(live):
    vssd, vols, d = live
    cuts = []
    for i in range(3):
        out = d / f"set{i}.tar"
        p = exec_(vssd, *[f"--for={v}" for v in vols], "--", "tar", "-cf", str(out), *vols)
        assert "crash-consistent across the set" in p.stderr
        with tarfile.open(out) as t:
            names = t.getnames()
            # tar records the volumes' own paths (less the leading /).
            got = [int(t.extractfile(path_of(vols, f).lstrip("/")).read()) for f in range(NFILES)]
        assert all(n.startswith(tuple(v.lstrip("/") for v in vols)) for n in names), names
        cuts.append(check_cut(got))
        assert_nothing_left(vssd)
    assert cuts == sorted(cuts) and len(set(cuts)) == 3, cuts


def test_exec_restic_finds_its_parent_and_reads_the_cut(live):
    vssd, vols, d = live
    env = {"RESTIC_REPOSITORY": str(d / "restic"), "RESTIC_PASSWORD": "vss", "RESTIC_CACHE_DIR": str(d / "cache")}
    run("restic", "init", env={**os.environ, **env})
    outs = [exec_(vssd, *[f"--for={v}" for v in vols], "--", "restic", "backup", *vols, env=env) for _ in range(2)]
    assert "using parent snapshot" not in outs[0].stdout
    assert "using parent snapshot" in outs[1].stdout, outs[1].stdout
    snaps = json.loads(run("restic", "snapshots", "--json", env={**os.environ, **env}).stdout)
    assert len(snaps) == 2 and all(sorted(s["paths"]) == sorted(vols) for s in snaps), snaps
    cuts = []
    for s in snaps:
        got = [int(run("restic", "dump", s["id"], path_of(vols, f), env={**os.environ, **env}).stdout)
               for f in range(NFILES)]
        cuts.append(check_cut(got))
    assert cuts[0] < cuts[1], cuts
    assert_nothing_left(vssd)


def test_exec_borg_archives_the_cut(live):
    vssd, vols, d = live
    env = {"BORG_BASE_DIR": str(d / "borg-base"), "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
    repo = d / "borg"
    run("borg", "init", "-e", "none", repo, env={**os.environ, **env})
    exec_(vssd, *[f"--for={v}" for v in vols], "--", "borg", "create", f"{repo}::one", *vols, env=env)
    got = [int(run("borg", "extract", "--stdout", f"{repo}::one", path_of(vols, f).lstrip("/"),
                   env={**os.environ, **env}).stdout) for f in range(NFILES)]
    check_cut(got)
    assert_nothing_left(vssd)


SCRIPT = r"""
set -e
for v in "$VSS_VOLUME_1" "$VSS_VOLUME_2"; do test -n "$v"; done
echo "set=$VSS_SNAPSHOT_SET_ID count=$VSS_VOLUME_COUNT consistency=$VSS_CONSISTENCY"
echo "snapshot1=$VSS_SNAPSHOT_1 snapshot2=$VSS_SNAPSHOT_2 id1=$VSS_SHADOW_ID_1"
if touch "$VSS_SNAPSHOT_1/new" 2>/dev/null; then echo writable; fi
cat "$VSS_SNAPSHOT_1/marker"
cat marker
"""


def test_exec_environment_read_only_and_working_directory(images, daemon_factory, workdir):
    """The command sees the set read-only, also through a relative path from
    a working directory inside a volume, and learns the set from its
    environment; the live volume changing under it changes nothing."""
    a, b = images(2)
    vssd = daemon_factory(config=NESTING)
    vols = sorted([str(a.mnt), str(b.mnt)])
    (a.mnt / "marker").write_text("in the set\n")
    p = run(VSSADMIN, "exec", f"--for={vols[0]}", f"--for={vols[1]}", "--", "sh", "-c",
            f"echo changed > {vols[0]}/marker.live; " + SCRIPT, check=False, env=vssd.client_env(), cwd=vols[0])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "count=2 consistency=crash-consistent across the set" in lines[0]
    assert lines[1].startswith(f"snapshot1={vols[0]} snapshot2={vols[1]} id1=")
    assert "writable" not in lines
    assert lines[2:] == ["in the set", "in the set"], lines


def test_exec_at_mirrors_the_set_under_a_directory(images, daemon_factory, workdir):
    d, _ = workdir
    a, b = images(2)
    vssd = daemon_factory(config=NESTING)
    (a.mnt / "marker").write_text("in the set\n")
    at = d / "mirror"
    at.mkdir()
    p = exec_(vssd, f"--for={a.mnt}", f"--for={b.mnt}", f"--at={at}", "--", "sh", "-c",
              'cat "$VSS_SNAPSHOT_1/marker"; echo "$VSS_SNAPSHOT_1"')
    assert p.stdout.splitlines() == ["in the set", f"{at}{sorted([str(a.mnt), str(b.mnt)])[0]}"]
    # Nothing of it outside the namespace.
    assert list(at.iterdir()) == []
    assert_nothing_left(vssd)


def test_exec_of_an_existing_set_keeps_it(images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    (a.mnt / "marker").write_text("kept\n")
    made = json.loads(vssd.vssadmin("create", "shadow", f"--for={a.mnt}", "--json").stdout)
    (a.mnt / "marker").write_text("changed\n")
    p = exec_(vssd, f"--set={made[0]['set_id']}", "--", "cat", f"{a.mnt}/marker")
    assert p.stdout == "kept\n"
    shadows = vssd.list_shadows()
    assert [s["id"] for s in shadows] == [made[0]["id"]] and shadows[0]["exposed_name"] is None


def test_exec_exit_status_and_failures(images, daemon_factory):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    assert exec_(vssd, f"--for={a.mnt}", "--", "sh", "-c", "exit 3", check=False).returncode == 3
    assert exec_(vssd, f"--for={a.mnt}", "--", "sh", "-c", "kill -TERM $$", check=False).returncode == 128 + 15
    p = exec_(vssd, f"--for={a.mnt}", "--", "/nonexistent/command", check=False)
    assert p.returncode == 127 and "cannot run the command /nonexistent/command" in p.stderr, p.stderr
    p = exec_(vssd, f"--for={a.mnt}", "--", check=False)
    assert p.returncode == 2 and "E_INVALIDARG" in p.stderr
    p = exec_(vssd, f"--for={a.mnt}", "true", check=False)
    assert p.returncode == 2 and "exec needs \"--\" before its command" in p.stderr
    p = exec_(vssd, "--for=/nonexistent", "--", "true", check=False)
    assert p.returncode != 0 and "VSS_E_OBJECT_NOT_FOUND" in p.stderr
    assert_nothing_left(vssd)


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["SIGKILL vssadmin", "SIGTERM vssadmin", "SIGINT group", "SIGKILL command"])
def test_exec_leaves_nothing_however_it_ends(images, daemon_factory, how):
    (a,) = images(1)
    vssd = daemon_factory(config=NESTING)
    # A command that dies of SIGINT even when this test runs with SIGINT
    # ignored (a background job of a non-interactive shell): exec passes
    # dispositions on, as env(1) does.
    # It says when it is ready: a signal sent while Python still starts
    # would find SIGINT ignored.
    ready = vssd.dir / "command-ready"
    command = [sys.executable, "-c", "import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "open(sys.argv[1], 'w').close(); time.sleep(1000)", str(ready)]
    p = subprocess.Popen([VSSADMIN, "exec", f"--for={a.mnt}", "--", *command], env=vssd.client_env(),
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: ready.exists() and children_of(p.pid) and vssd.list_shadows(), what="the command to run")
        (cmd,) = children_of(p.pid)
        # The command runs in a mount namespace of its own.
        assert os.readlink(f"/proc/{cmd}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        if how == "SIGKILL vssadmin":
            p.send_signal(signal.SIGKILL)
        elif how == "SIGTERM vssadmin":
            p.send_signal(signal.SIGTERM)
        elif how == "SIGINT group":
            os.killpg(p.pid, signal.SIGINT)
        else:
            os.kill(cmd, signal.SIGKILL)
        try:
            code = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack = {pid: open(f"/proc/{pid}/wchan").read() for pid in [p.pid, *children_of(p.pid)]
                     if os.path.exists(f"/proc/{pid}/wchan")}
            raise AssertionError(f"vssadmin did not end ({how}): waiting in {stack}; command {cmd} alive: "
                                 f"{alive(cmd)}\n{vssd.log()[-3000:]}")
        want = {"SIGKILL vssadmin": -9, "SIGTERM vssadmin": 128 + 15, "SIGINT group": 128 + 2,
                "SIGKILL command": 128 + 9}[how]
        assert code == want, p.stderr.read()
        wait_until(lambda: not alive(cmd), what="the command to end")
        wait_until(lambda: vssd.list_shadows() == [], what="the set to go")
        assert_nothing_left(vssd)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_autoretry_waits_for_the_creation_slot(btrfs, vssd):
    a = btrfs.subvolume("a")
    holder, _ = vssd.spawn_requestor("create", "init", "gather", "start", "pause")
    try:
        p = vssd.vssadmin("create", "shadow", f"--for={a}", check=False)
        assert p.returncode != 0 and "VSS_E_SNAPSHOT_SET_IN_PROGRESS" in p.stderr
        waiting = subprocess.Popen([VSSADMIN, "create", "shadow", f"--for={a}", "--autoretry=60", "--json"],
                                   env=vssd.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        assert waiting.poll() is None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert "waiting up to 60 s" in err
        assert json.loads(out)[0]["volume"] == str(a)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
