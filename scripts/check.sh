#!/bin/sh
# Run every suite against each build directory given: unit tests (and the
# fuzz corpora, replayed) through meson, then the integration tests (real
# vssd, real loop-mounted filesystems) through pytest. A sanitizer report
# anywhere fails the run.
#   VSS_SANITIZER_BUILD the same suites against that (sanitizer) build, at the
#                       same time as those of the builds given, with the crash
#                       torture and the soak at lower counts (8 kills, 40
#                       cycles) and without the application load tests (the
#                       integration tests wait on the kernel more than they
#                       compute: two runs side by side take little longer than one)
# Then, each when its variable names a build directory:
#   VSS_VALGRIND_BUILD  the unit tests of that (unsanitized) build under valgrind
#   VSS_FUZZ_BUILD      a short run of each fuzz target (scripts/fuzz.sh)
#   VSS_SCAN_BUILD      clang's static analyzer over the tree (scripts/scan.sh)
#   VSS_LVM_BUILD       the LVM suite (tests/lvm) against that build, in QEMU
#                       guests (scripts/guest/run-guest), one boot per module;
#                       the whole suite is killed and fails after 600 s (10 minutes). It
#                       fails when no guest can be had, unless VSS_LVM_TESTS=skip.
# VSS_LONG=1 (make check-long) runs the crash torture and the soak at their
# full counts (200 kills of each kind, 1,000 cycles) instead of 20 and 100,
# and the fuzzers longer.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
start=$(date +%s)

# "=== what (+m:ss)": where the run's minutes go, in every log.
phase() {
	t=$(($(date +%s) - start))
	printf '=== %s (+%d:%02d)\n' "$1" $((t / 60)) $((t % 60))
}

# Sanitizers: stop at the first report, and make it fail the process.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"

# One build's unit and integration tests; fails with the first failing suite.
suites() {
	phase "unit tests ($1)"
	meson test -C "$1" --print-errorlogs --suite unit --suite fuzz || return
	phase "integration tests ($1)"
	# The crash torture and the soak write their figures here.
	rm -f "$1/torture-summary.txt"
	local rc=0
	VSS_BUILD_DIR="$PWD/$1" "$PYTHON" -m pytest -p no:cacheprovider -q tests/integration || rc=$?
	if [ -f "$1/torture-summary.txt" ]; then
		phase "torture and soak ($1)"
		cat "$1/torture-summary.txt"
	fi
	return "$rc"
}

san_pid=
lvm_pid=
# run-guest kills its guest on SIGTERM; pytest cleans up its filesystems.
trap 'for p in $san_pid $lvm_pid; do kill "$p" 2>/dev/null || :; done' EXIT
if [ -n "${VSS_SANITIZER_BUILD:-}" ]; then
	san_log="$VSS_SANITIZER_BUILD/check-suites.log"
	phase "unit and integration tests ($VSS_SANITIZER_BUILD), beside the next ones: $san_log"
	(
		export VSS_TORTURE_KILLS=8 VSS_SOAK_CYCLES=40 VSS_SKIP_APP_LOAD=1
		suites "$VSS_SANITIZER_BUILD"
	) >"$san_log" 2>&1 &
	san_pid=$!
fi
status=0
for build in "$@"; do
	suites "$build" || { status=$?; break; }
done
if [ -n "$san_pid" ]; then
	# Even when the first run failed: the second ends its own filesystems.
	san_status=0
	wait "$san_pid" || san_status=$?
	san_pid=
	phase "unit and integration tests ($VSS_SANITIZER_BUILD), run beside"
	cat "$san_log"
	[ "$status" -ne 0 ] || status=$san_status
fi
[ "$status" -eq 0 ] || exit "$status"

# The LVM suite runs in a guest beside the steps below: QEMU's emulation
# keeps one core busy, the fuzzers run for a fixed time on the other, and
# the suite's minutes do not add to the run's. Its output comes at the end.
lvm_log=
if [ -n "${VSS_LVM_BUILD:-}" ]; then
	if [ "${VSS_LVM_TESTS:-}" = skip ]; then
		phase "LVM suite: VSS_LVM_TESTS=skip: the LVM suite is NOT run"
	else
		lvm_log="$VSS_LVM_BUILD/lvm-suite.log"
		phase "LVM suite in a QEMU guest ($VSS_LVM_BUILD), beside what follows: $lvm_log"
		VSS_BUILD_DIR="$PWD/$VSS_LVM_BUILD" "$PYTHON" scripts/guest/run-guest \
			--total-timeout "${VSS_LVM_TIMEOUT:-600}" tests/lvm >"$lvm_log" 2>&1 &
		lvm_pid=$!
	fi
fi

if [ -n "${VSS_VALGRIND_BUILD:-}" ]; then
	phase "unit tests under valgrind ($VSS_VALGRIND_BUILD)"
	meson test -C "$VSS_VALGRIND_BUILD" --print-errorlogs --suite unit --suite fuzz --timeout-multiplier=10 \
		--wrapper="valgrind -q --error-exitcode=1 --leak-check=full"
fi
if [ -n "${VSS_FUZZ_BUILD:-}" ]; then
	phase "fuzzing ($VSS_FUZZ_BUILD)"
	./scripts/fuzz.sh "$VSS_FUZZ_BUILD"
fi
if [ -n "${VSS_SCAN_BUILD:-}" ]; then
	phase "static analysis ($VSS_SCAN_BUILD)"
	./scripts/scan.sh "$VSS_SCAN_BUILD"
fi
if [ -n "$lvm_pid" ]; then
	lvm_status=0
	wait "$lvm_pid" || lvm_status=$?
	lvm_pid=
	phase "LVM suite in a QEMU guest ($VSS_LVM_BUILD)"
	cat "$lvm_log"
	[ "$lvm_status" -eq 0 ] || exit "$lvm_status"
fi
phase "done"
