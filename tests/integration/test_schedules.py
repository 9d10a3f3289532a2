# SPDX-License-Identifier: LGPL-2.1-or-later
"""Schedules (vss-schedules(5)): sets made by a schedule's file and tagged
with it, the generator's timers, and pruning by the schedule's retention,
which never takes the newest set, an exposed one, or one vssadmin exec
reads; only root may tag or prune."""

import grp
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BUILD, VSSADMIN, run, terminate, wait_until

GENERATOR = BUILD / "src" / "generator" / "vss-schedule-generator"
NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]


def operator():
    return ["--reuid=65534", f"--regid={grp.getgrnam('backup').gr_gid}", "--clear-groups"]


@pytest.fixture
def sched(vssd, btrfs, monkeypatch):
    """(vssd, schedules directory, write(name, text), volumes a and b)."""
    d = vssd.dir / "schedules.d"
    d.mkdir()
    os.chmod(d, 0o755)
    monkeypatch.setenv("VSS_SCHEDULES_DIR", str(d))
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")

    def write(name, text):
        (d / f"{name}.conf").write_text(text)

    return vssd, d, write, a, b


def schedule_text(a, b, retention, calendar="*:*:0/5"):
    # A shortened calendar: every 5 s, what a test's "timer" would run.
    return (f"[Schedule]\nVolumes = {a} {b}\nWriters = no\nCalendar = {calendar}\n"
            f"[Retention]\n{retention}\n")


def service_run(vssd, name):
    """What vss-snapshot@NAME.service runs, as systemd would: create, then prune."""
    created = vssd.vssadmin("create", "shadow", f"--schedule={name}", "--json")
    pruned = vssd.vssadmin("prune", f"--schedule={name}", "--json")
    return json.loads(created.stdout), json.loads(pruned.stdout)


def schedule_sets(vssd, name):
    """The schedule's sets in the catalog, oldest first, from list shadows."""
    sets = []
    for s in vssd.list_shadows():
        if s["schedule"] == name and s["set_id"] not in sets:
            sets.append(s["set_id"])
    return sets


def test_runs_are_tagged_and_pruned_to_keep_last(sched):
    vssd, _, write, a, b = sched
    write("often", schedule_text(a, b, "KeepLast = 2"))
    made = []
    for i in range(4):
        created, pruned = service_run(vssd, "often")
        assert {s["volume"] for s in created} == {str(a), str(b)}
        made.append(created[0]["set_id"])
        assert all(s["schedule"] == "often" for s in vssd.list_shadows(f"--set={made[-1]}"))
        # What is kept after each prune: the last two made.
        assert schedule_sets(vssd, "often") == made[-2:], (i, pruned)
        gone = [e for e in pruned if not e["keep"]]
        assert all(e["deleted"] and "not one of the last 2" in e["reason"] for e in gone)
        assert [e["set_id"] for e in pruned if e["keep"]] == made[-2:]
    # Sets made by hand are no schedule's, and no prune touches them.
    by_hand = json.loads(vssd.vssadmin("create", "shadow", f"--for={a}", "--json").stdout)[0]["set_id"]
    service_run(vssd, "often")
    assert by_hand in {s["set_id"] for s in vssd.list_shadows()}
    assert vssd.list_shadows(f"--set={by_hand}")[0]["schedule"] is None
    text = vssd.vssadmin("list", "shadows").stdout
    assert "Made by schedule: often" in text

    listed = json.loads(vssd.vssadmin("list", "schedules", "--json").stdout)
    assert [s["name"] for s in listed] == ["often"]
    assert listed[0]["valid"] and listed[0]["sets"] == 2 and listed[0]["calendar"] == "*:*:0/5"
    assert listed[0]["retention"]["keep_last"] == 2 and listed[0]["next_run"]
    assert listed[0]["volumes"] == [str(a), str(b)]
    assert "Next run:" in vssd.vssadmin("list", "schedules").stdout


