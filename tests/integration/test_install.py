# SPDX-License-Identifier: LGPL-2.1-or-later
"""`meson install` into a DESTDIR: the layout a package gets, a program built
against it through pkg-config, the units systemd accepts, and vssd working
inside the capability bounding set its unit gives it."""
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess

import pytest

import conftest
from conftest import BUILD, ROOT, run

UNIT_DIR = "lib/systemd/system"
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def build_options():
    opts = json.loads(run("meson", "introspect", "--buildoptions", BUILD).stdout)
    return {o["name"]: o["value"] for o in opts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(destdir, the build's options); the install is made once for all tests here."""
    dest = tmp_path_factory.mktemp("destdir")
    run("meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", dest)
    yield dest, build_options()
    shutil.rmtree(dest, ignore_errors=True)


def under(dest, opts, key, *rest):
    """DESTDIR/PREFIX/<option key>/rest (an absolute option, e.g. sysconfdir /etc, is kept)."""
    return dest / (pathlib.Path(opts["prefix"]) / opts[key]).relative_to("/") / pathlib.Path(*rest)


def mode(path):
    return stat.S_IMODE(path.lstat().st_mode)


def test_layout(installed):
    dest, o = installed
    for key, name in [("bindir", "vssadmin"), ("bindir", "vss-hook-writer"), ("bindir", "vss-pg-writer"),
                      ("bindir", "vss-mysql-writer"),
                      ("sbindir", "vssd")]:
        p = under(dest, o, key, name)
        assert p.is_file() and mode(p) == 0o755, p
    for name in ["vss.h", "hresult.h", "types.h", "backup.h", "async.h", "writer.h"]:
        p = under(dest, o, "includedir", "vss", name)
        assert p.is_file() and mode(p) == 0o644, p
    prefix = dest / pathlib.Path(o["prefix"]).relative_to("/")
    files = [
        under(dest, o, "sysconfdir", "vss", "vssd.conf"),
        prefix / UNIT_DIR / "vssd.service",
        prefix / UNIT_DIR / "vssd.socket",
        prefix / "lib/tmpfiles.d/vss.conf",
        under(dest, o, "datadir", "bash-completion/completions/vssadmin"),
        under(dest, o, "datadir", "doc/vss/ADMIN.md"),
        prefix / UNIT_DIR / "vss-snapshot@.service",
        prefix / UNIT_DIR / "vss-snapshot@.timer",
    ]
    for p in files:
        assert p.is_file() and mode(p) == 0o644, p
    generator = prefix / "lib/systemd/system-generators/vss-schedule-generator"
    assert generator.is_file() and mode(generator) == 0o755, generator
    assert under(dest, o, "sysconfdir", "vss", "schedules.d").is_dir()
    # The default configuration is the documented one, the one vssd reads.
    assert files[0].read_text() == (ROOT / "data/vssd.conf").read_text()
    vssd = under(dest, o, "sbindir", "vssd")
    assert f"(default {pathlib.Path(o['prefix']) / o['sysconfdir']}/vss/vssd.conf)" in run(vssd, "--help").stdout
    # systemd-tmpfiles takes the entry and makes the runtime directory.
    root = dest / "tmpfiles-root"
    root.mkdir()
    p = run("systemd-tmpfiles", f"--root={root}", "--create", files[3], check=False)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    assert (root / "run/vss").is_dir() and mode(root / "run/vss") == 0o755
    shutil.rmtree(root)


def test_library_and_soname(installed):
    dest, o = installed
    libdir = under(dest, o, "libdir")
    so, so0, real = libdir / "libvss.so", libdir / "libvss.so.0", libdir / "libvss.so.0.1.0"
    assert os.readlink(so) == "libvss.so.0" and os.readlink(so0) == "libvss.so.0.1.0"
    assert real.is_file() and not real.is_symlink() and mode(real) == 0o755
    dyn = run("readelf", "-d", real).stdout
    assert "Library soname: [libvss.so.0]" in dyn
    # The version script: exactly its vss_ symbols are exported, each with a
    # version node of it.
    script = (ROOT / "src/libvss/libvss.sym").read_text()
    listed = set(re.findall(r"^\s*(vss_\w+);", script, re.M))
    nodes = set(re.findall(r"^(LIBVSS_[\w.]+)\s*\{", script, re.M))
    assert "LIBVSS_0" in nodes
    exported = set()
    for line in run("readelf", "--dyn-syms", "-W", real).stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] in ("FUNC", "OBJECT") and f[6] not in ("UND", "ABS"):
            name, _, version = f[7].partition("@")
            assert version.lstrip("@") in nodes, line
            exported.add(name)
    assert exported == listed


def test_pkg_config_builds_a_program(installed, tmp_path):
    dest, o = installed
    env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=str(dest),
               PKG_CONFIG_LIBDIR=str(under(dest, o, "libdir", "pkgconfig")))
    flags = run("pkg-config", "--cflags", "--libs", "vss", env=env).stdout.split()
    assert f"-I{under(dest, o, 'includedir')}" in flags and "-lvss" in flags
    assert run("pkg-config", "--modversion", "vss", env=env).stdout.strip() == "0.1.0"
    src = tmp_path / "hr.c"
    src.write_text("#include <stdio.h>\n#include <string.h>\n#include <vss/vss.h>\n"
                   "int main(void)\n{\n"
                   "\tconst char *n = vss_hr_name(VSS_E_OBJECT_NOT_FOUND);\n"
                   "\tputs(n);\n"
                   "\treturn strcmp(n, \"VSS_E_OBJECT_NOT_FOUND\") != 0;\n}\n")
    # A sanitized libvss needs its runtime in the program.
    sanitize = [f"-fsanitize={s}" for s in o.get("b_sanitize", "none").split(",") if s != "none"]
    exe = tmp_path / "hr"
    run("cc", "-std=c11", "-Wall", "-Werror", *sanitize, "-o", exe, src, *flags)
    p = run(exe, env=dict(os.environ, LD_LIBRARY_PATH=str(under(dest, o, "libdir"))))
    assert p.stdout.strip() == "VSS_E_OBJECT_NOT_FOUND"


