#!/bin/sh
# Run each libFuzzer target of a -Dfuzzers=true build for SECONDS seconds
# (default 20; 300 with VSS_LONG=1), one after the other, seeded with its
# corpus in tests/fuzz/corpus/. Fails at the first crash, leak, sanitizer
# report or broken invariant, leaving the input that did it in
# BUILD/fuzz-artifacts/. What the runs learn (new inputs) stays in
# BUILD/fuzz-corpus/, outside the repository.
#
#   scripts/fuzz.sh BUILD [SECONDS] [TARGET...]
set -eu
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD [SECONDS] [TARGET...]}
shift
if [ $# -gt 0 ]; then
	seconds=$1
	shift
elif [ "${VSS_LONG:-0}" = 1 ]; then
	seconds=300
else
	seconds=20
fi
targets=${*:-$(ls tests/fuzz/corpus)}

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
mkdir -p "$build/fuzz-artifacts"
for t in $targets; do
	exe="$build/tests/fuzz/$t"
	if [ ! -x "$exe" ]; then
		echo "fuzz: $exe is missing (configure $build with -Dfuzzers=true)" >&2
		exit 1
	fi
	mkdir -p "$build/fuzz-corpus/$t"
	echo "=== fuzz $t (${seconds}s)"
	# -close_fd_mask=3: the targets' own output (usage errors, logs) is
	# noise here; libFuzzer and the sanitizers still report.
	if ! "$exe" -max_total_time="$seconds" -timeout=10 -close_fd_mask=3 -print_final_stats=1 \
		-artifact_prefix="$build/fuzz-artifacts/$t-" \
		"$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$build/fuzz-artifacts/$t.log" 2>&1; then
		tail -n 60 "$build/fuzz-artifacts/$t.log" >&2
		echo "fuzz: $t failed; the input is in $build/fuzz-artifacts/ (log: $build/fuzz-artifacts/$t.log)" >&2
		exit 1
	fi
	grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$build/fuzz-artifacts/$t.log" | tr '\n' ' '
	echo
done
