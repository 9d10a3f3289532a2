# SPDX-License-Identifier: LGPL-2.1-or-later
"""examples/simple-writer.c keeps what it shows application developers.

The example updates a counter in two steps, DATADIR/a then DATADIR/b, so on
disk the files disagree half of the time. As a writer it finishes a half-done
update at freeze and writes nothing until thaw (or abort): every snapshot of
an application-consistent set holds an a and a b that agree, and the example
writes on after the set.
"""

import json
import pathlib
import time

import pytest

import conftest
from conftest import by_step, wait_until

EXAMPLE = conftest.BUILD / "examples" / "simple-writer"
SETS = 10


@pytest.fixture
def example():
    assert EXAMPLE.exists(), f"{EXAMPLE} is missing: build first (ninja -C {conftest.BUILD})"
    return EXAMPLE


def counter(path):
    """The number in a counter file; 0 while the file is still empty."""
    text = pathlib.Path(path).read_text()
    return int(text) if text.strip() else 0


def start(vssd, example, btrfs):
    subvol = btrfs.subvolume("data")
    data = subvol / "app"
    data.mkdir()
    proc = vssd.spawn(example, data)
    # Some updates first, so that the files have had time to disagree.
    wait_until(lambda: counter(data / "b") >= 10, what="the example to count")
    return subvol, data, proc


def create(vssd, subvol, *args):
    return json.loads(vssd.vssadmin("create", "shadow", f"--for={subvol}", "--json", *args).stdout)[0]


def test_identify_names_the_data_directory(btrfs, vssd, example):
    subvol, data, _ = start(vssd, example, btrfs)
    res = vssd.requestor("create", "init", "gather", "add-component=simple-writer:counter")
    assert by_step(res, "gather")[0].detail.split()[-1] == "simple-writer:1", res
    assert by_step(res, "add-component")[0].hr == "S_OK", res
    writers = json.loads(vssd.vssadmin("list", "writers", "--json").stdout)
    assert [w["name"] for w in writers] == ["simple-writer"]
    # vssd picks writers by the files they name: the example takes part in a
    # set of the subvolume holding its data directory, and in no other.
    other = btrfs.subvolume("other")
    assert create(vssd, subvol)["consistency"] == "application-consistent"
    assert create(vssd, other)["consistency"] == "crash-consistent per volume"


def test_snapshots_hold_counters_that_agree(btrfs, vssd, example):
    subvol, data, proc = start(vssd, example, btrfs)
    for _ in range(SETS):
        made = create(vssd, subvol)
        assert made["consistency"] == "application-consistent", made
        snap = pathlib.Path(made["snapshot_path"]) / "app"
        a, b = counter(snap / "a"), counter(snap / "b")
        assert a == b > 0, f"the snapshot caught the update half done: a={a} b={b}"
        # Thaw lets it write again.
        wait_until(lambda: counter(data / "b") > a, what="the example to write again after thaw")
    for w in json.loads(vssd.vssadmin("list", "writers", "--json").stdout):
        assert (w["state_text"], w["last_error"]) == ("Stable", None), w
    # SIGTERM: it unsubscribes and exits cleanly.
    proc.terminate()
    assert proc.wait(timeout=10) == 0, proc.stderr.read()
    vssd.wait_log("writer simple-writer left")


def test_without_a_writer_round_the_files_can_disagree(btrfs, vssd, example):
    """The check above is not vacuous: in a context without writers
    (nas_rollback) the example is never frozen, and some snapshots catch
    the update half done (about one in two; all 30 agreeing by chance is
    about one in 10^9)."""
    subvol, data, _ = start(vssd, example, btrfs)
    pairs = []
    for _ in range(30):
        made = create(vssd, subvol, "--context=nas_rollback")
        snap = pathlib.Path(made["snapshot_path"]) / "app"
        pairs.append((counter(snap / "a"), counter(snap / "b")))
        vssd.vssadmin("delete", "shadows", f"--set={made['set_id']}", "--quiet")
        time.sleep(0.003)  # land on different points of the 5 ms step
    assert any(a != b for a, b in pairs), pairs
    assert all(a - b in (0, 1) for a, b in pairs), pairs


def test_frozen_it_stops_writing_and_abort_resumes_it(btrfs, vssd, example, workdir):
    """A system-level writer that hangs in freeze keeps the set frozen: the
    example (front-end, frozen first) must not write meanwhile. vssd then
    dies; libvss aborts the frozen writer, and it must write again and live on."""
    subvol, data, proc = start(vssd, example, btrfs)
    log = workdir[0] / "hang.log"
    vssd.writer("hang", "--level=system", "--hang=freeze:20000", f"--log={log}")
    req = vssd.background(conftest.VSSADMIN, "create", "shadow", f"--for={subvol}")
    try:
        wait_until(lambda: log.exists() and "hang freeze" in log.read_text(), timeout=30,
                   what="the system-level writer to be frozen")
        frozen = (counter(data / "a"), counter(data / "b"))
        assert frozen[0] == frozen[1], f"frozen half done: {frozen}"
        time.sleep(0.3)  # 60 work steps, were it writing
        assert (counter(data / "a"), counter(data / "b")) == frozen
        vssd.kill()
        wait_until(lambda: counter(data / "b") > frozen[1], what="the example to write again after abort")
        assert proc.poll() is None, "the example ended with vssd"
    finally:
        if req.poll() is None:
            req.kill()
        req.communicate()
