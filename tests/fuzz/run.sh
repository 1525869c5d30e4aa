#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Run every libFuzzer target for a bounded time, from its seed corpus.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [BUILD_DIR]
# BUILD_DIR is a clang build with -Dfuzzing=true (deploy/setup.sh test makes
# build-fuzz). New inputs go to a scratch copy of the corpus; a crash fails
# the run and leaves its input in $FUZZ_ARTIFACTS (default /tmp/vigil-fuzz-artifacts)
# to be fixed and then added to tests/fuzz/corpus/TARGET/. FUZZ_TARGETS
# (names, space-separated) restricts the run to those targets.
set -eu
secs=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
build=${2:-$here/../../build-fuzz}
art=${FUZZ_ARTIFACTS:-/tmp/vigil-fuzz-artifacts}
mkdir -p "$art"
status=0
for exe in "$build"/tests/fuzz/fuzz_* "$build"/responder/fuzz_* "$build"/crlgen/fuzz_*; do
	[ -x "$exe" ] && [ -f "$exe" ] || continue
	name=${exe##*/fuzz_}
	case " ${FUZZ_TARGETS:-$name} " in *" $name "*) ;; *) continue ;; esac
	seeds=$here/corpus/$name
	work=$(mktemp -d /tmp/vigil-fuzz-$name.XXXXXX)
	[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
	dict=""
	# TARGET.dict, or the dictionary of its family (http_req: http.dict)
	for d in "$here/$name.dict" "$here/${name%%_*}.dict"; do
		[ -f "$d" ] && { dict="-dict=$d"; break; }
	done
	log=$work.log
	# shellcheck disable=SC2086
	if ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$exe" $dict -max_total_time="$secs" \
		-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$art/$name-" "$work" >"$log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz $name: ok executions=${execs:-?} seconds=$secs corpus=$(ls "$work" | wc -l)"
	else
		echo "fuzz $name: FAILED (log $log, artifacts $art/$name-*)"
		tail -30 "$log"
		status=1
	fi
	rm -rf "$work"
done
exit $status
