#include "kernels/calibrate/cpu_microbench.h"

#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

namespace palmsim {

namespace {

template <class F>
double best_of(int repetitions, F&& run) {
  run();  // warm-up: page faults, thread pool start
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repetitions; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

double time_sgemm(int64_t m, int64_t n, int64_t k, int repetitions) {
  std::vector<float> a(size_t(m * k), 0.5f), b(size_t(k * n), 0.25f), c(size_t(m * n), 0.0f);
  return best_of(repetitions, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a.data(),
                int(k), b.data(), int(n), 0.0f, c.data(), int(n));
  });
}

double stream_triad_bytes_per_s(int64_t bytes_per_array, int repetitions) {
  const size_t n = size_t(bytes_per_array / int64_t(sizeof(float)));
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  const double seconds = best_of(repetitions, [&] {
    tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 1 << 16), [&](const tbb::blocked_range<size_t>& r) {
      for (size_t i = r.begin(); i < r.end(); ++i) a[i] = b[i] + 3.0f * c[i];
    });
  });
  return 3.0 * double(n) * sizeof(float) / seconds;
}

}  // namespace palmsim
