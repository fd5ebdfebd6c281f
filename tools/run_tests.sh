#!/usr/bin/env bash
# Every test: unit, end-to-end CLI (GoogleTest via ctest), then the sanitizer suite (the C++ tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer, and a fixed number of executions of
# every fuzz harness). GPU tests skip where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600
cd ..
bash tools/run_sanitized_tests.sh
