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
