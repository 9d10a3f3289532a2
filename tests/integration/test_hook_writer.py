# SPDX-License-Identifier: LGPL-2.1-or-later
"""vss-hook-writer (src/writers/hook/, docs/man/vss-hook-writer.md) against a
real vssd on a real btrfs: the scripts of a hooks directory run with "freeze"
in name order before the snapshot and with "thaw" in reverse order after it;
leftovers are skipped; a script that fails or runs too long vetoes the set,
and whatever had begun to freeze is thawed."""

import json
import os
import re
import signal
import time

import pytest

from conftest import BUILD, VSSADMIN, assert_no_sanitizer_report, run, wait_until

HOOK_WRITER = BUILD / "src" / "writers" / "hook" / "vss-hook-writer"
CLASS_ID = "{554299a5-8fcd-4eac-b5d6-fc3111ac66f6}"
HEX = {"VSS_E_WRITERERROR_RETRYABLE": "0x800423f3", "VSS_E_WRITERERROR_NONRETRYABLE": "0x800423f4",
       "VSS_E_WRITERERROR_TIMEOUT": "0x800423f2"}


class Hooks:
    """A hooks directory whose scripts append "NAME ARG" to one log."""

    def __init__(self, directory, logfile):
        self.dir = directory
        self.logfile = logfile
        self.dir.mkdir()
        self.logfile.touch()

    def script(self, name, body="", mode=0o755, at=None):
        """#!/bin/sh that logs "NAME $1", then runs body."""
        path = at or self.dir / name
        path.write_text(f'#!/bin/sh\necho "{name} $1" >> "{self.logfile}"\n{body}\n')
        os.chmod(path, mode)
        return path

    def log(self):
        return self.logfile.read_text().splitlines()

    def events(self):
        """The freeze, thaw, abort and hang-ended lines, without the test writer's timestamps."""
        return [" ".join(line.split()[:2]) for line in self.log()
                if len(line.split()) >= 2 and line.split()[1] in ("freeze", "thaw", "abort", "hang-ended")]

    def clear(self):
        self.logfile.write_text("")


@pytest.fixture
def hooks(workdir):
    d, _ = workdir
    return Hooks(d / "hooks.d", d / "hooks.log")


def start(vssd, hooks, *args):
    assert HOOK_WRITER.exists(), f"{HOOK_WRITER} is missing: build first"
    return vssd.spawn(HOOK_WRITER, *args, hooks.dir)


def stop(p):
    """SIGTERM the writer: it leaves vssd and exits 0. Returns its stderr."""
    p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=30)
    # Scripts' stderr is echoed as it came, which need not be UTF-8.
    err = p.stderr.buffer.read().decode(errors="replace")
    assert_no_sanitizer_report(err, "vss-hook-writer")
    assert code == 0, f"vss-hook-writer exited with {code}:\n{err}"
    return err


def hook_writers(vssd):
    return [w for w in json.loads(vssd.vssadmin("list", "writers", "--json").stdout) if w["name"] == "hooks"]


def failure_line(stderr, state, state_text, code):
    m = re.search(rf"^vssadmin: writer 'hooks' failed: \[{state}\] {state_text}: {code} \({HEX[code]}\): (.*)$",
                  stderr, re.M)
    assert m, f"no failure of the hooks writer with {code} in:\n{stderr}"
    return m.group(1)


