#pragma once
// What `palmsim bench-step` measures, on either backend.
#include "kernels/train_config.h"
#include "model/model_spec.h"

#include <map>
#include <string>
#include <vector>

namespace palmsim {

struct BenchResult {
  double step_time_s = 0, tokens_per_s = 0, mfu = 0;  // mean over the timed steps
  double best_step_time_s = 0;       // the fastest timed step
  // Every timed step in order (validate-local compares their median), and each op's median over
  // them (bench-step prints it beside per_op_s, the means validate-local compares op by op).
  std::vector<double> step_times_s;
  std::map<std::string, double> median_per_op_s;
  double peak_flops = 0;              // MFU's denominator (per rank)
  std::string peak_source;            // where peak_flops comes from
  double gemm_flops_per_s = 0;        // achieved inside the step, GEMM ops only
  std::map<std::string, double> per_op_s;  // "name.phase" -> seconds per step, rank 0
  std::string device;
};

// The step figures of `r` from rank 0's timed steps, in order: step_times_s, step_time_s and
// per_op_s (means), best_step_time_s, median_per_op_s. Both backends' bench-step record this way.
void record_steps(BenchResult& r, const std::vector<double>& step_s,
                  const std::vector<std::map<std::string, double>>& step_ops);

// FLOPs per second of the step's GEMMs: the StepPlan's GEMM FLOPs for this model and layout over
// the measured seconds of the ops the plan calls GEMMs.
double plan_gemm_flops_per_s(const ModelSpec& model, const TrainConfig& config,
                             const std::map<std::string, double>& per_op_s, double activation_bytes);

}  // namespace palmsim
