# SPDX-License-Identifier: LGPL-2.1-or-later
"""The README's C example, built from the README by meson
(examples/readme-example), does what the README says: a set of one volume,
exposed, released; and its failure branch names the VSS code."""

import re

from conftest import BUILD, run

EXAMPLE = BUILD / "examples" / "readme-example"


def test_readme_example_makes_exposes_and_releases_a_set(btrfs, vssd):
    volume = btrfs.subvolume("data")
    p = run(EXAMPLE, volume, check=False, env=vssd.client_env())
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(rf"{re.escape(str(volume))} is at (/\S+)\n", p.stdout)
    assert m and m.group(1).startswith(str(vssd.dir / "exposed")), p.stdout
    assert "created, 1 snapshot(s)" in vssd.log()
    # Released: the auto-release snapshot and its exposure are gone.
    assert vssd.list_shadows() == []
    assert m.group(1) not in run("findmnt", "-rn", "-o", "TARGET").stdout.split()


def test_readme_example_failure_branch(btrfs, daemon_factory):
    volume = btrfs.subvolume("data")
    vssd = daemon_factory(env={"VSS_FAULTS": "snapshot:1:EIO"})
    p = run(EXAMPLE, volume, check=False, env=vssd.client_env())
    assert p.returncode == 1 and p.stdout == ""
    assert re.match(r"VSS_E_\w+: .+", p.stderr), p.stderr
    assert vssd.list_shadows() == []
