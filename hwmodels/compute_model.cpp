#include "hwmodels/compute_model.h"

#include <algorithm>
#include <cmath>

namespace palmsim {

ComputeModel::ComputeModel(const Chip& chip, const Calibration* calibration)
    : chip_(chip), calibration_(calibration) {}

namespace {
double padded_fraction(int64_t d, int tile) {
  const int64_t tiles = (d + tile - 1) / tile;
  return double(d) / double(tiles * tile);
}
}  // namespace

double ComputeModel::shape_efficiency(int64_t m, int64_t n, int64_t k, int64_t batch) const {
  const int tile = chip_.gemm_tile;
  double eff = chip_.gemm_max_efficiency * padded_fraction(m, tile) * padded_fraction(n, tile) *
               padded_fraction(k, tile) * double(k) / double(k + chip_.gemm_k_half);
  if (chip_.compute_units > 0) {
    // Output tiles spread over the SMs in waves; the last wave may leave SMs idle.
    const int64_t tiles = batch * ((m + tile - 1) / tile) * ((n + tile - 1) / tile);
    const int64_t waves = (tiles + chip_.compute_units - 1) / chip_.compute_units;
    eff *= double(tiles) / double(waves * chip_.compute_units);
  }
  return eff;
}

double ComputeModel::gemm_efficiency(int64_t m, int64_t n, int64_t k, int64_t batch) const {
  if (calibration_ && calibration_->has_gemm_table())
    return calibration_->gemm_efficiency(m, n, k, batch);
  return shape_efficiency(m, n, k, batch);
}

double ComputeModel::gemm_seconds(int64_t m, int64_t n, int64_t k, int64_t batch) const {
  const double flops = 2.0 * double(m) * double(n) * double(k) * double(batch);
  const double bytes = 2.0 * double(batch) * (double(m) * k + double(k) * n + double(m) * n);
  return std::max(flops / (chip_.peak_flops * gemm_efficiency(m, n, k, batch)),
                  memory_seconds(bytes));
}

double ComputeModel::fp8_gemm_seconds(int64_t m, int64_t n, int64_t k, int64_t batch) const {
  const double flops = 2.0 * double(m) * double(n) * double(k) * double(batch);
  // fp8 inputs, bf16 output.
  const double bytes = double(batch) * (double(m) * k + double(k) * n + 2.0 * double(m) * n);
  const double eff = gemm_efficiency(m, n, k, batch) * chip_.fp8_relative_efficiency;
  return std::max(flops / (chip_.fp8_peak_flops * eff), memory_seconds(bytes));
}

double ComputeModel::fused_attention_seconds(double flops, double bytes, const char* phase) const {
  double eff = chip_.fused_attention_efficiency;
  if (calibration_ && calibration_->attention_efficiency > 0) eff = calibration_->attention_efficiency;
  if (calibration_ && phase) {
    // Recomputation runs the forward kernel.
    auto it = calibration_->attention_efficiency_by_phase.find(std::string(phase) == "rec" ? "fwd" : phase);
    if (it != calibration_->attention_efficiency_by_phase.end()) eff = it->second;
  }
  return std::max(flops / (chip_.peak_flops * eff), memory_seconds(bytes));
}

double ComputeModel::memory_seconds(double bytes, const std::string* op) const {
  if (op && calibration_) {
    auto it = calibration_->memory_op_bytes_per_s.find(*op);
    if (it != calibration_->memory_op_bytes_per_s.end()) return bytes / it->second;
  }
  const double rate = calibration_ && calibration_->memory_bytes_per_s > 0
                          ? calibration_->memory_bytes_per_s
                          : chip_.hbm_bytes_per_s * chip_.memory_efficiency;
  return bytes / rate;
}

}  // namespace palmsim
