#include "kernels/calibrate/calibrate_cpu.h"

#include "kernels/calibrate/cpu_microbench.h"
#include "kernels/calibrate/progress_bar.h"

#include <cblas.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

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

namespace {

using Shape = std::tuple<int64_t, int64_t, int64_t>;

double gemm_flops(const Shape& s) {
  return 2.0 * double(std::get<0>(s)) * double(std::get<1>(s)) * double(std::get<2>(s));
}

// Enough repetitions that small GEMMs are timed over at least ~20 ms in total.
int repetitions_for(const Shape& s, bool quick) {
  const double guess_s = gemm_flops(s) / 50e9;
  return std::clamp(int(0.02 / std::max(guess_s, 1e-7)), quick ? 2 : 3, quick ? 50 : 200);
}

}  // namespace

Calibration calibrate_cpu(const CalibrateOptions& o) {
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(threads);
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));

  // The grid: every combination of a few sizes, plus the model's GEMMs (forward and backward).
  std::set<Shape> shapes;
  const std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{64, 256, 1024}
                                             : std::vector<int64_t>{64, 128, 256, 512, 1024, 2048};
  for (int64_t m : sizes)
    for (int64_t n : sizes)
      for (int64_t k : sizes) shapes.insert({m, n, k});
  if (o.plan)
    for (const Op& op : o.plan->ops)
      if (op.kind == OpKind::gemm) shapes.insert({op.m, op.n, op.k});
  const int64_t peak_size = o.quick ? 1024 : 2048;

  ProgressBar bar(int(shapes.size()) + 3);
  Calibration c;
  c.device = cpu_device_name(threads);
  c.date = fmt::format("{:%Y-%m-%d}", fmt::localtime(std::time(nullptr)));

  // Peak: the best rate a large square sgemm reaches; efficiencies are fractions of it.
  const Shape square{peak_size, peak_size, peak_size};
  c.peak_flops = gemm_flops(square) / time_sgemm(peak_size, peak_size, peak_size, o.quick ? 3 : 5);
  bar.step(fmt::format("peak sgemm {}^3", peak_size));

  for (const Shape& s : shapes) {
    const auto [m, n, k] = s;
    const double seconds = time_sgemm(m, n, k, repetitions_for(s, o.quick));
    // A shape may beat the square one by noise; efficiencies stay at most 1.
    c.gemm.push_back({m, n, k, 1, std::min(1.0, gemm_flops(s) / seconds / c.peak_flops)});
    bar.step(fmt::format("gemm {}x{}x{}", m, n, k));
  }

  c.memory_bytes_per_s = stream_triad_bytes_per_s(o.quick ? (64 << 20) : (256 << 20), o.quick ? 3 : 5);
  bar.step("memory triad");
  bar.step("done");
  bar.finish();
  return c;
}

}  // namespace palmsim
