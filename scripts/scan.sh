#!/bin/sh
# clang's static analyzer (scan-build) over everything meson builds, in its
# own build directory (default build-scan). Fails on any report but the one
# class of false positive scripts/scan-filter.py explains; the HTML reports
# stay in BUILD/scan-reports/.
#
# Only what changed since the last clean run is analysed again: a run that
# finds something, or did not finish, cleans the build, so that the next
# run looks at all.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-scan}
reports="$build/scan-reports"

if [ ! -f "$build/build.ninja" ]; then
	scan-build --use-cc=clang meson setup "$build" >/dev/null
fi
if [ -e "$build/scan-unfinished" ]; then
	ninja -C "$build" -t clean >/dev/null
fi
touch "$build/scan-unfinished"
rm -rf "$reports"
mkdir -p "$reports"
# -plist-html: HTML to read, plist for scan-filter.py. --keep-empty so
# that the report directory is there also when nothing was found.
scan-build --use-cc=clang -plist-html --keep-empty -o "$reports" ninja -C "$build" >"$build/scan.log" 2>&1 || {
	tail -n 40 "$build/scan.log" >&2
	ninja -C "$build" -t clean >/dev/null
	echo "scan: the build failed (log: $build/scan.log)" >&2
	exit 1
}
if ! ./scripts/scan-filter.py "$reports" "$build"; then
	ninja -C "$build" -t clean >/dev/null
	echo "scan: see $reports/*/index.html, or rerun: scripts/scan.sh $build" >&2
	exit 1
fi
rm "$build/scan-unfinished"
