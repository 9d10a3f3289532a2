#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""seccomp-exec.py SYSCALLS PROGRAM [ARGS...]: run PROGRAM where only the
comma-separated SYSCALLS may be called, the others failing with EPERM, as
systemd's SystemCallFilter= with SystemCallErrorNumber=EPERM does (for
tests that cannot run vssd under systemd)."""
import errno
import os
import sys

import seccomp

f = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
for name in sys.argv[1].split(","):
    try:
        f.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError):
        pass  # not a call of this architecture
f.load()
os.execv(sys.argv[2], sys.argv[2:])
