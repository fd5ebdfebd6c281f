#include "sim/predict.h"

#include "model/accounting.h"

namespace palmsim {

PlanOptions plan_options_for(const Scenario& s) {
  PlanOptions o = plan_options_for(s.system);
  o.fp8_linears = s.precision == Precision::fp8;
  return o;
}

Report predict(const Scenario& s, const Layout& layout, const EstimateOptions& options) {
  const CommModel comm(s.system, layout, s.calibration.get());
  const ComputeModel compute(stack_adjusted(s.system).chip, s.calibration.get());
  const StepPlan plan = build_step_plan(s.model, layout, s.global_batch, plan_options_for(s));
  Report r = estimate(plan, s.system, compute, comm, s.optimizer, options);
  attach_band(r, s.system.stack, double(parameter_count(s.model)));
  return r;
}

}  // namespace palmsim
