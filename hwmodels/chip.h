#pragma once
// One accelerator: its matrix peak, memory and the measured efficiencies palmsim uses when no
// calibration file is given. Figures and sources: hwmodels/hardware.md.
#include <string>
#include <vector>

namespace palmsim {

struct Chip {
  std::string name;
  double peak_flops = 0;       // dense bf16 matrix FLOP/s (DESIGN.md "Peak")
  double fp8_peak_flops = 0;   // dense fp8 matrix FLOP/s; 0 = the chip has no fp8 matrix unit
  double hbm_bytes = 0;        // memory capacity
  double hbm_bytes_per_s = 0;  // memory bandwidth
  // Best large-GEMM fraction of peak (hardware.md "Measured efficiencies"); shape effects on top.
  double gemm_max_efficiency = 0.8;
  // GEMM dims are padded to this tile (MXU 128x128 on TPU, thread-block tile on GPUs).
  int gemm_tile = 128;
  // Parallel GEMM engines a tile grid is spread over (SMs on GPUs); 0 = no wave quantization.
  int compute_units = 0;
  // A GEMM whose reduction dim k is near this pays pipeline fill/drain: efficiency k/(k + k_half).
  int gemm_k_half = 32;
  // Fraction of hbm_bytes_per_s that streaming element-wise kernels reach.
  double memory_efficiency = 0.8;
  // Fraction of peak a fused flash-style attention kernel reaches on long sequences.
  double fused_attention_efficiency = 0.6;
};

Chip chip_preset(const std::string& name);
std::vector<std::string> chip_preset_names();

}  // namespace palmsim
