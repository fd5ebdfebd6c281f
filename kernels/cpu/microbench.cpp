#include "kernels/cpu/microbench.h"

#include "kernels/cpu/blas.h"

#include <tbb/parallel_for.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
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

double time_sgemm(int64_t m, int64_t n, int64_t k, int repetitions) {
  std::vector<float> a(size_t(m * k), 0.5f), b(size_t(k * n), 0.25f), c(size_t(m * n), 0.0f);
  return best_of(repetitions, [&] {
    cpu::gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
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
