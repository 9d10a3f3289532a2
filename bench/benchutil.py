# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the bench drivers (driver.py, hold.py, writers.py) share."""
import math
import subprocess
import sys


def fail(msg, proc=None):
    """Say what failed, with the command's output, and exit 1: a bench that
    went wrong must not print numbers."""
    print(f"bench: FAILED: {msg}", file=sys.stderr)
    if proc is not None:
        print(f"  command: {' '.join(map(str, proc.args))}", file=sys.stderr)
        print(f"  exit status: {proc.returncode}", file=sys.stderr)
        for name, data in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            text = (data or b"").decode(errors="replace").strip()
            if text:
                print(f"  {name}:\n    " + text.replace("\n", "\n    "), file=sys.stderr)
    sys.exit(1)


def run(cmd, what):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        fail(what, p)
    return p


def pct(xs, q):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def version(cmd):
    """The first line a tool prints about its version, or "?"."""
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
        return out.decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"
