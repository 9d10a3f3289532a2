# SPDX-License-Identifier: LGPL-2.1-or-later
"""Previous Versions: vssd keeps the snapshots of persistent client-accessible
sets of a PreviousVersions= volume mounted in the @GMT layout Samba's
vfs_shadow_copy2 reads, and Debian's smbd serves them to smbclient."""

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import run, wait_until

NESTING = "MaxImageNesting = 2\n"
GMT = re.compile(r"@GMT-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d$")


def tree(vssd, volume):
    d = vssd.dir / "previous-versions" / str(volume).lstrip("/")
    return sorted(os.listdir(d)) if d.exists() else []


def expected_names(sets):
    """The @GMT names of sets (oldest first): each its creation second in
    UTC, or the next one free."""
    names = []
    for s in sets:
        t = datetime.datetime.strptime(s["created"][:19], "%Y-%m-%dT%H:%M:%S")
        while t.strftime("@GMT-%Y.%m.%d-%H.%M.%S") in names:
            t += datetime.timedelta(seconds=1)
        names.append(t.strftime("@GMT-%Y.%m.%d-%H.%M.%S"))
    return names


def create(vssd, volume, context="client_accessible"):
    out = json.loads(vssd.vssadmin("create", "shadow", f"--for={volume}", f"--context={context}", "--json").stdout)
    return out[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smbd:
    """A private smbd on 127.0.0.1 sharing volume with shadow_copy2."""

    def __init__(self, d, volume, snapdir, share=None):
        self.dir = d / "samba"
        for sub in ("lock", "state", "cache", "private", "pid"):
            (self.dir / sub).mkdir(parents=True)
        self.port = free_port()
        conf = self.dir / "smb.conf"
        conf.write_text(f"""[global]
  smb ports = {self.port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  server role = standalone server
  map to guest = Bad User
  lock directory = {self.dir}/lock
  state directory = {self.dir}/state
  cache directory = {self.dir}/cache
  private dir = {self.dir}/private
  pid directory = {self.dir}/pid
  log file = {self.dir}/log
[data]
  path = {share or volume}
  guest ok = yes
  read only = yes
  vfs objects = shadow_copy2
  shadow:snapdir = {snapdir}
  shadow:basedir = {volume}
  shadow:sort = desc
""")
        # A session of its own: on SIGTERM smbd signals its whole process
        # group.
        self.proc = subprocess.Popen(["smbd", "--foreground", "--no-process-group", "-s", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout=30, what="smbd to listen")

    def client(self, command):
        p = run("smbclient", "-N", f"//127.0.0.1/data", "-p", str(self.port), "-c", command, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def versions(self, name):
        """The @GMT tokens smbd lists as previous versions of a file."""
        return sorted(set(re.findall(r"@GMT-[\d.-]+", self.client(f"allinfo {name}"))))

    def get(self, token, name, dest):
        self.client(f'get "{token}/{name}" "{dest}"')
        return open(dest).read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def smbd_factory(workdir):
    if not shutil.which("smbd") or not os.path.exists("/usr/lib/x86_64-linux-gnu/samba/vfs/shadow_copy2.so"):
        pytest.fail("smbd with shadow_copy2 is needed (make deps installs samba, samba-vfs-modules, smbclient)")
    d, _ = workdir
    made = []

    def make(volume, snapdir, share=None):
        s = Smbd(d, volume, snapdir, share)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.mark.parametrize("kind", ["btrfs", "image"])
def test_previous_versions_follow_the_sets_and_smbd_serves_them(kind, btrfs, images, daemon_factory, smbd_factory,
                                                                workdir):
    d, _ = workdir
    if kind == "btrfs":
        volume = btrfs.subvolume("data")
    else:
        (img,) = images(1)
        volume = img.mnt
    os.chmod(volume, 0o755)
    vssd = daemon_factory(config=f"{NESTING}PreviousVersions = {volume}\n")
    f = volume / "report.txt"
    sets = []
    for i in range(3):
        f.write_text(f"version {i}\n")
        os.chmod(f, 0o644)
        sets.append(create(vssd, volume))
    # Neither an auto-release nor a non-client-accessible set is a version.
    create(vssd, volume, context="app_rollback")
    f.write_text("live\n")
    names = tree(vssd, volume)
    assert all(GMT.match(n) for n in names), names
    assert names == expected_names(sets)

    snapdir = vssd.dir / "previous-versions" / str(volume).lstrip("/")
    smb = smbd_factory(volume, snapdir)
    assert smb.versions("report.txt") == names
    got = [smb.get(n, "report.txt", d / f"got-{n}") for n in names]
    assert got == ["version 0\n", "version 1\n", "version 2\n"], got

    # A version is usable while the same snapshot is exposed elsewhere,
    # and stays when that exposure goes.
    at = d / "exposed"
    vssd.vssadmin("expose", f"--shadow={sets[1]['id']}", f"--at={at}")
    assert (at / "report.txt").read_text() == "version 1\n"
    vssd.vssadmin("unexpose", f"--shadow={sets[1]['id']}")
    assert smb.get(names[1], "report.txt", d / "again") == "version 1\n"

    # Deleting a set takes its version, directory and all.
    vssd.vssadmin("delete", "shadows", f"--set={sets[0]['set_id']}", "--quiet")
    assert tree(vssd, volume) == names[1:]
    assert smb.versions("report.txt") == names[1:]

    # A restart rebuilds the tree from the catalog (a set that had to take
    # the next second may now have its own).
    vssd.restart()
    names = tree(vssd, volume)
    assert names == expected_names(sets[1:])
    assert smb.get(names[1], "report.txt", d / "after-restart") == "version 2\n"

    # Without the key, nothing is published, and what was is cleared.
    vssd.stop()
    vssd.config.write_text(vssd.config.read_text().replace(f"PreviousVersions = {volume}\n", ""))
    vssd.start()
    assert tree(vssd, volume) == []
    mounts = run("findmnt", "-rn", "-o", "TARGET").stdout.split()
    assert not [m for m in mounts if m.startswith(str(vssd.dir / "previous-versions"))], mounts


def test_a_share_below_the_volume(btrfs, daemon_factory, smbd_factory, workdir):
    d, _ = workdir
    volume = btrfs.subvolume("data")
    share = volume / "projects"
    share.mkdir(mode=0o755)
    os.chmod(volume, 0o755)
    vssd = daemon_factory(config=f"PreviousVersions = {volume}\n")
    (share / "plan.txt").write_text("old plan\n")
    create(vssd, volume)
    (share / "plan.txt").write_text("new plan\n")
    smb = smbd_factory(volume, vssd.dir / "previous-versions" / str(volume).lstrip("/"), share)
    (token,) = smb.versions("plan.txt")
    assert smb.get(token, "plan.txt", d / "plan") == "old plan\n"


def test_two_sets_in_one_second_get_two_versions(btrfs, daemon_factory):
    volume = btrfs.subvolume("data")
    vssd = daemon_factory(config=f"PreviousVersions = {volume}\n")
    made = []
    deadline = time.monotonic() + 30
    # Sets of one btrfs subvolume take milliseconds: keep making pairs
    # until one falls in a single second.
    while time.monotonic() < deadline:
        a, b = create(vssd, volume), create(vssd, volume)
        made += [a, b]
        if a["created"][:19] == b["created"][:19]:
            break
    else:
        pytest.fail("no two sets in one second")
    assert tree(vssd, volume) == expected_names(made)


def test_previous_versions_key_must_be_canonical(daemon_factory):
    vssd = daemon_factory(config="PreviousVersions = /srv/../data\n", start=False)
    p = subprocess.run([str(x) for x in [vssd_binary(), "--socket", vssd.socket, "--state-dir", vssd.state,
                                         "--config", vssd.config]], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "canonical" in p.stderr + p.stdout


def vssd_binary():
    from conftest import VSSD
    return VSSD
