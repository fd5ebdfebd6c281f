#!/usr/bin/env bash
# The main job: predict PaLM 540B's training step on 6144 TPU v4 chips (PaLM's real layout).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
./build/apps/palmsim predict scenarios/palm-540b-tpuv4-6144.yaml
