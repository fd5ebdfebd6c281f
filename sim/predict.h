#pragma once
// The analytic prediction of one scenario under one layout.
#include "sim/analytic_estimator.h"
#include "sim/scenario.h"

namespace palmsim {

// PlanOptions of the scenario: its system's stack, and fp8 linears where the precision says so.
PlanOptions plan_options_for(const Scenario& scenario);

Report predict(const Scenario& scenario, const Layout& layout, const EstimateOptions& options = {});
inline Report predict(const Scenario& scenario, const EstimateOptions& options = {}) {
  return predict(scenario, scenario.layout, options);
}

}  // namespace palmsim
