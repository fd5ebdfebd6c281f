#!/usr/bin/env bash
# The single place that knows palmsim's dependencies. Installs them from Debian packages.
# Usage: tools/setup.sh            (run as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libsimgrid-dev libboost-dev                 # discrete-event simulator (S4U API)
  libtbb-dev                                  # parallel search, CPU kernels
  libfmt-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and benchmarks
  libopenblas-dev                             # CPU GEMM
  libcsv-dev                                  # RFC 4180 CSV reader (validation sets)
  libnlopt-cxx-dev                            # bounded least-squares fits of software stacks (BOBYQA)
  libopenmpi-dev openmpi-bin                  # sweep across MPI ranks
  pybind11-dev python3-dev                    # the palmsim Python module
  clang libclang-rt-14-dev                    # the sanitizer suite and libFuzzer harnesses
  libsentencepiece-dev sentencepiece          # tokenizer
  fortunes                                    # text corpus for the trainer (plain text, '%'-separated)
  python3 python3-matplotlib python3-pandas python3-numpy
  jupyter-nbconvert python3-ipykernel python3-nbformat
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all dependencies present"
