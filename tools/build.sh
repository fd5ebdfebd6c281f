#!/usr/bin/env bash
# Installs dependencies (Debian packages) and builds palmsim with Ninja into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$(nproc)"
