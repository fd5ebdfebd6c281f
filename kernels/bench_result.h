#pragma once
// What `palmsim bench-step` measures, on either backend.
#include "kernels/train_config.h"
#include "model/model_spec.h"

#include <map>
#include <string>

namespace palmsim {

struct BenchResult {
  double step_time_s = 0, tokens_per_s = 0, mfu = 0;  // mean over the timed steps
  // The least-disturbed step and its ops: what calibration's best-of micro-benchmarks compare to.
  double best_step_time_s = 0;
  std::map<std::string, double> best_per_op_s;
  double peak_flops = 0;              // MFU's denominator (per rank)
  std::string peak_source;            // where peak_flops comes from
  double gemm_flops_per_s = 0;        // achieved inside the step, GEMM ops only
  std::map<std::string, double> per_op_s;  // "name.phase" -> seconds per step, rank 0
  std::string device;
};

// FLOPs per second of the step's GEMMs: the StepPlan's GEMM FLOPs for this model and layout over
// the measured seconds of the ops the plan calls GEMMs.
double plan_gemm_flops_per_s(const ModelSpec& model, const TrainConfig& config,
                             const std::map<std::string, double>& per_op_s, double activation_bytes);

}  // namespace palmsim
