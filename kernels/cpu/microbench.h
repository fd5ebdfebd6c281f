#pragma once
// Micro-benchmarks of this machine's CPU: OpenBLAS sgemm at a given shape and a streaming triad,
// each timed as the best of several repetitions after a warm-up (the least-disturbed run, since
// other processes share the cores).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

namespace palmsim {

// Seconds of the fastest of `repetitions` runs of `run`, after one warm-up run.
template <class F>
double best_of(int repetitions, F&& run) {
  run();
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repetitions; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// "<CPU model name>, N threads" from /proc/cpuinfo.
std::string cpu_device_name(int threads);

// Seconds for one C = A * B with A m x k, B k x n, row-major fp32, through the trainer's GEMM
// (cpu::gemm, split over cpu::gemm_threads()).
double time_sgemm(int64_t m, int64_t n, int64_t k, int repetitions);
// Bytes per second of a[i] = b[i] + s * c[i] over `bytes_per_array` per array (3 arrays moved).
double stream_triad_bytes_per_s(int64_t bytes_per_array, int repetitions);

}  // namespace palmsim
