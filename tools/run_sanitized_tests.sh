#!/usr/bin/env bash
# The sanitizer suite: every C++ test built with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang, build-sanitize/), and each libFuzzer harness for a fixed number of executions from its
# seed corpus (ctest label "fuzz"). Not in it: the Python module and the notebooks (python3 is not
# instrumented), the CUDA backend (no GPU here) and tests labelled "slow" (validate --simulate over
# the original runs; the simulator's own tests cover the same code). Any sanitizer report fails its
# test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build_sanitized.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tools/lsan.supp:print_suppressions=0
# Ranks that mpirun starts get their own options: Open MPI's allocations need the slow unwinder
# (its libraries have no frame pointers) for the suppressions to see whose they are.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export OMPI_MCA_mca_base_env_list="ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0;LSAN_OPTIONS;UBSAN_OPTIONS;OMPI_MCA_mca_base_component_disable_dlclose"
cd build-sanitize
ctest --output-on-failure -j"$(nproc)" --timeout 900 -LE slow