def alive(pid):
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_freeze_in_name_order_before_the_snapshot_thaw_in_reverse_after(btrfs, vssd, hooks, workdir):
    d, _ = workdir
    vol = btrfs.subvolume("data")
    # Byte order, as in the C locale: "10" before "50" before "9", digits
    # before upper case before lower case.
    for name in ("9-third", "10-first", "B-fourth", "a-fifth"):
        hooks.script(name)
    hooks.script("50-second", f"""
case "$1" in
freeze) for v in $VSS_VOLUMES; do echo frozen > "$v/written-at-freeze"; done ;;
thaw) for v in $VSS_VOLUMES; do echo thawed > "$v/written-at-thaw"; done ;;
esac
{{
    echo "set $VSS_SNAPSHOT_SET_ID"
    echo "volumes $VSS_VOLUMES"
    echo "stdin $(readlink /proc/self/fd/0)"
    echo "inherited $INHERITED_BY_SCRIPTS"
    grep -E '^Sig(Blk|Ign):' /proc/self/status
}} > "{d}/env.$1"
echo "to stdout at $1"
""")
    os.environ["INHERITED_BY_SCRIPTS"] = "yes"
    try:
        p = start(vssd, hooks)
    finally:
        del os.environ["INHERITED_BY_SCRIPTS"]

    out = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol}", "--json").stdout)
    order = ["10-first", "50-second", "9-third", "B-fourth", "a-fifth"]
    assert hooks.log() == [f"{n} freeze" for n in order] + [f"{n} thaw" for n in reversed(order)]

    # What the freeze script wrote is in the snapshot, what the thaw script
    # wrote is not: freeze ran before the snapshot was cut, thaw after.
    snap = out[0]["snapshot_path"]
    assert open(os.path.join(snap, "written-at-freeze")).read() == "frozen\n"
    assert not os.path.exists(os.path.join(snap, "written-at-thaw"))
    assert (vol / "written-at-thaw").read_text() == "thawed\n"

    for event in ("freeze", "thaw"):
        env = dict(line.split(None, 1) for line in (d / f"env.{event}").read_text().splitlines())
        assert env["set"] == out[0]["set_id"]
        assert env["volumes"] == str(vol)
        assert env["stdin"] == "/dev/null"
        assert env["inherited"] == "yes"
        # The writer's blocked SIGTERM and ignored SIGPIPE are not handed on.
        assert int(env["SigBlk:"], 16) == 0
        assert int(env["SigIgn:"], 16) & (1 << (signal.SIGPIPE - 1)) == 0

    assert hook_writers(vssd)[0]["state"] == 1
    err = stop(p)
    assert "vss-hook-writer: freeze: ran 5 scripts" in err
    assert "vss-hook-writer: thaw: ran 5 thaw scripts" in err
    # The scripts' stdout goes to the writer's stderr.
    assert "to stdout at freeze" in err and "to stdout at thaw" in err


def test_every_set_gives_the_scripts_its_own_set_and_volumes(btrfs, vssd, hooks, workdir):
    """One writer through sets of one volume, then two, then the other one
    alone: at each freeze and thaw the scripts see that set's id and volumes
    (libvss reads an event's context when a callback asks, and copies the
    volumes only when they changed)."""
    d, _ = workdir
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    hooks.script("10-env", f'echo "$1 $VSS_SNAPSHOT_SET_ID $VSS_VOLUMES" >> "{d}/env.log"')
    p = start(vssd, hooks)
    try:
        want = []
        for volumes in ([a], [a, b], [b]):
            out = json.loads(vssd.vssadmin("create", "shadow", *[f"--for={v}" for v in volumes],
                                           "--json").stdout)
            line = f"{out[0]['set_id']} {' '.join(str(v) for v in volumes)}"
            want += [f"freeze {line}", f"thaw {line}"]
        assert (d / "env.log").read_text().splitlines() == want
    finally:
        stop(p)


