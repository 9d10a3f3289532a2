# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for the LVM tests. They run INSIDE the QEMU guest that
scripts/guest/run-guest boots (this machine's kernel may have no
device-mapper): `scripts/guest/run-guest tests/lvm/test_x.py`.

The guest sees the host's tree at the same paths (the build tree's vssd
and vssadmin, /usr/bin/python3, lvm2), its blank virtio disks are listed in
$VSSGUEST_DISKS, and plain lvm commands work without udev (the guest's
init writes an lvmlocal.conf into its overlay and exports DM_DISABLE_UDEV=1;
docs/TESTING-LVM.md).

Fixtures (see docs/TESTING-LVM.md):
  vg            a volume group on every guest disk, removed after the test
  make_lv       make_lv(kind="thin"|"classic", fstype="ext4"|"xfs", size=None,
                name=None, mount=True) -> Lv: an LV with a filesystem, mounted
                below the test's private directory
  thin_lv       an ext4 on a thin LV (the pool is made on first use)
  classic_lv    an XFS on a classic LV
  vssd          a private vssd (socket, state, runtime dir, DpkgLock of its own,
                MaxImageNesting = 2), stopped before the VG goes
  host          an XFS on a classic LV for image files; images(n, fstype) puts
                image volumes on it (an LVM + image set)
  daemon_factory, workdir, make_fs, images: as in tests/integration
"""

import importlib.util
import json
import os
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The integration suite's helpers (Daemon, mounts, freezing), loaded under a
# name of their own: both files are "conftest" to pytest.
_spec = importlib.util.spec_from_file_location("vss_integration_conftest", ROOT / "tests" / "integration" / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)

run = integration.run
thaw = integration.thaw
is_frozen = integration.is_frozen
mounts_below = integration.mounts_below
unmount = integration.unmount
wait_until = integration.wait_until
create_shadow = integration.create_shadow
Daemon = integration.Daemon
VSSD = integration.VSSD
VSSADMIN = integration.VSSADMIN
# Fixtures shared with the integration suite (images on this file's host).
workdir = integration.workdir
make_fs = integration.make_fs
images = integration.images

VG_NAME = "vsstest"
NESTING = "MaxImageNesting = 2\n"


def pytest_configure(config):
    if os.environ.get("VSSGUEST") != "1":
        pytest.exit("tests/lvm run inside the LVM test guest: scripts/guest/run-guest tests/lvm "
                    "(docs/TESTING-LVM.md)", returncode=1)
    if os.geteuid() != 0:
        pytest.exit("the LVM tests need root", returncode=1)
    for binary in (VSSD, VSSADMIN):
        if not binary.exists():
            pytest.exit(f"{binary} is missing: build first (make build)", returncode=1)
    if not guest_disks():
        pytest.exit("the guest has no test disks ($VSSGUEST_DISKS is empty)", returncode=1)


def guest_disks():
    return os.environ.get("VSSGUEST_DISKS", "").split()


def lvm(*args, check=True):
    """An lvm command; the guest's environment makes it work without udev."""
    p = run("lvm", *args, check=False)
    if check:
        assert p.returncode == 0, f"lvm {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}"
    return p


def lvm_report(*args):
    """lvs/vgs/pvs with --reportformat json: the list of rows."""
    p = lvm(*args, "--reportformat", "json")
    report = json.loads(p.stdout)["report"][0]
    return next(iter(report.values()))


def dm_table():
    """{name: {"suspended": bool, "open": int}} of every device-mapper device."""
    p = run("dmsetup", "info", "-c", "--noheadings", "--separator", ":", "-o", "name,attr,open", check=False)
    devices = {}
    for line in p.stdout.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3:
            devices[parts[0]] = {"suspended": "s" in parts[1], "open": int(parts[2] or 0)}
    return devices


