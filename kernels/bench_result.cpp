#include "kernels/bench_result.h"

#include "model/robust_statistics.h"
#include "model/step_plan.h"

#include <algorithm>

namespace palmsim {

void record_steps(BenchResult& r, const std::vector<double>& step_s,
                  const std::vector<std::map<std::string, double>>& step_ops) {
  r.step_times_s = step_s;
  if (step_s.empty()) return;
  double total = 0;
  for (double s : step_s) total += s;
  r.step_time_s = total / double(step_s.size());
  r.best_step_time_s = *std::min_element(step_s.begin(), step_s.end());
  std::map<std::string, std::vector<double>> samples;
  for (const auto& ops : step_ops)
    for (const auto& [name, t] : ops) samples[name].push_back(t);
  for (auto& [name, v] : samples) {
    double sum = 0;
    for (double t : v) sum += t;
    r.per_op_s[name] = sum / double(step_s.size());  // seconds per step, an op absent from a step counting 0
    r.median_per_op_s[name] = median_of(v);
  }
}

double plan_gemm_flops_per_s(const ModelSpec& model, const TrainConfig& config,
                             const std::map<std::string, double>& per_op_s, double activation_bytes) {
  Layout layout;
  layout.tp = config.tp, layout.dp = config.dp, layout.microbatch = int(config.microbatch_size());
  PlanOptions options;
  options.fused_attention = true, options.activation_bytes = activation_bytes;
  options.vocab_parallel = false;  // the trainers' logits cover the whole vocabulary on every rank
  const StepPlan plan = build_step_plan(model, layout, config.batch, options);
  std::map<std::string, double> gemm_flops;
  for (const Op& op : plan.ops)
    if (op.kind == OpKind::gemm) gemm_flops[std::string(op.name) + "." + phase_suffix(op.phase)] += op.flops * plan.occurrences(op);
  double flops = 0, time = 0;
  for (const auto& [name, f] : gemm_flops) {
    const auto it = per_op_s.find(name);
    if (it != per_op_s.end()) flops += f, time += it->second;
  }
  return time > 0 ? flops / time : 0;
}

}  // namespace palmsim