def unit_text(dest, o):
    return (dest / pathlib.Path(o["prefix"]).relative_to("/") / UNIT_DIR / "vssd.service").read_text()


def test_units_verify(installed, tmp_path):
    dest, o = installed
    units = dest / pathlib.Path(o["prefix"]).relative_to("/") / UNIT_DIR
    text = unit_text(dest, o)
    execstart = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    assert execstart == str(pathlib.Path(o["prefix"]) / o["sbindir"] / "vssd")
    assert not re.search(r"@\w+@", text), "a placeholder was left in the unit"
    # systemd-analyze verify resolves ExecStart and dependencies in --root:
    # the installed tree, with the host's own units for the standard targets.
    root = tmp_path / "root"
    shutil.copytree(dest, root, symlinks=True)
    host = pathlib.Path("/lib/systemd/system")
    (root / "lib/systemd/system").mkdir(parents=True, exist_ok=True)
    for f in host.iterdir():
        if f.name.endswith((".target", ".slice")) and f.is_file():
            shutil.copy(f, root / "lib/systemd/system" / f.name)
    inner = units.relative_to(dest)
    p = run("systemd-analyze", "verify", "--man=no", f"--root={root}",
            root / inner / "vssd.service", root / inner / "vssd.socket", check=False)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    # A schedule's timer is the template with the generator's drop-in: the
    # template alone has no OnCalendar=, which systemd refuses.
    p = run("systemd-analyze", "verify", "--man=no", f"--root={root}", "vss-snapshot@nightly.timer", check=False)
    assert p.returncode != 0 and "lacks value setting" in p.stderr, p.stderr
    schedules = tmp_path / "schedules.d"
    schedules.mkdir()
    (schedules / "nightly.conf").write_text("[Schedule]\nVolumes = /srv\nCalendar = *-*-* 02:30\n")
    generator = root / inner.parent / "system-generators/vss-schedule-generator"
    run(generator, root / "etc/systemd/system", env=dict(os.environ, VSS_SCHEDULES_DIR=str(schedules)))
    p = run("systemd-analyze", "verify", "--man=no", f"--root={root}", "vss-snapshot@nightly.timer",
            "vss-snapshot@nightly.service", check=False)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    link = root / "etc/systemd/system/timers.target.wants/vss-snapshot@nightly.timer"
    assert os.readlink(link) == str(pathlib.Path(o["prefix"]) / UNIT_DIR / "vss-snapshot@.timer")
    service = (units / "vss-snapshot@.service").read_text()
    bindir = pathlib.Path(o["prefix"]) / o["bindir"]
    assert f"ExecStart={bindir}/vssadmin create shadow --schedule=%i\n" in service
    assert f"ExecStart={bindir}/vssadmin prune --schedule=%i\n" in service
    # The documentation the unit names is installed.
    for page in re.findall(r"man:([\w.-]+)\((\d)\)", text):
        assert under(dest, o, "mandir", f"man{page[1]}", f"{page[0]}.{page[1]}").is_file(), page
    # A sandbox setting dropped by mistake shows here (9.6 without any).
    p = run("systemd-analyze", "security", "--offline=true", "--no-pager", units / "vssd.service", check=False)
    level = float(re.search(r"Overall exposure level for vssd.service: ([\d.]+)", p.stdout).group(1))
    assert level <= 3.8, p.stdout


