# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writers: real writer processes (vss-test-writer) subscribed to a real vssd,
sent their events by real sets on btrfs. Each writer logs the events it gets,
with the monotonic time, so the tests read what happened from the writers'
side as well as from the requestor's."""

import fcntl
import json
import subprocess
import time

import pytest

from conftest import REQUESTOR, TEST_WRITER, by_step, is_frozen, parse_results, wait_until

# VSS_WS_* numbers.
STABLE, WAITING_FOR_BACKUP_COMPLETE = 1, 5
FAILED_AT_PREPARE_BACKUP, FAILED_AT_PREPARE_SNAPSHOT, FAILED_AT_FREEZE = 7, 8, 9

CLASS_A = "{7e570001-0000-0000-0000-00000000000a}"
CLASS_B = "{7e570001-0000-0000-0000-00000000000b}"


def events(log):
    """[(writer, event, monotonic µs)] in the order they happened."""
    if not log.exists():
        return []
    out = [line.split() for line in log.read_text().splitlines()]
    return sorted(((w, e, int(t)) for w, e, t in out), key=lambda x: x[2])


def of(log, writer):
    return [e for w, e, _ in events(log) if w == writer]


def at(log, writer, event):
    return next(t for w, e, t in events(log) if w == writer and e == event)


def full_set(vol, *tail):
    return ["create", "init", "context=app_rollback", "state", "gather", "start", f"add={vol}", "prepare", "do",
            *tail]


def statuses(res):
    """{writer: (state, failure)} from a wstatus step."""
    out = {}
    for item in by_step(res, "wstatus")[-1].detail.split():
        name, state, failure = item.split(":")
        out[name] = (int(state), failure)
    return out


def test_events_reach_every_level_in_vss_order(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    for name, level in (("fe", "front"), ("be", "back"), ("sys", "system")):
        vssd.writer(name, f"--level={level}", f"--log={log}")

    res = vssd.requestor(*full_set(a, "wstatus", "complete", "wstatus", "release"))
    assert [r.hr for r in res] == ["S_OK"] * len(res), res
    assert sorted(by_step(res, "gather")[0].detail.split()[1:]) == ["be:0", "fe:0", "sys:0"]
    assert statuses(res) == {n: (STABLE, "S_OK") for n in ("fe", "be", "sys")}
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"

    # Each writer saw the whole sequence, once, and the release's shutdown.
    wait_until(lambda: all("backup_shutdown" in of(log, n) for n in ("fe", "be", "sys")), what="shutdown")
    for n in ("fe", "be", "sys"):
        assert of(log, n) == ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw", "post_snapshot",
                              "backup_complete", "backup_shutdown"]
    # Frozen front-end first and thawed last; the snapshot inside every window.
    assert at(log, "fe", "freeze") <= at(log, "be", "freeze") <= at(log, "sys", "freeze")
    assert at(log, "sys", "thaw") <= at(log, "be", "thaw") <= at(log, "fe", "thaw")
    for n in ("fe", "be", "sys"):
        assert at(log, n, "prepare_snapshot") <= at(log, "fe", "freeze")
        assert at(log, "fe", "thaw") <= at(log, n, "post_snapshot")
    # The set is application-consistent, and says so.
    (shadow,) = vssd.list_shadows()
    assert shadow["consistency"] == "application-consistent"


def test_writer_veto_is_reported_and_spares_the_others(btrfs, vssd, workdir):
    """A writer failing PrepareForSnapshot gets no freeze; DoSnapshotSet still
    succeeds (as in VSS) and the requestor sees the failure in the status."""
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("good", "--level=front", f"--log={log}")
    vssd.writer("bad", "--level=back", f"--log={log}", "--fail=prepare_snapshot:VSS_E_WRITERERROR_OUTOFRESOURCES")

    res = vssd.requestor(*full_set(a, "wstatus", "release"))
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert statuses(res) == {"good": (WAITING_FOR_BACKUP_COMPLETE, "S_OK"),
                             "bad": (FAILED_AT_PREPARE_SNAPSHOT, "VSS_E_WRITERERROR_OUTOFRESOURCES")}
    assert of(log, "good")[:6] == ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw",
                                   "post_snapshot"]
    assert "freeze" not in of(log, "bad") and "thaw" not in of(log, "bad")
    wait_until(lambda: "abort" in of(log, "bad"), what="abort to the writer that failed")
    (shadow,) = vssd.list_shadows()
    assert shadow["consistency"] != "application-consistent"

    # vssadmin's own set: it names the writer, the code, and keeps nothing.
    p = vssd.vssadmin("create", "shadow", f"--for={a}", check=False)
    assert p.returncode != 0
    assert "writer 'bad' failed" in p.stderr and "VSS_E_WRITERERROR_OUTOFRESOURCES (0x800423f1)" in p.stderr
    assert len(vssd.list_shadows()) == 1
    # Unless asked to keep it.
    p = vssd.vssadmin("create", "shadow", f"--for={a}", "--ignore-writer-failures")
    assert "keeping the set although a writer failed" in p.stderr
    assert len(vssd.list_shadows()) == 2


