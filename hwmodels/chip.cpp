#include "hwmodels/chip.h"

#include "model/input_error.h"
#include "model/preset_table.h"

#include <map>

namespace palmsim {

namespace {

constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

Chip make(const std::string& name, double peak, double hbm, double bw, double gemm_eff, int units) {
  Chip c;
  c.name = name;
  c.peak_flops = peak;
  c.hbm_bytes = hbm;
  c.hbm_bytes_per_s = bw;
  c.gemm_max_efficiency = gemm_eff;
  c.compute_units = units;
  return c;
}

const std::map<std::string, Chip>& presets() {
  // TPU GEMM efficiency: hardware.md lists no measured TPU GEMM rate, so the default is the lower
  // end of the measured accelerator range (H100 80 %, A100 87 %); a calibration file overrides it.
  // PaLM-540B's predicted MFU moves about 5 points per 0.1 of this figure.
  // TPUs have no SM waves: a matmul is tiled over the 128x128 MXUs by XLA (compute_units = 0).
  static const std::map<std::string, Chip> table = [] {
  std::map<std::string, Chip> t = {
      // hardware.md "Google TPU": v3 123 TFLOP/s, 32 GiB at 900 GB/s.
      {"tpu-v3", make("tpu-v3", 123e12, 32 * GiB, 900e9, 0.8, 0)},
      // v4 275 TFLOP/s (2 TC x 4 MXU 128x128 x 2 x 1.05 GHz), 32 GiB at 1200 GB/s.
      {"tpu-v4", make("tpu-v4", 275e12, 32 * GiB, 1200e9, 0.8, 0)},
      // v5p 459 TFLOP/s, 95 GiB at 2765 GB/s.
      {"tpu-v5p", make("tpu-v5p", 459e12, 95 * GiB, 2765e9, 0.8, 0)},
      // v5e 197 TFLOP/s, 16 GB at 819 GB/s, one TensorCore.
      {"tpu-v5e", make("tpu-v5e", 197e12, 16e9, 819e9, 0.8, 0)},
      // "NVIDIA": A100 SXM 312 TFLOP/s, 108 SMs; best bf16 GEMM 271 TFLOP/s (87 %).
      {"a100-40g", make("a100-40g", 312e12, 40e9, 1555e9, 0.87, 108)},
      {"a100-80g", make("a100-80g", 312e12, 80e9, 2039e9, 0.87, 108)},
      // H100 SXM 989 TFLOP/s, 132 SMs, 80 GB at 3.35 TB/s; best bf16 GEMM 795 TFLOP/s (80 %).
      {"h100-80g", make("h100-80g", 989e12, 80e9, 3.35e12, 0.80, 132)},
      // H200: H100 compute, 141 GB HBM3e at 4.8 TB/s.
      {"h200", make("h200", 989e12, 141e9, 4.8e12, 0.80, 132)},
  };
  // hardware.md "NVIDIA": H100/H200 dense fp8 1979 TFLOP/s; v5p runs fp8 at its bf16 rate (459).
  t["h100-80g"].fp8_peak_flops = 1979e12;
  t["h200"].fp8_peak_flops = 1979e12;
  t["tpu-v5p"].fp8_peak_flops = 459e12;
  return t;
  }();
  return table;
}

}  // namespace

std::vector<std::string> chip_preset_names() { return preset_names(presets()); }

Chip chip_preset(const std::string& name) {
  return find_preset(presets(), name, "system.chip", "chip");
}

}  // namespace palmsim
