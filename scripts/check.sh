#!/bin/sh
# Run every suite against each build directory given: unit tests through
# meson, then the integration tests (real vssd, real loop-mounted
# filesystems) through pytest. A sanitizer report anywhere fails the run.
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
	VSS_BUILD_DIR="$PWD/$build" "$PYTHON" -m pytest -p no:cacheprovider -q tests/integration
done