def test_leftovers_hidden_files_and_non_executables_are_not_run(btrfs, vssd, hooks, workdir):
    d, _ = workdir
    vol = btrfs.subvolume("data")
    hooks.script("20-real")
    # What qemu-guest-agent's fsfreeze-hook skips, ucf's leftovers, hidden files.
    leftovers = ["10-db.dpkg-old", "10-db.dpkg-new", "10-db.dpkg-dist", "10-db.dpkg-tmp", "10-db.dpkg-bak",
                 "10-db.dpkg-backup", "10-db.dpkg-remove", "10-db.ucf-dist", "10-db.ucf-old", "10-db.rpmnew",
                 "10-db.rpmsave", "10-db.rpmorig", "10-db.bak", "10-db.orig", "10-db.sample", "x~", ".hidden"]
    for name in leftovers:
        hooks.script(name)
    hooks.script("30-not-executable", mode=0o644)
    (hooks.dir / "40-directory").mkdir(mode=0o755)
    # A symbolic link to a script elsewhere runs, as with run-parts.
    os.symlink(hooks.script("50-link", at=d / "elsewhere.sh"), hooks.dir / "50-link")
    os.symlink(d / "missing", hooks.dir / "60-dangling")
    p = start(vssd, hooks)

    vssd.vssadmin("create", "shadow", f"--for={vol}")
    assert hooks.log() == ["20-real freeze", "50-link freeze", "50-link thaw", "20-real thaw"]
    err = stop(p)
    assert "skipping 30-not-executable: not executable" in err
    assert "skipping 40-directory: not a regular file" in err
    assert "skipping 10-db.dpkg-old: a package manager's or editor's leftover" in err
    assert "freeze: ran 2 scripts" in err


@pytest.mark.parametrize("status, code", [(3, "VSS_E_WRITERERROR_NONRETRYABLE"),
                                          (75, "VSS_E_WRITERERROR_RETRYABLE")])
def test_failing_freeze_script_vetoes_and_what_began_to_freeze_is_thawed(btrfs, vssd, hooks, status, code):
    vol = btrfs.subvolume("data")
    hooks.script("10-a")
    hooks.script("20-b")
    hooks.script("30-fails", f"""[ "$1" = freeze ] || exit 0
echo "connecting to the database" >&2
echo "cannot lock the tables" >&2
exit {status}""")
    hooks.script("40-never")
    p = start(vssd, hooks)
    assert hook_writers(vssd)[0]["last_error"] is None

    r = vssd.vssadmin("create", "shadow", f"--for={vol}", check=False)
    assert r.returncode != 0
    assert failure_line(r.stderr, 9, "Failed at freeze", code) == \
        f"30-fails freeze: exit {status}: connecting to the database; cannot lock the tables"
    assert "deleting the set" in r.stderr
    assert vssd.list_shadows() == []
    assert btrfs.store_entries() == []
    # The failing script is thawed too (it may have frozen half its
    # application), then those before it, last first; those after it never ran.
    vetoed = ["10-a freeze", "20-b freeze", "30-fails freeze", "30-fails thaw", "20-b thaw", "10-a thaw"]
    assert hooks.log() == vetoed

    # vssadmin list writers keeps the failure on record.
    w, = hook_writers(vssd)
    assert w["class_id"] == CLASS_ID
    assert (w["state"], w["state_text"]) == (9, "Failed at freeze")
    assert w["last_error"] == code
    assert "cannot lock the tables" in w["message"]

    # --ignore-writer-failures keeps the set all the same.
    hooks.clear()
    r = vssd.vssadmin("create", "shadow", f"--for={vol}", "--ignore-writer-failures", "--json", check=False)
    assert r.returncode == 0, r.stderr
    failure_line(r.stderr, 9, "Failed at freeze", code)
    assert "keeping the set although a writer failed" in r.stderr
    out = json.loads(r.stdout)
    assert [s["id"] for s in vssd.list_shadows()] == [out[0]["id"]]
    assert hooks.log() == vetoed
    err = stop(p)
    assert "freeze: vetoed; thawing 3 scripts" in err
    assert "cannot lock the tables" in err  # echoed as it came


