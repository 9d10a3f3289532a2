#!/bin/sh
# Run every suite against each build directory given: unit tests through
# meson, then the integration tests (real vssd, real loop-mounted
# filesystems) through pytest. A sanitizer report anywhere fails the run.
# VSS_LONG=1 (make check-long) runs the crash torture and the soak at their
# full counts (200 kills of each kind, 1,000 cycles) instead of 20 and 100.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}

# Sanitizers: stop at the first report, and make it fail the process.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"

for build in "$@"; do
	echo "=== unit tests ($build)"
	meson test -C "$build" --print-errorlogs --suite unit
	echo "=== integration tests ($build)"
	# The crash torture and the soak write their figures here.
	rm -f "$build/torture-summary.txt"
	status=0
	VSS_BUILD_DIR="$PWD/$build" "$PYTHON" -m pytest -p no:cacheprovider -q tests/integration || status=$?
	if [ -f "$build/torture-summary.txt" ]; then
		echo "=== torture and soak ($build)"
		cat "$build/torture-summary.txt"
	fi
	[ "$status" -eq 0 ] || exit "$status"
done
