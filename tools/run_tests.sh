#!/usr/bin/env bash
# Every test: unit, end-to-end CLI (GoogleTest via ctest). GPU tests skip where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600