def test_newest_and_exposed_are_never_pruned_and_dry_run_deletes_nothing(sched):
    vssd, _, write, a, b = sched
    # Yearly = 1 keeps the year's first set; nothing else keeps the others.
    write("y", schedule_text(a, b, "Yearly = 1"))
    sets = [service_run(vssd, "y")[0][0]["set_id"] for _ in range(4)]
    # service_run pruned after each: the first and the newest stay.
    assert schedule_sets(vssd, "y") == [sets[0], sets[3]]
    for _ in range(2):
        sets.append(json.loads(vssd.vssadmin("create", "shadow", "--schedule=y", "--json").stdout)[0]["set_id"])
    shadow = vssd.list_shadows(f"--set={sets[3]}")[0]["id"]
    vssd.vssadmin("expose", f"--shadow={shadow}")

    dry = json.loads(vssd.vssadmin("prune", "--schedule=y", "--dry-run", "--json").stdout)
    assert schedule_sets(vssd, "y") == [sets[0], sets[3], sets[4], sets[5]], "a dry run deleted"
    why = {e["set_id"]: e for e in dry}
    assert why[sets[0]]["keep"] and "yearly" in why[sets[0]]["reason"]
    assert why[sets[3]]["keep"] and why[sets[3]]["reason"] == "exposed"
    assert not why[sets[4]]["keep"] and "beyond the policy" in why[sets[4]]["reason"]
    assert why[sets[5]]["keep"] and why[sets[5]]["reason"] == "the schedule's newest set"
    assert not any(e["deleted"] for e in dry)
    text = vssd.vssadmin("prune", "--schedule=y", "--dry-run").stdout
    assert "would delete" in text and "exposed" in text and "newest" in text

    vssd.vssadmin("prune", "--schedule=y")
    assert schedule_sets(vssd, "y") == [sets[0], sets[3], sets[5]]
    vssd.vssadmin("unexpose", f"--shadow={shadow}")
    text = vssd.vssadmin("prune", "--schedule=y").stdout
    assert "deleted" in text and "beyond the policy" in text
    assert schedule_sets(vssd, "y") == [sets[0], sets[5]]


def test_a_set_vssadmin_exec_reads_is_not_pruned(sched, tmp_path):
    vssd, _, write, a, b = sched
    write("e", schedule_text(a, b, "KeepLast = 1"))
    first = service_run(vssd, "e")[0][0]["set_id"]
    vssd.vssadmin("create", "shadow", "--schedule=e")
    started, done = tmp_path / "started", tmp_path / "done"
    # exec unexposes once the command runs (the clones live in its
    # namespace): the set is still in use, by exec's object.
    p = vssd.background(VSSADMIN, "exec", f"--set={first}", "--",
                        "sh", "-c", f"touch {started}; while [ ! -e {done} ]; do sleep 0.05; done")
    try:
        wait_until(started.exists, what="exec's command to start")
        pruned = json.loads(vssd.vssadmin("prune", "--schedule=e", "--json").stdout)
        assert [e["reason"] for e in pruned if e["set_id"] == first] == ["exposed"]
        assert first in schedule_sets(vssd, "e")
    finally:
        done.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    vssd.vssadmin("prune", "--schedule=e")
    assert first not in schedule_sets(vssd, "e")


def test_a_busy_slot_is_waited_for_then_the_set_is_made(sched):
    vssd, _, write, a, b = sched
    write("busy", schedule_text(a, b, "KeepLast = 5"))
    holder, _ = vssd.spawn_requestor("create", "init", "gather", "start", f"add={a}", "hold")
    try:
        p = vssd.background(VSSADMIN, "create", "shadow", "--schedule=busy", "--json")
        # It waits (and would for 300 s); it is not skipped.
        time.sleep(1)
        assert p.poll() is None, p.communicate()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        out, err = p.communicate(timeout=60)
    finally:
        terminate(holder)
    assert p.returncode == 0, err
    assert "waiting up to 300 s" in err
    assert json.loads(out)[0]["schedule"] == "busy"
    assert len(schedule_sets(vssd, "busy")) == 1


def test_a_full_slot_run_says_it_was_skipped(sched):
    vssd, _, write, a, b = sched
    write("busy", schedule_text(a, b, "KeepLast = 5"))
    holder, _ = vssd.spawn_requestor("create", "init", "gather", "start", f"add={a}", "hold")
    try:
        p = vssd.vssadmin("create", "shadow", "--schedule=busy", "--autoretry=1", check=False)
    finally:
        terminate(holder)
    assert p.returncode == 1
    assert "VSS_E_SNAPSHOT_SET_IN_PROGRESS" in p.stderr
    assert "schedule busy: run at" in p.stderr and "made no set" in p.stderr
    assert schedule_sets(vssd, "busy") == []