def test_man_pages(installed):
    dest, o = installed
    for name, section in [("vss", 7), ("vssd", 8), ("vssd.conf", 5), ("vss-schedules", 5), ("vssadmin", 8),
                          ("vss-hook-writer", 8), ("vss-pg-writer", 8), ("vss-mysql-writer", 8)]:
        page = under(dest, o, "mandir", f"man{section}", f"{name}.{section}")
        text = page.read_text()
        assert f'.TH "{name.upper()}" "{section}"' in text, page
        assert mode(page) == 0o644
        # groff parses it without an error (warnings about wide tables aside).
        p = run("groff", "-man", "-t", "-Tutf8", "-z", "-ww", page, check=False)
        assert p.returncode == 0 and "error" not in p.stderr, p.stderr


def vssadmin_options():
    src = (ROOT / "src/vssadmin/vssadmin.c").read_text()
    return set(re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', src)) - {"help"}


def test_pages_and_completion_know_every_option_and_key():
    # vssadmin(8), the completion and vssd.conf(5) follow the code.
    page = (ROOT / "docs/man/vssadmin.md").read_text()
    completion = (ROOT / "data/vssadmin.bash-completion").read_text()
    for opt in vssadmin_options():
        assert f"--{opt}" in page, opt
        assert f"--{opt}" in completion, opt
    src = (ROOT / "src/vssadmin/vssadmin.c").read_text()
    for verb, noun in re.findall(r'\{ "([a-z]+)", (?:"([a-z]+)"|NULL),', src):
        assert f"### {verb}" in page or f", {verb}" in page or f"{verb} {noun}" in page, verb
        assert re.search(rf"\[{verb}( {noun})?\]", completion) if noun else f"[{verb}]" in completion, verb
    keys = set(re.findall(r'streq\(k, "(\w+)"\)', (ROOT / "src/vssd/config.c").read_text()))
    conf_page = (ROOT / "docs/man/vssd.conf.md").read_text()
    conf = (ROOT / "data/vssd.conf").read_text()
    assert len(keys) > 20
    for k in keys:
        assert f"`{k}=`" in conf_page, k
        if not k.endswith("MSec") or k in ("HoldSettleMSec", "HostReserveCheckMSec"):
            assert re.search(rf"^#?{k} = ", conf, re.M), k  # "#": a key without a default


def complete(dest, o, line, env=None):
    script = (f"source {BASH_COMPLETION}\n"
              f"source {under(dest, o, 'datadir', 'bash-completion/completions/vssadmin')}\n"
              "COMP_LINE=\"$1\"; COMP_POINT=${#COMP_LINE}\n"
              "read -ra COMP_WORDS <<<\"$COMP_LINE\"\n"
              "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')\n"
              "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
              "_vssadmin; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    return run("bash", "-c", script, "complete", line, env=env).stdout.split()


@pytest.mark.skipif(not os.path.exists(BASH_COMPLETION),
                    reason="bash-completion is not installed")
def test_completion(installed):
    dest, o = installed
    assert set(complete(dest, o, "vssadmin ")) >= {"create", "list", "delete", "exec", "expose", "resize"}
    assert set(complete(dest, o, "vssadmin list ")) == {"shadows", "providers", "writers", "shadowstorage",
                                                        "schedules"}
    assert complete(dest, o, "vssadmin prune --dr") == ["--dry-run"]
    assert "--autoretry=" in complete(dest, o, "vssadmin create shadow --")
    assert "--no-writers" in complete(dest, o, "vssadmin exec --")
    assert "--maxsize=" not in complete(dest, o, "vssadmin list shadows --")
    assert complete(dest, o, "vssadmin create shadow --context=nas") == ["nas_rollback"]


def syscall_groups():
    """{"@group": [calls and @groups]} as this systemd defines them."""
    groups, cur = {}, None
    for line in run("systemd-analyze", "syscall-filter", "--no-pager").stdout.splitlines():
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if line.startswith("@"):
            cur = groups.setdefault(t.split()[0], [])
        elif cur is not None:
            cur.append(t.split()[0])
    return groups


def syscall_filter(text):
    """The calls the unit's SystemCallFilter= lines allow, in systemd's way:
    the first line is the allow list, then "~" removes, and a line without
    it adds."""
    groups = syscall_groups()

    def expand(items):
        out = set()
        for x in items:
            out |= expand(groups[x]) if x.startswith("@") else {x}
        return out

    allowed = None
    for line in re.findall(r"^SystemCallFilter=(.*)$", text, re.M):
        deny = line.startswith("~")
        calls = expand(line.lstrip("~").split())
        assert allowed is not None or not deny, "the first SystemCallFilter= line is the allow list"
        allowed = (allowed or set()) - calls if deny else (allowed or set()) | calls
    return allowed


def capability_bounding_set(text):
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    return ",".join(["-all"] + ["+" + c.lower().removeprefix("cap_") for c in caps])


def test_vssd_in_the_units_sandbox(installed, btrfs, images, daemon_factory, workdir, monkeypatch):
    """What the unit allows is enough for a user's volume: vssd under its
    CapabilityBoundingSet, NoNewPrivileges and SystemCallFilter makes,
    exposes (into another user's directory) and deletes a snapshot of a
    subvolume owned by another user, mode 0700 (systemd is not needed to
    apply these three, so the test runs wherever the others do)."""
    dest, o = installed
    text = unit_text(dest, o)
    assert re.search(r"^NoNewPrivileges=yes$", text, re.M)
    assert re.search(r"^SystemCallErrorNumber=EPERM$", text, re.M)
    calls = syscall_filter(text)
    if o.get("b_sanitize", "none") != "none":
        # LeakSanitizer stops the world at exit with ptrace: the sanitizer
        # builds' own need, not vssd's.
        calls |= set(syscall_groups()["@debug"])
    calls = ",".join(sorted(calls))
    d, _ = workdir
    wrapper = d / "vssd-sandboxed"
    wrapper.write_text(f"#!/bin/sh\nexec setpriv --bounding-set={capability_bounding_set(text)} --no-new-privs "
                       f"{ROOT / 'tests/integration/seccomp-exec.py'} {calls} {conftest.VSSD} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "VSSD", wrapper)
    vol = btrfs.subvolume("home")
    (vol / "f").write_text("mine\n")
    os.chown(vol / "f", 65534, 65534)
    os.chown(vol, 65534, 65534)
    os.chmod(vol, 0o700)
    # The image host is itself on a loop device here.
    vssd = daemon_factory(config="MaxImageNesting = 2\n")
    status = (pathlib.Path("/proc") / str(vssd.proc.pid) / "status").read_text()
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    vssd.vssadmin("create", "shadow", f"--for={vol}", "--context=nas_rollback")
    [snap] = vssd.list_shadows(f"--for={vol}")
    if os.path.exists(BASH_COMPLETION):
        # The completion asks the installed vssadmin for the ids.
        env = dict(os.environ, PATH=f"{under(dest, o, 'bindir')}:{os.environ['PATH']}",
                   LD_LIBRARY_PATH=str(under(dest, o, "libdir")))
        line = f"vssadmin --socket={vssd.socket} delete shadows "
        assert complete(dest, o, line + "--shadow=", env) == [snap["id"]]
        assert complete(dest, o, line + "--set=", env) == [snap["set_id"]]
    other = d / "other"
    other.mkdir()
    os.chown(other, 65534, 65534)
    at = other / "seen"
    vssd.vssadmin("expose", f"--shadow={snap['id']}", f"--at={at}")
    assert (at / "f").read_text() == "mine\n"
    vssd.vssadmin("unexpose", f"--shadow={snap['id']}")
    vssd.vssadmin("delete", "shadows", f"--for={vol}", "--all", "--quiet")
    assert vssd.list_shadows(f"--for={vol}") == []
    # An image volume: freeze, clone, and a loop device to expose it.
    [guest] = images(1)
    (guest.mnt / "g").write_text("guest\n")
    vssd.vssadmin("create", "shadow", f"--for={guest.mnt}", "--context=nas_rollback")
    [snap] = vssd.list_shadows(f"--for={guest.mnt}")
    at = d / "guest-seen"
    vssd.vssadmin("expose", f"--shadow={snap['id']}", f"--at={at}")
    assert (at / "g").read_text() == "guest\n"
    vssd.vssadmin("delete", "shadows", f"--shadow={snap['id']}", "--quiet")
    assert vssd.list_shadows(f"--for={guest.mnt}") == []
