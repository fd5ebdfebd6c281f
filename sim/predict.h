#pragma once
// The analytic prediction of one scenario under one layout.
#include "sim/analytic_estimator.h"
#include "sim/scenario.h"

namespace palmsim {

Report predict(const Scenario& scenario, const Layout& layout, const EstimateOptions& options = {});
inline Report predict(const Scenario& scenario, const EstimateOptions& options = {}) {
  return predict(scenario, scenario.layout, options);
}

}  // namespace palmsim
