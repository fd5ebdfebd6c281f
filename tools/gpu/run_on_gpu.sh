#!/usr/bin/env bash
# On a GPU machine with the CUDA toolkit, CMake and Ninja only (the device tool's machines): builds
# the standalone CUDA trainer from the carried dependencies (tools/gpu/make_carry.sh, run before
# on a Debian machine), runs every CUDA test, then bench-step on train-tiny and train-1b.
# Writes logs and results JSON to $OUT (default out/gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
nccl_root=""
if [ ! -f /usr/local/cuda/include/nccl.h ]; then
  # NCCL from the nvidia-nccl wheel of the machine's Python, when the toolkit lacks it.
  nccl_root=$(python3 -c "import nvidia.nccl as m; print(list(m.__path__)[0])" 2>/dev/null || true)
fi
cmake -G Ninja -S . -B build-gpu -DPALMSIM_CUDA_STANDALONE=ON -DPALMSIM_CUDA=ON \
  -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DPALMSIM_NCCL_ROOT="$nccl_root" > "$OUT/configure.log" 2>&1 \
  || { tail -30 "$OUT/configure.log"; exit 1; }
ninja -C build-gpu > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
ctest --test-dir build-gpu --output-on-failure > "$OUT/ctest.log" 2>&1
tests_rc=$?
for model in train-tiny train-1b; do
  ./build-gpu/apps/palmsim bench-step "scenarios/$model.yaml" --backend cuda --steps 5 --json \
    > "$OUT/bench-$model.json" 2> "$OUT/bench-$model.err" || cat "$OUT/bench-$model.err"
  python3 tools/gpu/summarize_bench.py "$OUT/bench-$model.json" || true
done
tail -25 "$OUT/ctest.log"
exit $tests_rc
