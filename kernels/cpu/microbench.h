#pragma once
// Micro-benchmarks of this machine's CPU: OpenBLAS sgemm at a given shape and a streaming triad,
// each timed over several repetitions after a warm-up.
#include "model/robust_statistics.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace palmsim {

// Seconds of each of `repetitions` runs of `run`, after one warm-up run.
template <class F>
std::vector<double> seconds_of(int repetitions, F&& run) {
  run();
  std::vector<double> seconds;
  for (int r = 0; r < repetitions; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return seconds;
}

// What a kernel costs a step: the mean of its timings (model/robust_statistics.h, mean_of, says
// why the mean). Not the fastest: one lucky repetition on a shared machine (the others contended)
// made the calibrated kernels 5-10 % faster than any step.
template <class F>
double mean_seconds_of(int repetitions, F&& run) {
  return mean_of(seconds_of(repetitions, run));
}

// A speed reference's timing: the median, which a burst in one repetition does not move. The
// reference is only ever compared with itself (machine_drift.h), so its statistic need not be a
// kernel's cost.
template <class F>
double median_seconds_of(int repetitions, F&& run) {
  return median_of(seconds_of(repetitions, run));
}

// "<CPU model name>, N threads" from /proc/cpuinfo.
std::string cpu_device_name(int threads);

// Seconds for one C = A * B with A m x k, B k x n, row-major fp32, through the trainer's GEMM
// (cpu::gemm, split over cpu::gemm_threads()), its operands out of the caches as in a step: the
// mean of `repetitions` timings.
// `pool` holds the rotated copies of the operands; pass the same one to shape after shape so it is
// laid out once.
double time_sgemm(int64_t m, int64_t n, int64_t k, int repetitions, std::vector<float>& pool);
// Bytes per second of a[i] = b[i] + s * c[i] over n floats per array (3 arrays moved), split over
// the current oneTBB arena: the median of `repetitions` timings of `passes` back-to-back triads.
double triad_bytes_per_s(float* a, const float* b, const float* c, size_t n, int passes, int repetitions);
// The same over fresh arrays of `bytes_per_array` each, one pass per timing.
double stream_triad_bytes_per_s(int64_t bytes_per_array, int repetitions);

}  // namespace palmsim