def test_only_root_may_tag_or_prune(sched, tmp_path):
    vssd, d, write, a, b = sched
    write("daily", schedule_text(a, b, "KeepLast = 1"))
    service_run(vssd, "daily")
    service_run(vssd, "daily")
    before = vssd.list_shadows()
    # A backup operator may make sets, but not tag them as a schedule's
    # (they would push the real daily sets out), nor prune.
    p = vssd.vssadmin("create", "shadow", "--schedule=daily", check=False, user=operator())
    assert p.returncode == 1 and "E_ACCESSDENIED" in p.stderr and "only root may" in p.stderr, p.stderr
    p = vssd.vssadmin("prune", "--schedule=daily", check=False, user=operator())
    assert p.returncode == 1 and "E_ACCESSDENIED" in p.stderr, p.stderr
    p = vssd.vssadmin("prune", "--schedule=daily", "--dry-run", check=False, user=NOBODY)
    assert p.returncode == 1 and "E_ACCESSDENIED" in p.stderr, p.stderr
    assert vssd.list_shadows() == before
    # The operator may read them.
    listed = json.loads(vssd.vssadmin("list", "schedules", "--json", user=operator()).stdout)
    assert listed[0]["sets"] == 1
    # A tag names a schedule of vssd's own directory, whatever the client read.
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    (rogue / "daily2.conf").write_text(schedule_text(a, b, "KeepLast = 1"))
    p = run(VSSADMIN, "create", "shadow", "--schedule=daily2", check=False,
            env=dict(vssd.client_env(), VSS_SCHEDULES_DIR=str(rogue)))
    assert p.returncode == 1 and "VSS_E_OBJECT_NOT_FOUND" in p.stderr and "daily2" in p.stderr, p.stderr
    assert vssd.list_shadows() == before


def test_bad_schedules_are_refused_with_their_code(sched):
    vssd, d, write, a, b = sched
    write("typo", schedule_text(a, b, "KeepLats = 3"))
    p = vssd.vssadmin("create", "shadow", "--schedule=typo", check=False)
    assert p.returncode == 2 and "E_INVALIDARG" in p.stderr and "typo.conf:6" in p.stderr
    assert 'unknown key "KeepLats"' in p.stderr
    p = vssd.vssadmin("prune", "--schedule=typo", check=False)
    assert p.returncode == 2 and "E_INVALIDARG" in p.stderr and "KeepLats" in p.stderr, p.stderr
    write("novol", "[Schedule]\nCalendar = daily\n")
    p = vssd.vssadmin("create", "shadow", "--schedule=novol", check=False)
    assert "E_INVALIDARG" in p.stderr and "no Volumes=" in p.stderr
    write("cal", schedule_text(a, b, "KeepLast = 1", calendar="every tuesday-ish"))
    p = vssd.vssadmin("create", "shadow", "--schedule=missing", check=False)
    assert p.returncode == 1 and "VSS_E_OBJECT_NOT_FOUND" in p.stderr and "missing" in p.stderr
    for name in ["../etc/passwd", ".hidden", "a/b", "x" * 65, "", "é"]:
        p = vssd.vssadmin("create", "shadow", f"--schedule={name}", check=False)
        assert p.returncode == 2 and "E_INVALIDARG" in p.stderr and "not a schedule's name" in p.stderr, name
        p = vssd.vssadmin("prune", f"--schedule={name}", check=False)
        assert p.returncode == 2 and "E_INVALIDARG" in p.stderr, name
    # A link in the directory is not a schedule.
    os.symlink(d / "typo.conf", d / "link.conf")
    p = vssd.vssadmin("create", "shadow", "--schedule=link", check=False)
    assert "E_INVALIDARG" in p.stderr
    listed = {s["name"]: s for s in json.loads(vssd.vssadmin("list", "schedules", "--json").stdout)}
    assert not listed["typo"]["valid"] and "KeepLats" in listed["typo"]["error"]
    assert not listed["cal"]["valid"] and "every tuesday-ish" in listed["cal"]["error"]
    assert vssd.list_shadows() == []


def test_generator_writes_each_schedule_timer(sched, tmp_path):
    vssd, d, write, a, b = sched
    write("hourly", schedule_text(a, b, "Hourly = 24", calendar="hourly"))
    write("often", schedule_text(a, b, "KeepLast = 3"))
    write("broken", "[Schedule]\nVolumes = relative\n")
    (d / "not-a-schedule.txt").write_text("x")
    out = tmp_path / "normal"
    out.mkdir()
    p = run(GENERATOR, out, tmp_path / "early", tmp_path / "late", check=False)
    assert p.returncode == 0, p.stderr
    assert "skipping schedule broken" in p.stderr
    for name, cal in [("hourly", "hourly"), ("often", "*:*:0/5")]:
        conf = out / f"vss-snapshot@{name}.timer.d" / "50-calendar.conf"
        assert f"[Timer]\nOnCalendar={cal}\n" in conf.read_text()
        link = out / "timers.target.wants" / f"vss-snapshot@{name}.timer"
        assert os.readlink(link).endswith("/vss-snapshot@.timer")
    assert sorted(os.listdir(out / "timers.target.wants")) == ["vss-snapshot@hourly.timer",
                                                              "vss-snapshot@often.timer"]
    # Run again (a daemon-reload): the same, no failure.
    assert run(GENERATOR, out, check=False).returncode == 0
