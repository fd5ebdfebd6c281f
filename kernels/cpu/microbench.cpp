#include "kernels/cpu/microbench.h"

#include "kernels/cpu/blas.h"

#include <tbb/parallel_for.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <vector>

namespace palmsim {

std::string cpu_device_name(int threads) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown CPU";
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      name = line.substr(line.find(':') + 2);
      break;
    }
  return fmt::format("{}, {} threads", name, threads);
}

double time_sgemm(int64_t m, int64_t n, int64_t k, int repetitions, std::vector<float>& pool) {
  // Operands rotate over enough copies to span 64 MiB, twice a typical last-level cache: in a
  // training step a GEMM's operands were last touched several ops earlier, and the same three
  // buffers timed back to back ran 2-8 % faster than that (train-tiny's shapes on 2 EPYC cores),
  // which made every calibrated prediction of the step ~5 % fast. The copies are carved from the
  // caller's pool, grown when a larger shape needs it.
  const int64_t set = m * k + k * n + m * n;
  const int64_t copies = std::clamp<int64_t>((int64_t(64) << 20) / int64_t(sizeof(float)) / set + 1, 2, 64);
  if (int64_t(pool.size()) < copies * set) pool.assign(size_t(copies * set), 0.25f);
  int64_t i = 0;
  return mean_seconds_of(repetitions, [&] {
    i = (i + 1) % copies;
    float* a = pool.data() + i * set;
    float* b = a + m * k;
    float* c = b + k * n;
    cpu::gemm(false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  });
}

double triad_bytes_per_s(float* a, const float* b, const float* c, size_t n, int passes, int repetitions) {
  const double seconds = median_seconds_of(repetitions, [&] {
    for (int p = 0; p < passes; ++p)
      tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 1 << 14), [&](const tbb::blocked_range<size_t>& r) {
        for (size_t i = r.begin(); i < r.end(); ++i) a[i] = b[i] + 3.0f * c[i];
      });
  });
  return 3.0 * double(n) * sizeof(float) * passes / seconds;
}

double stream_triad_bytes_per_s(int64_t bytes_per_array, int repetitions) {
  const size_t n = size_t(bytes_per_array / int64_t(sizeof(float)));
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  return triad_bytes_per_s(a.data(), b.data(), c.data(), n, 1, repetitions);
}

}  // namespace palmsim
