#pragma once
// How long an op's arithmetic and memory traffic take on one chip. A GEMM runs at the chip's best
// measured fraction of peak, reduced by tile padding (dims rounded up to the MXU/thread-block tile),
// wave quantization (the tile grid over SMs) and a short reduction dim (pipeline fill and drain).
// It never beats the time its operands take to stream from memory. A calibration table, when
// given, replaces the shape model with measured efficiencies.
#include "hwmodels/calibration.h"
#include "hwmodels/chip.h"

#include <cstdint>
#include <string>

namespace palmsim {

class ComputeModel {
 public:
  explicit ComputeModel(const Chip& chip, const Calibration* calibration = nullptr);

  // Fraction of peak a GEMM of this shape reaches (batch independent GEMMs side by side).
  double gemm_efficiency(int64_t m, int64_t n, int64_t k, int64_t batch = 1) const;
  double gemm_seconds(int64_t m, int64_t n, int64_t k, int64_t batch = 1) const;
  // The same GEMM with fp8 operands (one byte each) at the chip's fp8 peak.
  double fp8_gemm_seconds(int64_t m, int64_t n, int64_t k, int64_t batch = 1) const;
  // Fused attention kernel: FLOPs at the chip's attention efficiency, or its operand traffic;
  // `phase` ("fwd", "bwd", "rec") selects a measured efficiency when the calibration has one.
  double fused_attention_seconds(double flops, double bytes, const char* phase = nullptr) const;
  // Streaming element-wise op moving `bytes` through HBM; `op` ("name.phase") selects a measured
  // per-op rate from the calibration when there is one.
  double memory_seconds(double bytes, const std::string* op = nullptr) const;
  bool has_per_op_rates() const { return calibration_ && !calibration_->memory_op_bytes_per_s.empty(); }

  const Chip& chip() const { return chip_; }

 private:
  double shape_efficiency(int64_t m, int64_t n, int64_t k, int64_t batch) const;
  Chip chip_;
  const Calibration* calibration_;
};

}  // namespace palmsim