@pytest.mark.parametrize("option, why", [
    ("--timeout=1", "still running after 1 s: killed"),
    # The freeze scripts share the freeze timeout, less a second for the answer.
    ("--freeze-timeout=2", "still running when the freeze timeout (2 s) was nearly over: killed"),
])
def test_script_past_its_timeout_is_killed_with_its_process_group_and_vetoes(btrfs, vssd, hooks, workdir, option,
                                                                             why):
    d, _ = workdir
    vol = btrfs.subvolume("data")
    pids = d / "pids"
    hooks.script("10-a")
    hooks.script("20-slow", f"""[ "$1" = freeze ] || exit 0
sleep 300 &
echo $! >> "{pids}"
echo $$ >> "{pids}"
echo "waiting for the lock" >&2
sleep 300""")
    p = start(vssd, hooks, option)

    t0 = time.monotonic()
    r = vssd.vssadmin("create", "shadow", f"--for={vol}", check=False)
    assert time.monotonic() - t0 < 20
    assert r.returncode != 0
    assert failure_line(r.stderr, 9, "Failed at freeze", "VSS_E_WRITERERROR_RETRYABLE") == \
        f"20-slow freeze: {why}: waiting for the lock"
    assert vssd.list_shadows() == []
    assert hooks.log() == ["10-a freeze", "20-slow freeze", "20-slow thaw", "10-a thaw"]
    # The script and what it started in the background are gone.
    started = [int(x) for x in pids.read_text().split()]
    assert len(started) == 2
    for pid in started:
        wait_until(lambda: not alive(pid), what=f"process {pid} of the killed script to end")

    # The writer goes on: without the slow script, the next set is made.
    (hooks.dir / "20-slow").unlink()
    hooks.clear()
    vssd.vssadmin("create", "shadow", f"--for={vol}")
    assert hooks.log() == ["10-a freeze", "10-a thaw"]
    assert hook_writers(vssd)[0]["state"] == 1
    stop(p)


def test_failing_thaw_scripts_do_not_stop_the_others_and_the_first_is_reported_the_set_stands(btrfs, vssd, hooks):
    vol = btrfs.subvolume("data")
    hooks.script("10-a", '[ "$1" = thaw ] && { echo "a cannot thaw" >&2; exit 4; }; exit 0')
    hooks.script("20-b")
    hooks.script("30-c", '[ "$1" = thaw ] && { echo "c cannot thaw" >&2; exit 5; }; exit 0')
    p = start(vssd, hooks)

    r = vssd.vssadmin("create", "shadow", f"--for={vol}", check=False)
    assert hooks.log() == ["10-a freeze", "20-b freeze", "30-c freeze", "30-c thaw", "20-b thaw", "10-a thaw"]
    assert failure_line(r.stderr, 10, "Failed at thaw", "VSS_E_WRITERERROR_NONRETRYABLE") == \
        "30-c thaw: exit 5: c cannot thaw (after the cut, made while it was frozen: the set stands)"
    # The cut was made while every script held its application: the set
    # is kept, and still application-consistent.
    assert r.returncode == 0, r.stderr
    (shadow,) = vssd.list_shadows()
    assert shadow["consistency"] == "application-consistent"
    err = stop(p)
    assert "thaw: 10-a thaw: exit 4: a cannot thaw" in err
    assert "thaw: ran 3 thaw scripts, not all successfully" in err


def test_failure_message_is_the_printable_tail_of_stderr(btrfs, vssd, hooks):
    vol = btrfs.subvolume("data")
    # 5000 bytes, then a last line with a non-ASCII letter, a byte that is
    # not UTF-8 and a control character: D-Bus carries only valid UTF-8.
    hooks.script("10-noisy", r"""[ "$1" = freeze ] || exit 0
head -c 5000 /dev/zero | tr '\0' x >&2
printf '\ncaf\303\251 \377\001 end\n' >&2
exit 1""")
    p = start(vssd, hooks)

    r = vssd.vssadmin("create", "shadow", f"--for={vol}", check=False)
    assert r.returncode != 0
    message = failure_line(r.stderr, 9, "Failed at freeze", "VSS_E_WRITERERROR_NONRETRYABLE")
    assert message.startswith("10-noisy freeze: exit 1: ...xxx")
    assert message.endswith("xxx; caf\u00e9 ?? end")
    assert len(message.encode()) < 1100
    stop(p)


