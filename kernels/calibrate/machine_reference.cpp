#include "kernels/calibrate/machine_reference.h"

#include "kernels/cpu/microbench.h"

#include <algorithm>

namespace palmsim {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

MachineReference measure_reference(int samples) {
  constexpr int64_t size = 512;  // ~0.27 GFLOP: a few ms, well past the small-shape regime
  constexpr int64_t triad_bytes = 32 << 20;
  std::vector<double> gemm, memory;
  for (int i = 0; i < samples; ++i) {
    gemm.push_back(2.0 * size * size * size / time_sgemm(size, size, size, 1));
    memory.push_back(stream_triad_bytes_per_s(triad_bytes, 1));
  }
  return {median_of(gemm), median_of(memory)};
}

MachineReference median_reference(const std::vector<MachineReference>& references) {
  std::vector<double> gemm, memory;
  for (const MachineReference& r : references) {
    gemm.push_back(r.gemm_flops_per_s);
    memory.push_back(r.memory_bytes_per_s);
  }
  return {median_of(gemm), median_of(memory)};
}

Drift drift_since(const MachineReference& then, const MachineReference& now) {
  Drift d;
  if (then.gemm_flops_per_s > 0 && now.gemm_flops_per_s > 0) d.compute = now.gemm_flops_per_s / then.gemm_flops_per_s;
  if (then.memory_bytes_per_s > 0 && now.memory_bytes_per_s > 0)
    d.memory = now.memory_bytes_per_s / then.memory_bytes_per_s;
  return d;
}

double drift_corrected_step_s(double predicted_step_s, double compute_s, double memory_s, const Drift& drift) {
  const double total = compute_s + memory_s;
  if (total <= 0) return predicted_step_s;
  return predicted_step_s * (compute_s / drift.compute + memory_s / drift.memory) / total;
}

}  // namespace palmsim