def dm_name(vg, lv):
    """The device-mapper name lvm gives an LV (dashes doubled)."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def release_below(directory):
    """Unmount everything below directory and detach the loop devices of
    files there, in the order they hold each other: the filesystem of an
    image file (an LV's) stays busy until the image's mount and loop device
    are gone. No lazy unmount while progress is made: it would hide the
    loop devices' files from detach_loops_below and keep the LV open."""
    for _ in range(30):
        targets = mounts_below(directory)
        progress = False
        for target in targets:
            thaw(target)
            if run("umount", target, check=False).returncode == 0:
                progress = True
        integration.detach_loops_below(directory)
        if not targets:
            return
        if not progress:
            time.sleep(0.2)
    for target in mounts_below(directory):
        unmount(target)


class Lv:
    """A logical volume with a filesystem, mounted below the test's directory."""

    def __init__(self, vg, name, kind, fstype, mnt):
        self.vg = vg
        self.name = name
        self.kind = kind
        self.fstype = fstype
        self.lv = f"{vg.name}/{name}"
        self.device = pathlib.Path(f"/dev/{vg.name}/{name}")
        self.mapper = pathlib.Path(f"/dev/mapper/{dm_name(vg.name, name)}")
        self.mnt = mnt
        self.mounted = False

    def mount(self, *options):
        self.mnt.mkdir(exist_ok=True)
        opts = ["-o", ",".join(options)] if options else []
        run("mount", *opts, self.device, self.mnt)
        self.mounted = True
        os.chmod(self.mnt, 0o755)

    def umount(self):
        for target in mounts_below(self.mnt):
            unmount(target)
        self.mounted = False

    def report(self):
        return lvm_report("lvs", "-o", "lv_name,lv_attr,segtype,origin,pool_lv,lv_size,lv_tags",
                          "--units", "b", self.lv)[0]

    def __repr__(self):
        return f"Lv({self.lv}, {self.kind}, {self.fstype}, {self.mnt})"


class VolumeGroup:
    """A VG over the guest's disks. destroy() leaves the disks blank again:
    nothing thawed late, nothing suspended, no LV, no PV label."""

    def __init__(self, workdir, disks, name=VG_NAME):
        self.workdir = workdir
        self.disks = disks
        self.name = name
        self.pool = None
        self.lvs = []
        lvm("pvcreate", "-q", "-y", "-ff", *disks)
        lvm("vgcreate", "-q", name, *disks)

    def thin_pool(self, size="1G", name="pool"):
        """The VG's thin pool, made on first use."""
        if self.pool is None:
            lvm("lvcreate", "-q", "-L", size, "-T", f"{self.name}/{name}")
            self.pool = name
        return self.pool

    def make_lv(self, kind="thin", fstype="ext4", size=None, name=None, mount=True):
        # XFS refuses filesystems under 300 MB.
        size = size or ("320M" if fstype == "xfs" else "256M")
        name = name or f"{kind}{len(self.lvs)}"
        if kind == "thin":
            pool = self.thin_pool()
            lvm("lvcreate", "-q", "-V", size, "-T", f"{self.name}/{pool}", "-n", name)
        elif kind == "classic":
            lvm("lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-L", size, "-n", name, self.name)
        else:
            raise ValueError(f"kind {kind!r}: thin or classic")
        lv = Lv(self, name, kind, fstype, self.workdir / name)
        self.lvs.append(lv)
        mkfs = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"]}[fstype]
        run(*mkfs, lv.device)
        if mount:
            lv.mount()
        return lv

    def report(self):
        """Every LV of the VG (hidden ones too), as lvs reports them."""
        return lvm_report("lvs", "-a", "-o", "lv_name,lv_attr,segtype,origin,pool_lv,lv_size,lv_tags,data_percent",
                          "--units", "b", self.name)

    def free_bytes(self):
        return int(lvm_report("vgs", "-o", "vg_free", "--units", "b", "--nosuffix", self.name)[0]["vg_free"])

    def _mounts_of_vg(self):
        prefix = f"/dev/mapper/{dm_name(self.name, '')}"
        targets = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                source = fields[fields.index("-") + 2]
                if source.startswith(prefix) or source.startswith(f"/dev/{self.name}/"):
                    targets.append(fields[4].encode().decode("unicode_escape"))
        return sorted(set(targets), key=lambda t: t.count("/"), reverse=True)

    def _loops_below(self):
        out = run("losetup", "-a", "-n", "-O", "NAME,BACK-FILE", check=False).stdout
        return [line for line in out.splitlines() if f" {self.workdir}/" in f" {line.split(None, 1)[-1]}"]

    def destroy(self):
        """Undo everything, also after a failed test; raise if something
        stays (the next test of the module needs blank disks)."""
        release_below(self.workdir)
        for target in self._mounts_of_vg():
            unmount(target)
        # A loop device goes a moment after its last user (autoclear, or
        # losetup -d of a busy one); until then it holds its LV open.
        wait_until(lambda: not self._loops_below(), timeout=20, what="the loop devices of files on the LVs to go")
        # A suspended LV would hang every I/O below, lvremove's too.
        prefix = dm_name(self.name, "")
        for name, info in dm_table().items():
            if name.startswith(prefix) and info["suspended"]:
                run("dmsetup", "resume", name, check=False)
        for _ in range(50):
            if lvm("vgremove", "-q", "-ff", "-y", self.name, check=False).returncode == 0:
                break
            time.sleep(0.2)
        left = [n for n in dm_table() if n.startswith(prefix)]
        for name in left:
            run("dmsetup", "remove", "--force", name, check=False)
        lvm("pvremove", "-q", "-y", "-ff", *self.disks, check=False)
        for disk in self.disks:
            run("wipefs", "-q", "-a", disk, check=False)
        left = [n for n in dm_table() if n.startswith(prefix)]
        assert not left, f"device-mapper devices left after the test: {left}"


@pytest.fixture
def vg(workdir):
    d, _ = workdir
    group = VolumeGroup(d, guest_disks())
    yield group
    group.destroy()


@pytest.fixture
def make_lv(vg):
    return vg.make_lv


@pytest.fixture
def thin_lv(make_lv):
    return make_lv("thin", "ext4")


@pytest.fixture
def classic_lv(make_lv):
    return make_lv("classic", "xfs")


@pytest.fixture
def host(make_lv):
    """An XFS (reflink on by default) on a classic LV, to hold image files:
    images on an LV as on a server, one level deep (and not in the guest's
    RAM, as files in its /tmp would be)."""
    return make_lv("classic", "xfs", "1G", name="host")


@pytest.fixture
def daemon_factory(vg, workdir):
    """As in tests/integration, but after the VG: daemons stop before the
    VG is removed. A runtime directory of its own (freeze marker, exposures)."""
    d, _ = workdir
    make, stop_all = integration.daemons_in(d, NESTING)
    yield make
    stop_all()


@pytest.fixture
def vssd(daemon_factory):
    return daemon_factory()


def findings_file(name):
    """Where a test writes what it measured for docs (the results share,
    kept by run-guest --results DIR; else the test's output only)."""
    results = os.environ.get("VSSGUEST_RESULTS")
    return pathlib.Path(results) / f"{name}.json" if results else None


def record(name, data):
    print(f"finding {name}: {json.dumps(data, sort_keys=True)}")
    path = findings_file(name)
    if path:
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
