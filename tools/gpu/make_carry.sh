#!/usr/bin/env bash
# Fills .gpu-carry/ (ignored by git) with what the standalone CUDA build needs beyond the CUDA
# toolkit, taken from this machine's Debian packages (tools/setup.sh installs them): the headers of
# fmt, nlohmann-json, CLI11, yaml-cpp and oneTBB, yaml-cpp's static library, oneTBB's runtime and
# GoogleTest's sources. About 8 MB; the device tool carries it to a GPU machine (carry: .gpu-carry).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu-carry
rm -rf "$out"
mkdir -p "$out/include" "$out/lib"
for h in fmt nlohmann CLI yaml-cpp tbb oneapi; do cp -r "/usr/include/$h" "$out/include/"; done
lib=/usr/lib/$(gcc -print-multiarch)
cp "$lib/libyaml-cpp.a" "$lib/libtbb.so.12" "$out/lib/"
cp -r /usr/src/googletest "$out/googletest"
du -sh "$out"
