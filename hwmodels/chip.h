#pragma once
// One accelerator: its matrix peak, memory and the measured efficiencies palmsim uses when no
// calibration file is given. Figures and sources: hwmodels/hardware.md; the presets are
// hwmodels/chips/*.yaml.
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace palmsim {

struct Chip {
  std::string name;
  double peak_flops = 0;       // dense bf16 matrix FLOP/s (DESIGN.md "Peak")
  double fp8_peak_flops = 0;   // dense fp8 matrix FLOP/s; 0 = the chip has no fp8 matrix unit
  // An fp8 GEMM's fraction of fp8_peak_flops relative to the same bf16 GEMM's of peak_flops
  // (no measurement in hardware.md: 1; the stack's fp8_gemm_efficiency_scale multiplies it).
  double fp8_relative_efficiency = 1.0;
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
  // How much slower compute runs while a collective library's kernels run beside it on the same
  // chip (NCCL takes SMs and memory bandwidth): the layer's compute that overlaps FSDP's gathers
  // and reduce-scatters or context parallelism's K/V gathers takes (1 + this) times as long.
  // 0: no measurement (TPUs, whose collectives the ICI's DMA engines move; palmsim's CPU trainer,
  // whose ranks never overlap).
  double overlap_compute_slowdown = 0;
};

// A shipped chip (hwmodels/chips/NAME.yaml); unknown names list the allowed ones.
Chip chip_preset(const std::string& name);
// Chip figures in the shipped files' units (peak_tflops, hbm_gb or hbm_gib, hbm_gb_per_s, ...);
// `_onto` changes only the fields `node` gives. Every problem names `field`.
Chip parse_chip(const YAML::Node& node, const std::string& field);
Chip parse_chip_onto(Chip base, const YAML::Node& node, const std::string& field);
std::vector<std::string> chip_preset_names();

}  // namespace palmsim
