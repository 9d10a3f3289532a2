#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Read the plist reports of a scan-build run (-plist-html), print each, and
exit 1 if any remains after dropping two known classes of false positive.

clang 14's analyzer does not run __attribute__((cleanup)) functions when a
function returns early (llvm/llvm-project#160527), so every early return
past a _cleanup_free_ variable is a "Potential leak". vss uses _cleanup_
everywhere (src/basic/macro.h): those reports, and only those, are dropped:
a leak report whose memory was allocated on a line declaring a _cleanup_
variable, or whose variable is declared _cleanup_ in the function; and, for
the same reason, the "dead store" of "fd = safe_close(fd)" on a
_cleanup_close_ variable closed early, which its cleanup reads.

    scripts/scan-filter.py REPORT_DIR BUILD_DIR

(BUILD_DIR: where the compiler ran, what the reports' paths are relative to.)
"""
import pathlib
import plistlib
import re
import sys


BUILD = pathlib.Path(".")


def source_lines(path, cache={}):
    if path not in cache:
        try:
            cache[path] = (BUILD / path).read_text(errors="replace").splitlines()
        except OSError:
            cache[path] = []
    return cache[path]


def line_of(files, loc):
    lines = source_lines(files[loc["file"]])
    return lines[loc["line"] - 1] if 0 < loc["line"] <= len(lines) else ""


def declared_cleanup(files, loc, var):
    """Whether var is declared _cleanup_ above loc, in the same function."""
    lines = source_lines(files[loc["file"]])
    decl = re.compile(r"_cleanup_\w*(\([^)]*\))?\s.*[\s*]" + re.escape(var) + r"\s*(=|;|,|\[)")
    for text in reversed(lines[: loc["line"]]):
        if decl.search(text):
            return True
        if text.startswith("{"):
            return False
    return False


def cleanup_false_positive(files, d):
    m = re.match(r"Potential leak of memory pointed to by '(\w+)'", d.get("description", ""))
    if d.get("check_name") != "unix.Malloc" or not m:
        return False
    for event in d.get("path", []):
        if event.get("kind") == "event" and event.get("message") == "Memory is allocated":
            if "_cleanup_" in line_of(files, event["location"]):
                return True
    return declared_cleanup(files, d["location"], m.group(1))


def early_close_false_positive(files, d):
    """"fd = safe_close(fd)" of a _cleanup_close_ variable: closed early (so
    that vssd does not count as a user of what it unmounts), and read again
    by the cleanup, which the analyzer does not run."""
    m = re.match(r"Value stored to '(\w+)' is never read", d.get("description", ""))
    if d.get("check_name") != "deadcode.DeadStores" or not m:
        return False
    var = m.group(1)
    if not re.search(r"\b" + re.escape(var) + r"\s*=\s*safe_close\(\s*" + re.escape(var) + r"\s*\)",
                     line_of(files, d["location"])):
        return False
    return declared_cleanup(files, d["location"], var)


def main():
    global BUILD
    BUILD = pathlib.Path(sys.argv[2])
    kept = dropped = 0
    for plist in sorted(pathlib.Path(sys.argv[1]).rglob("*.plist")):
        with open(plist, "rb") as f:
            report = plistlib.load(f)
        files = report.get("files", [])
        for d in report.get("diagnostics", []):
            loc = d["location"]
            where = f"{files[loc['file']]}:{loc['line']}:{loc['col']}"
            text = f"{where}: {d.get('description')} [{d.get('check_name')}]"
            if cleanup_false_positive(files, d) or early_close_false_positive(files, d):
                dropped += 1
                print(f"  (dropped: _cleanup_ false positive) {text}")
            else:
                kept += 1
                print(f"  {text}")
    print(f"scan: {kept} report(s), {dropped} _cleanup_ false positive(s) dropped")
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