def test_list_writers_shows_the_hook_writer_until_it_leaves(vssd, hooks):
    p = start(vssd, hooks)
    w, = hook_writers(vssd)
    assert w["class_id"] == CLASS_ID
    assert (w["state"], w["state_text"], w["last_error"]) == (1, "Stable", None)
    text = vssd.vssadmin("list", "writers").stdout
    assert "Writer name: 'hooks'" in text and f"Writer Id: {CLASS_ID}" in text

    err = stop(p)
    assert "got SIGTERM: leaving vssd" in err
    wait_until(lambda: hook_writers(vssd) == [], what="the writer to leave vssd")


# What qemu-guest-agent's fsfreeze-hook.d/mysql-flush.sh does, with a shell
# standing in for the mysql client: freeze starts a session in the background
# that takes the lock and keeps it until thaw writes to a FIFO. The session
# holds the script's stderr open well past the freeze script's exit.
FSFREEZE_HOOK_SCRIPT = """#!/bin/sh
FIFO={fifo}
LOG={log}
DATA={vol}

hold_until_thawed() {{
    echo "mysql-flush.sh locked" >> "$LOG"
    touch "$DATA/lock-held"
    read line < "$FIFO"
    rm -f "$DATA/lock-held" "$FIFO"
    echo "mysql-flush.sh unlocked" >> "$LOG"
}}

case "$1" in
    freeze)
        echo "mysql-flush.sh freeze" >> "$LOG"
        mkfifo "$FIFO" || exit 1
        hold_until_thawed &
        # wait until the session holds the lock
        until [ -e "$DATA/lock-held" ]; do
            sleep 0.1
        done
        echo "tables flushed" >&2
        ;;
    thaw)
        echo "mysql-flush.sh thaw" >> "$LOG"
        [ -p "$FIFO" ] || exit 1
        echo > "$FIFO"
        ;;
    *)
        exit 1
        ;;
esac
"""


