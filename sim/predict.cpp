#include "sim/predict.h"

#include "model/accounting.h"
#include "model/input_error.h"

namespace palmsim {

namespace {
// A sweep over many group shapes keeps at most this many placements.
constexpr size_t kMaxPlacements = 4096;
}  // namespace

PlanOptions plan_options_for(const Scenario& s) {
  PlanOptions o = plan_options_for(s.system);
  o.fp8_linears = s.precision == Precision::fp8;
  o.optimizer = s.optimizer;
  return o;
}

Predictor::Predictor(const Scenario& s)
    : scenario_(s), compute_(stack_adjusted(s.system).chip, s.calibration.get()), plan_options_(plan_options_for(s)) {}

Report Predictor::predict(const Layout& layout, const EstimateOptions& options) {
  const Scenario& s = scenario_;
  // Everything the CommModel reads of the layout (its groups' sizes and strides).
  const std::array<int, 7> key{layout.tp, layout.pp, layout.dp, layout.pods, layout.cp, layout.ep, layout.etp};
  auto it = placements_.find(key);
  if (it == placements_.end()) {
    if (placements_.size() >= kMaxPlacements) placements_.clear();
    Placement p;
    try {
      p.comm.emplace(s.system, layout, s.calibration.get());
    } catch (const InputError&) {
      p.error = std::current_exception();
    }
    it = placements_.emplace(key, std::move(p)).first;
  }
  if (it->second.error) std::rethrow_exception(it->second.error);
  const StepPlan plan = build_step_plan(s.model, layout, s.global_batch, plan_options_);
  Report r = estimate(plan, s.system, compute_, *it->second.comm, options);
  attach_band(r, s.system.stack, double(parameter_count(s.model)));
  return r;
}

Report predict(const Scenario& s, const Layout& layout, const EstimateOptions& options) {
  return Predictor(s).predict(layout, options);
}

}  // namespace palmsim
