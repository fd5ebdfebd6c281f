#include "hwmodels/machine_drift.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace palmsim {

MachineSpeed machine_speed_of(const std::vector<SpeedSample>& samples, int threads, int ranks,
                              double memory_probe_bytes) {
  MachineSpeed s;
  s.ranks = ranks;
  s.memory_probe_bytes = memory_probe_bytes;
  s.samples = int(samples.size());
  s.threads = threads;
  if (samples.empty()) return s;
  std::vector<double> gemm, memory;
  for (const SpeedSample& x : samples) {
    gemm.push_back(x.gemm_flops_per_s);
    memory.push_back(x.memory_bytes_per_s);
  }
  s.gemm_flops_per_s = median_of(gemm);
  s.memory_bytes_per_s = median_of(memory);
  auto spread = [](const std::vector<double>& v, double median) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return median > 0 ? (*hi - *lo) / median : 0.0;
  };
  s.gemm_spread = spread(gemm, s.gemm_flops_per_s);
  s.memory_spread = spread(memory, s.memory_bytes_per_s);
  return s;
}

Drift drift_since(const MachineSpeed& then, const SpeedSample& now) {
  if (!then.measured() || !(now.gemm_flops_per_s > 0) || !(now.memory_bytes_per_s > 0))
    throw std::invalid_argument("drift_since needs two measured speeds");
  return {now.gemm_flops_per_s / then.gemm_flops_per_s, now.memory_bytes_per_s / then.memory_bytes_per_s};
}

Drift drift_since(const MachineSpeed& then, const MachineSpeed& now) {
  if (!now.measured()) throw std::invalid_argument("drift_since needs two measured speeds");
  return drift_since(then, SpeedSample{now.gemm_flops_per_s, now.memory_bytes_per_s});
}

double drift_corrected_seconds(double compute_s, double memory_s, const Drift& drift) {
  return compute_s / drift.compute + memory_s / drift.memory;
}

}  // namespace palmsim
