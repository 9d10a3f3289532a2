# SPDX-License-Identifier: LGPL-2.1-or-later
"""vssadmin as a new user meets it: help for each command, its version, a
suggestion for a mistyped command, what create shadow prints, delete
shadows --all, and errors that say what to do."""

import json
import re
import subprocess

from conftest import VSSADMIN, run


def vssadmin(*args):
    return run(VSSADMIN, *args, check=False)


def test_version_and_help_of_every_command():
    p = vssadmin("--version")
    assert p.returncode == 0 and re.fullmatch(r"vssadmin \d+\.\d+\.\d+\n", p.stdout)
    whole = vssadmin("--help").stdout
    for words in ["create shadow", "list shadows", "list providers", "list writers", "delete shadows", "expose",
                  "unexpose", "exec", "list shadowstorage", "resize shadowstorage"]:
        p = vssadmin(*words.split(), "--help")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith(f"Usage: vssadmin [--socket=PATH] {words}"), p.stdout
        assert p.stdout != whole
        assert words in whole


def test_a_mistyped_command_gets_a_suggestion():
    p = vssadmin("craete", "shadow", "--for=/x")
    assert p.returncode == 2 and 'did you mean "create shadow"?' in p.stderr, p.stderr
    p = vssadmin("exex", "--for=/x", "--", "true")
    assert p.returncode == 2 and 'did you mean "exec"?' in p.stderr, p.stderr
    p = vssadmin("frobnicate", "everything")
    assert p.returncode == 2 and "did you mean" not in p.stderr and "unknown command" in p.stderr


def test_create_shadow_says_what_windows_says_and_the_set(btrfs, vssd):
    a, b = btrfs.subvolume("a"), btrfs.subvolume("b")
    out = vssd.vssadmin("create", "shadow", f"--for={a}", f"--for={b}").stdout
    for v in (a, b):
        assert f"Successfully created shadow copy for '{v}'\n    Shadow Copy ID: {{" in out, out
    assert re.search(r"Shadow Copy Set ID: \{[0-9a-f-]+\}\n    Consistency: crash-consistent per volume\n"
                     r"    Hold window: \d+ us\n$", out), out


def test_delete_shadows_all_alone_deletes_every_snapshot(btrfs, vssd):
    vols = [btrfs.subvolume(n) for n in "abc"]
    for v in vols:
        vssd.vssadmin("create", "shadow", f"--for={v}")
    assert len(vssd.list_shadows()) == 3
    p = vssd.vssadmin("delete", "shadows", "--all", check=False)
    # Not a terminal and no --quiet: it asks nobody and deletes.
    assert p.returncode == 0, p.stderr
    assert "Successfully deleted 3 shadow copies." in p.stdout
    assert vssd.list_shadows() == [] and btrfs.store_entries() == []
    p = vssd.vssadmin("delete", "shadows", "--all", "--oldest", check=False)
    assert p.returncode == 2 and "--oldest goes with --for" in p.stderr


def test_an_unknown_provider_is_answered_with_the_registered_ones(btrfs, vssd):
    a = btrfs.subvolume("a")
    p = vssd.vssadmin("create", "shadow", f"--for={a}", "--provider=zfs", check=False)
    assert p.returncode == 1
    assert p.stderr.count("VSS_E_PROVIDER_NOT_REGISTERED") == 1, p.stderr
    assert re.search(r'no provider "zfs"; registered: (btrfs image|image btrfs)', p.stderr), p.stderr


def test_a_volume_no_provider_takes_gets_the_reason(make_fs, workdir, vssd):
    d, _ = workdir
    # An ext4 image in a directory of the root filesystem, which cannot
    # clone it, and a tmpfs.
    plain = make_fs("ext4", "64M", "plain")
    p = vssd.vssadmin("create", "shadow", f"--for={plain.mnt}", check=False)
    assert "VSS_E_VOLUME_NOT_SUPPORTED" in p.stderr
    assert "not on a filesystem that can clone it" in p.stderr, p.stderr
    tmp = d / "tmpfs"
    tmp.mkdir()
    run("mount", "-t", "tmpfs", "tmpfs", tmp)
    p = vssd.vssadmin("create", "shadow", f"--for={tmp}", check=False)
    assert "VSS_E_VOLUME_NOT_SUPPORTED" in p.stderr
    assert "vss snapshots btrfs subvolumes, and ext4 and XFS kept in image files" in p.stderr, p.stderr
