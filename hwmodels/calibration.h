#pragma once
// Measured figures for one device, written by `palmsim calibrate` and read through a scenario's
// `calibration:` key. Any figure present overrides the preset's default.
#include "hwmodels/machine_drift.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace palmsim {

struct GemmSample {
  int64_t m = 0, n = 0, k = 0, batch = 1;
  double efficiency = 0;  // achieved FLOP/s over the chip's peak
};

struct CollectiveSample {
  std::string kind;  // all_reduce, reduce_scatter, all_gather
  int ranks = 0;
  double bytes = 0;
  double seconds = 0;
};

struct Calibration {
  std::string device;
  std::string date;
  double peak_flops = 0;            // the peak efficiencies refer to
  double memory_bytes_per_s = 0;    // achieved streaming bandwidth
  double memory_bytes = 0;          // the device's memory capacity (0: keep the preset's)
  double attention_efficiency = 0;  // fused attention kernel, fraction of peak
  std::vector<GemmSample> gemm;
  // Measured rate of each memory-bound op of the step plan by "name.phase" ("ln.fwd",
  // "mlp_act.bwd", ...), in bytes/s of the bytes the plan says it moves; an op missing here falls
  // back to memory_bytes_per_s.
  std::map<std::string, double> memory_op_bytes_per_s;
  // Fused attention's fraction of peak by phase suffix ("fwd", "bwd"); else attention_efficiency.
  std::map<std::string, double> attention_efficiency_by_phase;
  std::vector<CollectiveSample> collectives;
  // The machine's speed reference sampled through the calibration (hwmodels/machine_drift.h):
  // validate-local times it again beside the steps and corrects the prediction by the drift.
  // Not measured (samples 0) in files written before it existed.
  MachineSpeed reference;

  bool has_gemm_table() const { return !gemm.empty(); }
  // Efficiency of the nearest measured shape in log space (m, n, k), batch folded into m.
  double gemm_efficiency(int64_t m, int64_t n, int64_t k, int64_t batch) const;
  // Seconds for a collective of `kind` over `ranks` ranks on `bytes`, interpolated linearly in
  // bytes between the two nearest measured sizes (extrapolated from the end ones); < 0 if no
  // sample of that kind and rank count exists.
  double collective_seconds(const std::string& kind, int ranks, double bytes) const;
};

// Reads a calibration JSON file; throws InputError naming the file and field on bad content.
Calibration load_calibration(const std::string& path);
void save_calibration(const Calibration& c, const std::string& path);

// A machine speed reference as the calibration file and validate-local's JSON write it.
nlohmann::json machine_speed_json(const MachineSpeed& m);

}  // namespace palmsim
