#!/usr/bin/env bash
# Long fuzzing runs of the libFuzzer harnesses (tests/fuzz), in the sanitizer build.
# Usage: tools/fuzz.sh [NAME...] [-- SECONDS]   (default: every harness, 600 s each)
# Inputs that reach new code are kept in build-sanitize/fuzz-found/NAME (not the seed corpus);
# crashes are written as crash-*/leak-*/timeout-* files in the current folder. Exits non-zero if any
# harness found one.
set -euo pipefail
cd "$(dirname "$0")/.."
names=() seconds=600
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then seconds=$2; shift 2; else names+=("$1"); shift; fi
done
[ ${#names[@]} -gt 0 ] || names=(fuzz_scenario fuzz_validation_csv fuzz_calibration fuzz_preset fuzz_checkpoint fuzz_corpus fuzz_train_config)
bash tools/build_sanitized.sh
status=0
for name in "${names[@]}"; do
  out=build-sanitize/fuzz-found/$name
  mkdir -p "$out"
  echo "== $name: $seconds s"
  ASAN_OPTIONS=detect_leaks=1 "build-sanitize/tests/fuzz/$name" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict="tests/fuzz/$name.dict" "$out" "tests/fuzz/corpus/$name" \
    2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || status=1
done
exit $status