def test_failure_at_prepare_backup_fails_nothing_else(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", f"--log={log}", "--fail=prepare_backup")
    res = vssd.requestor(*full_set(a, "wstatus", "release"))
    assert by_step(res, "prepare")[0].hr == "S_OK"
    assert statuses(res)["w"] == (FAILED_AT_PREPARE_BACKUP, "VSS_E_WRITERERROR_RETRYABLE")
    assert of(log, "w")[:2] == ["identify", "prepare_backup"]
    assert "prepare_snapshot" not in of(log, "w") and "freeze" not in of(log, "w")
    wait_until(lambda: "abort" in of(log, "w"), what="abort to the writer that failed")


def test_hanging_freeze_times_out_and_the_set_goes_on(btrfs, vssd, workdir):
    """A writer that does not answer Freeze within its own freeze timeout fails
    with VSS_E_WRITERERROR_TIMEOUT, is sent Abort, and the set is made without
    waiting for it."""
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("slow", "--level=back", "--timeout=400", f"--log={log}", "--hang=freeze:3000")
    vssd.writer("fine", "--level=front", f"--log={log}")

    started = time.monotonic()
    res = vssd.requestor(*full_set(a, "wstatus", "release"))
    assert time.monotonic() - started < 2.5  # did not wait out the 3 s hang
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert statuses(res)["slow"] == (FAILED_AT_FREEZE, "VSS_E_WRITERERROR_TIMEOUT")
    assert statuses(res)["fine"][1] == "S_OK"
    assert not is_frozen(a)
    wait_until(lambda: "abort" in of(log, "slow"), timeout=10, what="abort to the slow writer")
    assert "thaw" not in of(log, "slow")
    assert of(log, "fine")[3:6] == ["freeze", "thaw", "post_snapshot"]
    vssd.wait_log("slow")
    # The failure stays on the writer for vssadmin to show.
    listed = {w["name"]: w for w in json.loads(vssd.vssadmin("list", "writers", "--json").stdout)}
    assert listed["slow"]["state"] == FAILED_AT_FREEZE
    assert listed["slow"]["last_error"] == "VSS_E_WRITERERROR_TIMEOUT"
    assert listed["fine"]["last_error"] is None


def test_writer_whose_window_passes_before_thaw_aborts_itself(daemon_factory, btrfs, workdir):
    """The commit takes longer than the writer's freeze timeout: the writer
    library thaws the application itself (through its abort callback) when
    the window ends, and vssd records the timeout instead of sending Thaw."""
    d, _ = workdir
    log = d / "events"
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:delay=1500"})
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", "--timeout=300", f"--log={log}")
    res = vssd.requestor(*full_set(a, "wstatus", "release"))
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert statuses(res)["w"] == (FAILED_AT_FREEZE, "VSS_E_WRITERERROR_TIMEOUT")
    seq = of(log, "w")
    assert seq[:4] == ["identify", "prepare_backup", "prepare_snapshot", "freeze"]
    assert seq[4] == "abort" and "thaw" not in seq
    # It aborted when its own window ended, before the commit was over.
    assert 250_000 <= at(log, "w", "abort") - at(log, "w", "freeze") < 1_400_000


def test_writer_killed_while_frozen(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    w = vssd.writer("victim", "--level=front", f"--log={log}", "--hang=freeze:500")
    vssd.writer("other", "--level=back", f"--log={log}")
    p = vssd.background(REQUESTOR, *full_set(a, "wstatus", "release"))
    wait_until(lambda: "freeze" in of(log, "victim"), what="the freeze")
    w.kill()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    res = parse_results(out)
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    st = statuses(res)
    assert st["victim"][1] == "VSS_E_WRITER_NOT_RESPONDING"
    assert st["other"] == (WAITING_FOR_BACKUP_COMPLETE, "S_OK")
    assert not is_frozen(a)


def test_requestor_abort_reaches_writers(btrfs, vssd, workdir):
    """AbortBackup after PrepareForBackup, and a requestor that goes away in
    the middle of a freeze: every writer is told to abort, and a new set
    works afterwards."""
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", f"--log={log}", "--hang=freeze:800")

    res = vssd.requestor("create", "init", "state", "gather", "start", f"add={a}", "prepare", "abort", "release")
    assert [r.hr for r in res] == ["S_OK"] * len(res), res
    wait_until(lambda: "abort" in of(log, "w"), what="abort after AbortBackup")
    assert of(log, "w")[:3] == ["identify", "prepare_backup", "abort"]
    assert vssd.list_shadows() == []

    # Killed while the writer is frozen: the writer is aborted, nothing stays.
    log.unlink()
    p = vssd.background(REQUESTOR, *full_set(a))
    wait_until(lambda: "freeze" in of(log, "w"), what="the freeze")
    p.kill()
    p.communicate()
    wait_until(lambda: "abort" in of(log, "w"), what="abort after the requestor left")
    assert "thaw" not in of(log, "w")
    wait_until(lambda: vssd.list_shadows() == [], what="the half-made set to go")
    assert btrfs.store_entries() == []
    assert not is_frozen(a)

    log.unlink()
    res = vssd.requestor(*full_set(a, "wstatus", "complete", "release"))
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert len(vssd.list_shadows()) == 1


def test_participation_follows_the_writers_files(make_fs, vssd, workdir):
    """A writer whose files lie on the set's volumes takes part; one whose
    files lie elsewhere is left out; one whose files straddle the set and a
    volume outside it fails with VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT."""
    d, _ = workdir
    log = d / "events"
    one, two = make_fs("btrfs", name="one"), make_fs("btrfs", name="two")
    a, b = one.subvolume("a"), two.subvolume("b")
    vssd.writer("inside", "--level=front", f"--log={log}", f"--files={a}")
    vssd.writer("outside", "--level=front", f"--log={log}", f"--files={b}")
    vssd.writer("both", "--level=front", f"--log={log}", f"--files={a}", f"--files={b}")
    vssd.writer("nofiles", "--level=front", f"--log={log}")

    res = vssd.requestor(*full_set(a, "wstatus", "release"))
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert sorted(by_step(res, "gather")[0].detail.split()[1:]) == ["both:1", "inside:1", "nofiles:0", "outside:1"]
    st = statuses(res)
    assert st["inside"] == st["nofiles"] == (WAITING_FOR_BACKUP_COMPLETE, "S_OK")
    assert st["both"][1] == "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT"
    assert "freeze" in of(log, "inside") and "freeze" in of(log, "nofiles")
    assert "freeze" not in of(log, "outside") and "freeze" not in of(log, "both")

    # With both volumes in the set, every writer takes part.
    log.unlink()
    res = vssd.requestor("create", "init", "state", "gather", "start", f"add={a}", f"add={b}", "prepare", "do",
                         "wstatus", "release")
    assert all(s[1] == "S_OK" for s in statuses(res).values()), res
    for n in ("inside", "outside", "both", "nofiles"):
        assert "freeze" in of(log, n)


def test_disabled_classes_hear_nothing(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("wa", "--level=front", f"--class={CLASS_A}", f"--log={log}")
    vssd.writer("wb", "--level=front", f"--class={CLASS_B}", f"--log={log}")
    res = vssd.requestor("create", "init", "state", f"disable={CLASS_B}", "gather", "start", f"add={a}", "prepare",
                         "do", "wstatus", "release")
    assert by_step(res, "disable")[0].hr == "S_OK"
    assert by_step(res, "gather")[0].detail.split()[1:] == ["wa:0"]
    assert list(statuses(res)) == ["wa"]
    assert of(log, "wb") == []
    assert "freeze" in of(log, "wa")
    # Too late once gathered.
    res = vssd.requestor("create", "init", "gather", f"disable={CLASS_A}")
    assert by_step(res, "disable")[0].hr == "VSS_E_BAD_STATE"


def test_components_and_backup_succeeded(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", f"--log={log}", f"--files={a}")
    res = vssd.requestor("create", "init", "state", "gather", "add-component=w:data", "add-component=w:nothere",
                         "start", f"add={a}", "prepare", "succeeded=w:data", "do", "succeeded=w:data", "complete",
                         "wstatus", "release")
    assert [r.hr for r in by_step(res, "add-component")] == ["S_OK", "VSS_E_OBJECT_NOT_FOUND"]
    # Only after the set was made.
    assert [r.hr for r in by_step(res, "succeeded")] == ["VSS_E_BAD_STATE", "S_OK"]
    assert statuses(res)["w"] == (STABLE, "S_OK")
    assert "backup_complete" in of(log, "w")


def test_contexts_without_writers_send_no_events(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", f"--log={log}")
    res = vssd.requestor("create", "init", "context=nas_rollback", "start", f"add={a}", "do", "release")
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    assert of(log, "w") == []
    (shadow,) = vssd.list_shadows()
    assert shadow["consistency"] == "crash-consistent per volume"
    vssd.vssadmin("create", "shadow", f"--for={a}", "--context=nas_rollback")
    assert of(log, "w") == []
    assert len(vssd.list_shadows()) == 2


def test_list_writers(vssd):
    assert vssd.vssadmin("list", "writers").stdout.strip() == "No writers are registered."
    assert json.loads(vssd.vssadmin("list", "writers", "--json").stdout) == []
    vssd.writer("alpha", "--level=front", f"--class={CLASS_A}")
    vssd.writer("beta", "--level=system", f"--class={CLASS_B}", "--thread")
    listed = json.loads(vssd.vssadmin("list", "writers", "--json").stdout)
    assert sorted(w["name"] for w in listed) == ["alpha", "beta"]
    for w in listed:
        assert w["state"] == STABLE and w["state_text"] == "Stable" and w["last_error"] is None
        assert w["class_id"] == {"alpha": CLASS_A, "beta": CLASS_B}[w["name"]]
    text = vssd.vssadmin("list", "writers").stdout
    assert "Writer name: 'alpha'" in text and f"Writer Id: {CLASS_A}" in text and "State: [1] Stable" in text
    assert "Last error: No error" in text


def test_threaded_writer_takes_part(btrfs, vssd, workdir):
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("t", "--level=front", "--thread", f"--log={log}")
    res = vssd.requestor(*full_set(a, "complete", "wstatus", "release"))
    assert statuses(res)["t"] == (STABLE, "S_OK")
    assert of(log, "t")[:7] == ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw", "post_snapshot",
                                "backup_complete"]


def test_unprivileged_writer_is_refused(vssd):
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        str(TEST_WRITER), "--name=nobody"], capture_output=True, text=True,
                       env=vssd.client_env())
    assert p.returncode == 1
    assert "E_ACCESSDENIED" in p.stderr
    assert json.loads(vssd.vssadmin("list", "writers", "--json").stdout) == []


def test_second_subscription_on_one_connection(vssd):
    """The library keeps one connection per writer; a second subscribe of the
    same writer object is refused with VSS_E_WRITER_ALREADY_SUBSCRIBED."""
    p = subprocess.run([str(TEST_WRITER), "--name=twice", "--subscribe-twice"],
                       capture_output=True, text=True, env=vssd.client_env())
    assert p.returncode == 1
    assert "VSS_E_WRITER_ALREADY_SUBSCRIBED" in p.stderr


def locked_by_someone(path):
    with open(path, "r+") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.lockf(f, fcntl.LOCK_UN)
        return False


def test_package_transactions_are_held_during_the_freeze(btrfs, daemon_factory, workdir):
    d, _ = workdir
    log = d / "events"
    vssd = daemon_factory("TransactionFreezeTimeoutMSec=400\n")
    lock = vssd.dpkg_lock
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", f"--log={log}", "--hang=freeze:1000")

    # While writers are frozen, vssd holds the package manager's lock.
    p = vssd.background(REQUESTOR, *full_set(a))
    wait_until(lambda: "freeze" in of(log, "w"), what="the freeze")
    assert locked_by_someone(lock)
    p.communicate(timeout=60)
    assert not locked_by_someone(lock)

    # While a package transaction holds it, the set waits, then fails.
    with open(lock, "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        log.unlink()
        res = vssd.requestor(*full_set(a, "wstatus", "release"))
        assert by_step(res, "do")[0].detail == "VSS_E_TRANSACTION_FREEZE_TIMEOUT"
        assert "freeze" not in of(log, "w")
        wait_until(lambda: "abort" in of(log, "w"), what="abort")
        assert len(vssd.list_shadows()) == 1  # the first set's
        assert len(btrfs.store_entries()) == 1
        # A context that opts out of transactions does not wait for them.
        res = vssd.requestor("create", "init", "context=0x89", "state", "gather", "start", f"add={a}", "prepare",
                             "do", "release")
        assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    vssd.wait_log("the package manager holds")


def test_package_lock_held_too_long_fails_the_set(btrfs, daemon_factory):
    vssd = daemon_factory("TransactionThawTimeoutMSec=300\n", env={"VSS_FAULTS": "commit:1:delay=800"})
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front")
    res = vssd.requestor(*full_set(a, "release"))
    assert by_step(res, "do")[0].detail == "VSS_E_TRANSACTION_THAW_TIMEOUT"
    wait_until(lambda: vssd.list_shadows() == [], what="the set to go")
    assert btrfs.store_entries() == []
    assert not locked_by_someone(vssd.dpkg_lock)


def test_writer_without_vssd(vssd, workdir):
    """No vssd to register with, or vssd gone: VSS_E_WRITER_INFRASTRUCTURE,
    on subscribing and from vss_writer_process()."""
    d, _ = workdir
    env = dict(vssd.client_env(), VSS_SOCKET=str(d / "nothing-here.sock"))
    p = subprocess.run([str(TEST_WRITER), "--name=lonely"], capture_output=True, text=True, env=env)
    assert p.returncode == 1 and "VSS_E_WRITER_INFRASTRUCTURE" in p.stderr
    assert f"cannot reach vssd at {d / 'nothing-here.sock'}" in p.stderr

    w = vssd.writer("orphan", "--level=front")
    vssd.kill()
    assert w.wait(timeout=10) == 1
    assert "VSS_E_WRITER_INFRASTRUCTURE" in w.stderr.read()


# Where the requestor aborts: its steps after the set is opened, what the
# writer is made to do, the events the writer sees, and whether a set stays.
ABORT_POINTS = {
    "after-gather": (["gather", "abort"], [], ["identify"], False),
    "after-start": (["gather", "start", "ADD", "abort"], [], ["identify", "abort"], False),
    "after-prepare": (["gather", "start", "ADD", "prepare", "abort"], [], ["identify", "prepare_backup", "abort"],
                      False),
    "in-prepare-snapshot": (["gather", "start", "ADD", "prepare", "do-async", "sleep=300", "abort", "wait", "status"],
                            ["--hang=prepare_snapshot:800"],
                            ["identify", "prepare_backup", "prepare_snapshot", "hang-ended", "abort"], False),
    "in-freeze": (["gather", "start", "ADD", "prepare", "do-async", "sleep=300", "abort", "wait", "status"],
                  ["--hang=freeze:800"],
                  ["identify", "prepare_backup", "prepare_snapshot", "freeze", "hang-ended", "abort"], False),
    "after-do": (["gather", "start", "ADD", "prepare", "do", "abort", "complete"], [],
                 ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw", "post_snapshot", "abort"], True),
}


@pytest.mark.parametrize("point", ABORT_POINTS)
def test_requestor_abort_at_each_step(btrfs, vssd, workdir, point):
    """AbortBackup wherever the requestor calls it: writers that prepared
    hear Abort (before PrepareForBackup they have nothing to undo, and Abort
    is harmless), a set being made is cancelled, nothing stays frozen, and
    the object takes no further step."""
    steps, args, seen, kept = ABORT_POINTS[point]
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("w", "--level=front", f"--log={log}", *args)
    res = vssd.requestor("create", "init", "context=app_rollback", "state",
                         *[f"add={a}" if s == "ADD" else s for s in steps], "release")
    assert by_step(res, "abort")[0].hr == "S_OK", res
    if "status" in steps:
        assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_CANCELLED", res
    if "complete" in steps:
        assert by_step(res, "complete")[0].hr == "VSS_E_BAD_STATE"
    wait_until(lambda: "backup_shutdown" in of(log, "w"), what="the shutdown at release")
    got = [e for e in of(log, "w") if e != "backup_shutdown"]
    # Abort may come twice (from the call and from the cancelled set).
    assert [e for i, e in enumerate(got) if e != "abort" or got[i - 1] != "abort"] == seen
    assert len(vssd.list_shadows()) == kept
    assert len(btrfs.store_entries()) == kept
    assert not is_frozen(a)


def test_provider_failure_after_prepare_snapshot_aborts_the_writers(btrfs, daemon_factory, workdir):
    d, _ = workdir
    log = d / "events"
    vssd = daemon_factory(env={"VSS_FAULTS": "commit:1:EIO"})
    a = btrfs.subvolume("a")
    vssd.writer("fe", "--level=front", f"--log={log}")
    vssd.writer("sys", "--level=system", f"--log={log}")
    res = vssd.requestor(*full_set(a, "wstatus", "release"))
    assert by_step(res, "do")[0].detail == "VSS_E_UNEXPECTED_PROVIDER_ERROR"
    for n in ("fe", "sys"):
        wait_until(lambda: "abort" in of(log, n), what=f"abort to {n}")
        assert of(log, n)[:4] == ["identify", "prepare_backup", "prepare_snapshot", "freeze"]
        assert "thaw" not in of(log, n) and "post_snapshot" not in of(log, n)
    assert vssd.list_shadows() == [] and btrfs.store_entries() == []


def test_calls_wait_for_the_writer_round_in_flight(btrfs, vssd, workdir):
    """A writer round in flight is a state: while GatherWriterMetadata waits
    for a writer that is slow to answer Identify, StartSnapshotSet (and so
    PrepareForBackup) get VSS_E_BAD_STATE; the round then ends as usual and
    leaves the creation slot free for anyone. Likewise DoSnapshotSet while
    PrepareForBackup's round is in flight."""
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    vssd.writer("slow", "--level=front", f"--log={log}", "--hang=identify:2000")
    vssd.writer("quick", "--level=back", f"--log={log}")

    p, res = vssd.spawn_requestor("create", "init", "state", "gather-async", "start", f"add={a}", "prepare",
                                  "wait=30000", "status", "hold")
    try:
        assert by_step(res, "gather-async")[0].hr == "S_OK", res
        (start,) = by_step(res, "start")
        assert start.hr == "VSS_E_BAD_STATE" and "writer round" in start.message, res
        assert by_step(res, "prepare")[0].hr == "VSS_E_BAD_STATE", res
        # Gather ended, with both writers' answers, once the slow one spoke.
        assert by_step(res, "wait")[0].hr == "S_OK", res
        assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_FINISHED", res
        assert "hang-ended" in of(log, "slow")
        # Nobody holds the slot: another requestor opens a set at once.
        other = vssd.requestor("create", "init", "start", "release")
        assert by_step(other, "start")[0].hr == "S_OK", other
    finally:
        p.kill()
        p.communicate()

    # PrepareForBackup's round: DoSnapshotSet waits for it too.
    vssd.stop_children()
    vssd.writer("late", "--level=front", f"--log={log}", "--hang=prepare_backup:2000")
    res = vssd.requestor("create", "init", "state", "gather", "start", f"add={a}", "prepare-async", "do", "wait",
                         "status", "do", "release")
    do_during, do_after = by_step(res, "do")
    assert do_during.hr == "VSS_E_BAD_STATE" and "writer round" in do_during.message, res
    assert by_step(res, "status")[0].detail == "VSS_S_ASYNC_FINISHED", res
    assert do_after.detail == "VSS_S_ASYNC_FINISHED", res
    assert of(log, "late")[:6] == ["identify", "prepare_backup", "hang-ended", "prepare_snapshot", "freeze", "thaw"]


def test_many_writers_get_every_event_once_in_level_order(btrfs, vssd, workdir):
    """256 writers, one of which hangs at Freeze: every one gets each event
    once, each round goes to all of them before the next starts, freezes go
    front, back, system and thaws the other way, and the hanging writer's
    own timeout still ends its freeze while the others wait for nothing."""
    d, _ = workdir
    log = d / "events"
    a = btrfs.subvolume("a")
    levels = ("front", "back", "system")
    names = [f"w{i:03d}" for i in range(256)]
    # Started all at once, then waited for, so that setting up 256 takes seconds.
    procs = []
    for i, name in enumerate(names):
        extra = ["--timeout=400", "--hang=freeze:5000"] if name == "w100" else []
        p = subprocess.Popen([str(TEST_WRITER), f"--name={name}", f"--level={levels[i % 3]}", f"--log={log}", *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=vssd.client_env())
        vssd.children.append(p)
        procs.append(p)
    for name, p in zip(names, procs):
        assert p.stdout.readline().strip() == "ready", f"{name}: {p.stderr.read()}"

    res = vssd.requestor(*full_set(a, "wstatus", "complete", "release"))
    assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED"
    st = statuses(res)
    assert len(st) == 256
    assert st.pop("w100") == (FAILED_AT_FREEZE, "VSS_E_WRITERERROR_TIMEOUT")
    assert set(st.values()) == {(WAITING_FOR_BACKUP_COMPLETE, "S_OK")}
    assert not is_frozen(a)

    wait_until(lambda: all("backup_shutdown" in of(log, n) for n in names), timeout=30, what="every shutdown")
    wait_until(lambda: "abort" in of(log, "w100"), timeout=10, what="abort to the hanging writer")
    seq = ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw", "post_snapshot", "backup_complete",
           "backup_shutdown"]
    evs = events(log)
    by_writer = {}
    for w, e, _ in evs:
        by_writer.setdefault(w, []).append(e)
    for n in names:
        if n == "w100":
            assert [e for e in by_writer[n] if e != "hang-ended"] == \
                ["identify", "prepare_backup", "prepare_snapshot", "freeze", "abort", "backup_shutdown"], by_writer[n]
        else:
            assert by_writer[n] == seq, (n, by_writer[n])

    level_of = {n: levels[i % 3] for i, n in enumerate(names)}

    def times(event, level=None):
        return [t for w, e, t in evs if e == event and w != "w100" and level in (None, level_of[w])]

    # A round reaches every writer before the next round starts.
    for before, after in zip(["identify", "prepare_backup", "prepare_snapshot"],
                             ["prepare_backup", "prepare_snapshot", "freeze"]):
        assert max(times(before)) <= min(times(after)), (before, after)
    for before, after in zip(["thaw", "post_snapshot"], ["post_snapshot", "backup_complete"]):
        assert max(times(before)) <= min(times(after)), (before, after)
    # Freeze by level: front, back, system; thaw: system, back, front.
    assert max(times("freeze", "front")) <= min(times("freeze", "back"))
    assert max(times("freeze", "back")) <= min(times("freeze", "system"))
    assert max(times("freeze")) <= min(times("thaw"))
    assert max(times("thaw", "system")) <= min(times("thaw", "back"))
    assert max(times("thaw", "back")) <= min(times("thaw", "front"))


def test_a_thaw_failure_after_the_cut_keeps_the_set_and_its_consistency(btrfs, vssd, workdir):
    """Thaw comes after the cut, which was made while the writer was frozen:
    a failure there is reported (writer status, vssadmin) but the set keeps
    its consistency and vssadmin keeps it; unless the writer says the
    snapshot is inconsistent (a lock lost while frozen)."""
    d, _ = workdir
    a = btrfs.subvolume("a")
    w = vssd.writer("app", f"--files={a}", "--fail=thaw:VSS_E_WRITERERROR_RETRYABLE")
    p = vssd.vssadmin("create", "shadow", f"--for={a}", "--json", check=False)
    assert p.returncode == 0, p.stderr
    assert "writer 'app' failed: [10] Failed at thaw" in p.stderr and "the set stands" in p.stderr, p.stderr
    assert json.loads(p.stdout)[0]["consistency"] == "application-consistent"
    terminate_writer(w)
    vssd.writer("lost", f"--files={a}", "--fail=thaw:VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT")
    p = vssd.vssadmin("create", "shadow", f"--for={a}", "--json", check=False)
    assert p.returncode == 1 and "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" in p.stderr, p.stderr
    assert "the set stands" not in p.stderr
    assert len(vssd.list_shadows()) == 1


def terminate_writer(p):
    p.terminate()
    p.wait(timeout=30)


def test_exec_tells_the_writers_whether_the_backup_succeeded(images, daemon_factory, workdir):
    d, _ = workdir
    (vol,) = images(1)
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    log = d / "events"
    vssd.writer("app", f"--files={vol.mnt}", f"--log={log}")

    def after_backup_complete():
        events = of(log, "app")
        return events[len(events) - 1 - events[::-1].index("backup_complete") + 1]

    assert vssd.vssadmin("exec", f"--for={vol.mnt}", "--", "true").returncode == 0
    assert after_backup_complete() == "data-backed-up", of(log, "app")
    assert vssd.vssadmin("exec", f"--for={vol.mnt}", "--", "false", check=False).returncode == 1
    assert after_backup_complete() == "data-not-backed-up", of(log, "app")
