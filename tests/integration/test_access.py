# SPDX-License-Identifier: LGPL-2.1-or-later
"""Backup privilege is decided by vssd from the peer's credentials."""

import grp

from conftest import by_step

NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unprivileged_user_gets_access_denied(btrfs, vssd):
    a = btrfs.subvolume("a")
    res = vssd.requestor("create", "init", user=NOBODY)
    assert res[0].hr == "E_ACCESSDENIED"
    assert "neither root nor a member" in res[0].message
    p = vssd.vssadmin("create", "shadow", f"--for={a}", check=False, user=NOBODY)
    assert p.returncode == 1
    assert p.stderr.startswith("vssadmin: E_ACCESSDENIED (0x80070005): ")
    p = vssd.vssadmin("list", "shadows", check=False, user=NOBODY)
    assert p.returncode == 1 and "E_ACCESSDENIED" in p.stderr
    assert vssd.list_shadows() == []


def test_backup_operators_group_is_allowed(btrfs, vssd):
    """Members of the configured group (default "backup") may make sets, as
    their primary or as a supplementary group."""
    a = btrfs.subvolume("a")
    gid = grp.getgrnam("backup").gr_gid
    for user in (["--reuid=65534", f"--regid={gid}", "--clear-groups"],
                 ["--reuid=65534", "--regid=65534", f"--groups={gid}"]):
        res = vssd.requestor("create", "init", "context=app_rollback", "gather", "start", f"add={a}", "do", user=user)
        assert by_step(res, "do")[0].hr == "S_OK", res
        assert by_step(res, "do")[0].detail == "VSS_S_ASYNC_FINISHED", res
    assert len(vssd.list_shadows()) == 2


def test_configured_group(btrfs, daemon_factory):
    a = btrfs.subvolume("a")
    gid = grp.getgrnam("operator").gr_gid
    vssd = daemon_factory(config="[vssd]\nBackupGroup = operator\n")
    res = vssd.requestor("create", user=["--reuid=65534", f"--regid={gid}", "--clear-groups"])
    assert res[0].hr == "S_OK"
    res = vssd.requestor("create", user=["--reuid=65534", f"--regid={grp.getgrnam('backup').gr_gid}",
                                         "--clear-groups"])
    assert res[0].hr == "E_ACCESSDENIED"
    del a


ID = "{00112233-4455-6677-8899-aabbccddeeff}"
# One invocation of every verb, with arguments that get past its own checks
# to the point where it asks vssd.
EVERY_VERB = [
    ["create", "shadow", "--for=/"],
    ["list", "shadows"],
    ["list", "shadows", "--json"],
    ["list", "providers"],
    ["list", "providers", "--json"],
    ["list", "writers"],
    ["list", "writers", "--json"],
    ["list", "shadowstorage"],
    ["list", "shadowstorage", "--json"],
    ["resize", "shadowstorage", "--for=/", "--maxsize=1G"],
    ["delete", "shadows", f"--shadow={ID}", "--quiet"],
    ["delete", "shadows", f"--set={ID}", "--quiet"],
    ["delete", "shadows", "--for=/", "--oldest", "--quiet"],
    ["expose", f"--shadow={ID}"],
    ["expose", f"--set={ID}", "--at=/tmp"],
    ["unexpose", f"--shadow={ID}"],
    ["unexpose", f"--set={ID}"],
]


def test_no_verb_crashes_when_vssd_refuses_or_is_gone(vssd):
    """Refused (an ordinary user) or unreachable (vssd stopped), every verb
    fails with a named result and exit status 1, never a signal."""
    def check(p, args, expected):
        assert p.returncode == 1, f"vssadmin {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
        assert p.stderr.startswith("vssadmin: ") and expected in p.stderr, p.stderr

    for args in EVERY_VERB:
        check(vssd.vssadmin(*args, check=False, user=NOBODY), args, "E_ACCESSDENIED")
    vssd.stop()
    for args in EVERY_VERB:
        check(vssd.vssadmin(*args, check=False), args, "(0x")