def release_fifo(fifo):
    """Let a session still waiting on fifo end, whatever the test did."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # gone, or nobody reading: nothing waits
        return
    os.write(fd, b"\n")
    os.close(fd)


def test_fsfreeze_hook_d_script_works_unchanged(btrfs, vssd, hooks, workdir):
    d, _ = workdir
    vol = btrfs.subvolume("data")
    fifo = d / "mysql-flush.fifo"
    script = hooks.dir / "mysql-flush.sh"
    script.write_text(FSFREEZE_HOOK_SCRIPT.format(fifo=fifo, log=hooks.logfile, vol=vol))
    os.chmod(script, 0o755)
    p = start(vssd, hooks)
    try:
        out = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol}", "--json").stdout)
        # The lock was held while the snapshot was cut, and let go after.
        assert os.path.exists(os.path.join(out[0]["snapshot_path"], "lock-held"))
        wait_until(lambda: "mysql-flush.sh unlocked" in hooks.log(), what="the session to unlock")
        assert hooks.log() == ["mysql-flush.sh freeze", "mysql-flush.sh locked", "mysql-flush.sh thaw",
                               "mysql-flush.sh unlocked"]
        assert not (vol / "lock-held").exists()
    finally:
        release_fifo(fifo)
    assert "tables flushed" in stop(p)


@pytest.mark.parametrize("hooks_level, app_level", [("system", "front"), ("front", "system")])
def test_level_places_the_scripts_among_other_writers(btrfs, vssd, hooks, hooks_level, app_level):
    vol = btrfs.subvolume("data")
    hooks.script("10-a")
    vssd.writer("app", f"--level={app_level}", f"--log={hooks.logfile}")
    start(vssd, hooks, f"--level={hooks_level}")

    vssd.vssadmin("create", "shadow", f"--for={vol}")
    if hooks_level == "system":
        assert hooks.events() == ["app freeze", "10-a freeze", "10-a thaw", "app thaw"]
    else:
        assert hooks.events() == ["10-a freeze", "app freeze", "app thaw", "10-a thaw"]


def test_thaw_comes_from_the_writer_itself_when_the_freeze_timeout_passes(btrfs, vssd, hooks):
    """The set outlasts --freeze-timeout (a system writer is slow to freeze):
    the writer does not wait for a thaw that comes too late, or never."""
    vol = btrfs.subvolume("data")
    hooks.script("10-a")
    hooks.script("20-b")
    vssd.writer("app", "--level=system", "--hang=freeze:5000", f"--log={hooks.logfile}")
    p = start(vssd, hooks, "--level=front", "--freeze-timeout=2")

    r = vssd.vssadmin("create", "shadow", f"--for={vol}", check=False)
    assert r.returncode != 0
    failure_line(r.stderr, 9, "Failed at freeze", "VSS_E_WRITERERROR_TIMEOUT")
    assert vssd.list_shadows() == []
    # Thawed by the writer's own timer, while the set was still stuck at the
    # slow writer's freeze, and only once.
    events = hooks.events()
    assert events[:6] == ["10-a freeze", "20-b freeze", "app freeze", "20-b thaw", "10-a thaw", "app hang-ended"]
    assert [e for e in events if not e.startswith("app ")] == ["10-a freeze", "20-b freeze", "20-b thaw",
                                                               "10-a thaw"]
    assert "abort: ran 2 thaw scripts" in stop(p)


def test_sigterm_while_frozen_thaws_and_leaves(btrfs, vssd, hooks):
    vol = btrfs.subvolume("data")
    hooks.script("10-a")
    hooks.script("20-b")
    vssd.writer("app", "--level=system", "--hang=freeze:8000", f"--log={hooks.logfile}")
    p = start(vssd, hooks, "--level=front")

    create = vssd.background(VSSADMIN, "create", "shadow", f"--for={vol}")
    try:
        wait_until(lambda: "app freeze" in hooks.events(), what="the hooks to be frozen")
        t0 = time.monotonic()
        err = stop(p)
        assert time.monotonic() - t0 < 5
        assert hooks.events() == ["10-a freeze", "20-b freeze", "app freeze", "20-b thaw", "10-a thaw"]
        assert "abort: ran 2 thaw scripts" in err
        _, stderr = create.communicate(timeout=60)
    finally:
        if create.poll() is None:
            create.kill()
            create.communicate()
    assert_no_sanitizer_report(stderr, "vssadmin")
    assert create.returncode != 0
    assert "vssadmin: writer 'hooks' failed: [9] Failed at freeze" in stderr
    assert vssd.list_shadows() == []


def test_sigterm_during_a_freeze_script_kills_it_vetoes_and_thaws(btrfs, vssd, hooks):
    vol = btrfs.subvolume("data")
    hooks.script("10-a")
    hooks.script("20-slow", '[ "$1" = freeze ] && exec sleep 300; exit 0')
    p = start(vssd, hooks)

    create = vssd.background(VSSADMIN, "create", "shadow", f"--for={vol}")
    try:
        wait_until(lambda: "20-slow freeze" in hooks.log(), what="the slow script to start")
        t0 = time.monotonic()
        err = stop(p)
        assert time.monotonic() - t0 < 5
        assert hooks.log() == ["10-a freeze", "20-slow freeze", "20-slow thaw", "10-a thaw"]
        assert "got SIGTERM while 20-slow freeze ran: killing it" in err
        _, stderr = create.communicate(timeout=60)
    finally:
        if create.poll() is None:
            create.kill()
            create.communicate()
    assert_no_sanitizer_report(stderr, "vssadmin")
    assert create.returncode != 0
    assert "writer 'hooks' failed" in stderr
    assert vssd.list_shadows() == []


def test_writer_exits_1_when_vssd_goes_away(vssd, hooks):
    p = start(vssd, hooks)
    vssd.stop()
    assert p.wait(timeout=30) == 1
    err = p.stderr.read()
    assert_no_sanitizer_report(err, "vss-hook-writer")
    assert "<3>vss-hook-writer: lost the connection to vssd" in err


def test_directory_is_read_at_every_freeze(btrfs, vssd, hooks, workdir):
    d, _ = workdir
    vol = btrfs.subvolume("data")
    later = d / "later.d"
    p = vssd.spawn(HOOK_WRITER, later)
    vssd.vssadmin("create", "shadow", f"--for={vol}")
    later.mkdir()
    hooks.script("10-new", at=later / "10-new")
    vssd.vssadmin("create", "shadow", f"--for={vol}")
    assert hooks.log() == ["10-new freeze", "10-new thaw"]
    err = stop(p)
    assert f"{later}: No such file or directory; sets go ahead without scripts until it exists" in err
    assert f"freeze: {later} does not exist: no scripts to run" in err


@pytest.mark.parametrize("args, message", [
    (["--level=middle"], "--level must be front, back or system, not 'middle'"),
    (["--timeout=0"], "--timeout needs a whole number of seconds from 1 to 86400, not '0'"),
    (["--timeout=2s"], "--timeout needs a whole number of seconds from 1 to 86400, not '2s'"),
    (["--freeze-timeout=-1"], "--freeze-timeout needs a whole number of seconds from 1 to 86400, not '-1'"),
    (["--bogus"], "unrecognized option '--bogus'"),
    (["/tmp", "/var"], "one directory at most, not 2"),
    (["/etc/hostname"], "/etc/hostname is not a directory"),
])
def test_bad_options(args, message):
    assert HOOK_WRITER.exists(), f"{HOOK_WRITER} is missing: build first"
    # No vssd: were the options taken, it would fail to register instead.
    env = dict(os.environ, VSS_SOCKET="/nonexistent/vssd.sock")
    p = run(HOOK_WRITER, *args, check=False, env=env, timeout=30)
    assert_no_sanitizer_report(p.stderr, "vss-hook-writer")
    assert p.returncode == 2
    assert message in p.stderr
    assert p.stdout == ""


def test_volumes_are_held_only_between_the_last_freeze_and_the_first_thaw(images, daemon_factory, hooks, workdir):
    """On image volumes, which vssd freezes itself: a freeze script can still
    write (the hold comes after every writer froze), what it wrote is in the
    snapshot, and a thaw script can write again at once (the hold ended
    before Thaw) without that reaching the snapshot."""
    d, _ = workdir
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    (vol,) = images(1)
    hooks.script("10-mark", f'echo "$1" > "{vol.mnt}/at-$1" && sync "{vol.mnt}/at-$1"')
    p = start(vssd, hooks, "--timeout=5")
    (shadow,) = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol.mnt}", "--json").stdout)
    assert shadow["consistency"] == "application-consistent"
    assert (vol.mnt / "at-freeze").read_text() == "freeze\n" and (vol.mnt / "at-thaw").read_text() == "thaw\n"
    at = d / "exposed"
    vssd.vssadmin("expose", f"--shadow={shadow['id']}", f"--at={at}")
    try:
        assert (at / "at-freeze").read_text() == "freeze\n"
        assert not (at / "at-thaw").exists()
    finally:
        vssd.vssadmin("unexpose", f"--shadow={shadow['id']}")
    stop(p)


def test_application_consistent_only_when_a_script_ran(btrfs, vssd, hooks):
    """The hook writer makes a set application-consistent only when at least
    one script ran and every one succeeded: without scripts it froze nothing."""
    vol = btrfs.subvolume("data")
    hooks.dir.mkdir(exist_ok=True)
    p = start(vssd, hooks)
    (shadow,) = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol}", "--json").stdout)
    assert shadow["consistency"] == "crash-consistent per volume", shadow
    hooks.script("10-app")
    (shadow,) = json.loads(vssd.vssadmin("create", "shadow", f"--for={vol}", "--json").stdout)
    assert shadow["consistency"] == "application-consistent", shadow
    stop(p)
