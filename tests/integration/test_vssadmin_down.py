# SPDX-License-Identifier: LGPL-2.1-or-later
"""vssadmin when vssd cannot be reached: every verb reports the failure by
its VSS code and exits 1, none crashes (list providers, list shadowstorage
and resize shadowstorage released a handle they never got: exit 139)."""

import re
import shutil

import pytest

from conftest import VSSADMIN, assert_no_sanitizer_report, run

ID = "{01122334-4556-6778-899a-abbccddeef00}"

VERBS = [
    ["create", "shadow", "--for=/"],
    ["list", "shadows"],
    ["list", "providers"],
    ["list", "writers"],
    ["list", "shadowstorage"],
    ["resize", "shadowstorage", "--for=/", "--maxsize=1G"],
    ["delete", "shadows", f"--set={ID}"],
    ["expose", f"--shadow={ID}"],
    ["unexpose", f"--shadow={ID}"],
]


def checker():
    """valgrind, where the build has no sanitizer of its own: a use of an
    uninitialised handle does not always crash, valgrind always sees it."""
    if not shutil.which("valgrind") or "libasan" in run("ldd", VSSADMIN).stdout:
        return []
    return ["valgrind", "-q", "--error-exitcode=99"]


@pytest.mark.parametrize("args", VERBS, ids=lambda a: " ".join(a[:2]))
def test_verb_without_vssd(tmp_path, args):
    p = run(*checker(), VSSADMIN, f"--socket={tmp_path}/nobody-listens.sock", *args, check=False)
    assert_no_sanitizer_report(p.stderr, " ".join(args))
    assert p.returncode == 1, f"exit {p.returncode}: {p.stderr}"
    assert re.search(r"VSS_E_\w+|E_\w+ \(0x[0-9a-f]{8}\)", p.stderr), p.stderr
