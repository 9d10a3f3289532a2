# SPDX-License-Identifier: LGPL-2.1-or-later
"""SIGTERM at every phase of a backup: vssd refuses new work, fails the phase
in progress so that the set is aborted (writers that prepared hear Abort),
lets the engine end while its loop still runs, thaws, records the outcome,
answers the requestor, and exits 0. A second SIGTERM meanwhile changes
nothing. Real vssd, real writer, a real image volume that vssd freezes."""

import signal
import subprocess
import time

import pytest

from conftest import REQUESTOR, by_step, is_frozen, parse_results, wait_until
from test_image import NESTING, wait_for_hold
from test_writers import of

# Generous: a hang detector (systemd's TimeoutStopSec is 90 s), not a timing check.
EXIT_BOUND = 30

SET = ["gather", "start", "ADD"]


def exit_status(vssd):
    """vssd's exit status once it ended; one that hangs is killed (its guard
    thaws) and fails the test."""
    try:
        return vssd.proc.wait(timeout=EXIT_BOUND)
    except subprocess.TimeoutExpired:
        vssd.kill()
        raise AssertionError(f"vssd did not exit within {EXIT_BOUND} s of SIGTERM:\n{vssd.log()}")

# phase: (writer options, vssd environment, the requestor's steps after
# "state", the writer event (or "HOLD") to signal at, whether the writer had
# prepared (and must hear Abort), whether a finished set stays).
PHASES = {
    "identify": (["--hang=identify:3000"], {}, ["gather-async", "wait"], "identify", False, False),
    "prepare-backup": (["--hang=prepare_backup:3000"], {}, [*SET, "prepare-async", "wait"], "prepare_backup",
                       True, False),
    "prepare-snapshot": (["--hang=prepare_snapshot:3000"], {}, [*SET, "prepare", "do-async", "wait"],
                         "prepare_snapshot", True, False),
    "freeze": (["--hang=freeze:3000"], {}, [*SET, "prepare", "do-async", "wait"], "freeze", True, False),
    "hold": ([], {"VSS_FAULTS": "commit:1:delay=3000"}, [*SET, "prepare", "do-async", "wait"], "HOLD", True, False),
    "thaw": (["--hang=thaw:3000"], {}, [*SET, "prepare", "do-async", "wait"], "thaw", True, False),
    "post-snapshot": (["--hang=post_snapshot:3000"], {}, [*SET, "prepare", "do-async", "wait"], "post_snapshot",
                      True, False),
    "backup-complete": (["--hang=backup_complete:3000"], {}, [*SET, "prepare", "do", "complete-async", "wait"],
                        "backup_complete", False, True),
}


@pytest.mark.parametrize("phase", PHASES)
def test_sigterm_at_each_phase(images, host, daemon_factory, workdir, phase):
    opts, env, steps, signal_at, prepared, kept = PHASES[phase]
    d, _ = workdir
    log = d / "events"
    (vol,) = images(1)
    vssd = daemon_factory(config=NESTING, env=env)
    vssd.writer("w", "--level=front", f"--log={log}", *opts)
    requestor = vssd.background(REQUESTOR, "create", "init", "context=app_rollback", "state",
                                *[f"add={vol.mnt}" if s == "ADD" else s for s in steps], "release")
    other = None
    try:
        if signal_at == "HOLD":
            wait_for_hold(vssd.dir / "frozen", settle=0.5)
            # A requestor already connected (it asks for a set once vssd
            # is stopping), and one that comes later.
            other = vssd.background(REQUESTOR, "create", "init", "context=nas_rollback", "sleep=500", "start")
            wait_until(lambda: other.stdout.readline().startswith("context="), what="the other requestor")
        else:
            wait_until(lambda: signal_at in of(log, "w"), what=f"the writer's {signal_at}")
        vssd.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        vssd.proc.send_signal(signal.SIGTERM)
        if signal_at == "HOLD":
            late = subprocess.run([str(REQUESTOR), "create", "init"], capture_output=True, text=True,
                                  env=vssd.client_env(), timeout=30)
            (create,) = by_step(parse_results(late.stdout), "create")
            assert create.hr == "VSS_E_UNEXPECTED" and "vssd is stopping" in create.message, late.stdout
            out, _ = other.communicate(timeout=EXIT_BOUND)
            (start,) = by_step(parse_results(out), "start")
            assert start.hr == "VSS_E_UNEXPECTED" and "vssd is stopping" in start.message, out
        code = exit_status(vssd)
        out, err = requestor.communicate(timeout=EXIT_BOUND)
    finally:
        for p in (requestor, other):
            if p and p.poll() is None:
                p.kill()
                p.communicate()
    log_text = vssd.log()
    vssd.proc = None
    assert code == 0, log_text
    assert "vssd is stopping" in log_text

    # The requestor's operation was answered, with the failure.
    res = parse_results(out)
    (wait,) = by_step(res, "wait")
    assert wait.hr == "VSS_E_UNEXPECTED" and "the operation failed" in wait.message, (res, err)

    assert not is_frozen(vol.mnt)
    if prepared:
        wait_until(lambda: "abort" in of(log, "w"), what="Abort to the writer that had prepared")
    else:
        assert "abort" not in of(log, "w")
    assert len(host.store_entries()) == kept

    # The catalog agrees with the disk, and nothing half made is left.
    vssd.start()
    assert len(vssd.list_shadows()) == kept
    restarted = vssd.log()[len(log_text):]
    assert f"catalog holds {int(kept)} snapshot(s); 0 disagreement(s) with the disk" in restarted, restarted
    assert "thawed after an unclean stop" not in restarted


@pytest.mark.parametrize("fault", ["pre_commit:1:delay=2000", "commit:1:delay=2000"])
def test_sigterm_without_writers(images, host, daemon_factory, fault):
    """A context without writers has no phase to fail: before the point of no
    return the set is cancelled, after it the set is let finish and deleted;
    either way the requestor gets VSS_E_UNEXPECTED and nothing stays."""
    (vol,) = images(1)
    vssd = daemon_factory(config=NESTING, env={"VSS_FAULTS": fault})
    requestor = vssd.background(REQUESTOR, "create", "init", "context=nas_rollback", "start", f"add={vol.mnt}",
                                "do-async", "wait", "release")
    try:
        vssd.wait_log("cutting 1 volume(s)")
        vssd.proc.send_signal(signal.SIGTERM)
        code = exit_status(vssd)
        out, err = requestor.communicate(timeout=EXIT_BOUND)
    finally:
        if requestor.poll() is None:
            requestor.kill()
            requestor.communicate()
    vssd.proc = None
    assert code == 0, vssd.log()
    (wait,) = by_step(parse_results(out), "wait")
    assert wait.hr == "VSS_E_UNEXPECTED" and "the operation failed" in wait.message, (out, err)
    assert not is_frozen(vol.mnt)
    assert host.store_entries() == []
    vssd.start()
    assert vssd.list_shadows() == []
