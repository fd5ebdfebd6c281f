#!/usr/bin/env bash
# The sanitizer build: clang with AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer
# harnesses, into build-sanitize/ (no CUDA, no Python module: neither is instrumented).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >/dev/null
CC=clang CXX=clang++ cmake -G Ninja -S . -B build-sanitize -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
  -DPALMSIM_SANITIZE=address,undefined -DPALMSIM_BUILD_FUZZERS=ON -DPALMSIM_CUDA=OFF >/dev/null
ninja -C build-sanitize -j"$(nproc)"
