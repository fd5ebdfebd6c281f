#pragma once
// Micro-benchmarks of this machine's CPU: OpenBLAS sgemm at a given shape and a streaming triad,
// each timed as the best of several repetitions after a warm-up (the least-disturbed run, since
// other processes share the cores).
#include <cstdint>

namespace palmsim {

// Seconds for one C = A * B with A m x k, B k x n, row-major fp32.
double time_sgemm(int64_t m, int64_t n, int64_t k, int repetitions);
// Bytes per second of a[i] = b[i] + s * c[i] over `bytes_per_array` per array (3 arrays moved).
double stream_triad_bytes_per_s(int64_t bytes_per_array, int repetitions);

}  // namespace palmsim
