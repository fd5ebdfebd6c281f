#include "kernels/bench_result.h"

#include "model/step_plan.h"

namespace palmsim {

double plan_gemm_flops_per_s(const ModelSpec& model, const TrainConfig& config,
                             const std::map<std::string, double>& per_op_s, double activation_bytes) {
  Layout layout;
  layout.tp = config.tp, layout.dp = config.dp, layout.microbatch = int(config.microbatch_size());
  PlanOptions options;
  options.fused_attention = true, options.activation_bytes = activation_bytes;
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
