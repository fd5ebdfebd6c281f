#pragma once
// The analytic prediction of one scenario under one layout.
#include "sim/analytic_estimator.h"
#include "sim/scenario.h"

#include <array>
#include <exception>
#include <map>
#include <optional>

namespace palmsim {

// PlanOptions of the scenario: its system's stack, and fp8 linears where the precision says so.
PlanOptions plan_options_for(const Scenario& scenario);

// Predicts one scenario under many layouts: the compute model is built once and the comm model
// (the placement of groups on the topology, the costly part) once per (tp, pp, dp, pods, cp).
// Holds a reference: the scenario must outlive it.
class Predictor {
 public:
  explicit Predictor(const Scenario& scenario);
  Report predict(const Layout& layout, const EstimateOptions& options = {});

 private:
  struct Placement {
    std::optional<CommModel> comm;
    std::exception_ptr error;  // the layout cannot be placed on the system (InputError)
  };
  const Scenario& scenario_;
  ComputeModel compute_;
  PlanOptions plan_options_;
  std::map<std::array<int, 7>, Placement> placements_;
};

Report predict(const Scenario& scenario, const Layout& layout, const EstimateOptions& options = {});
inline Report predict(const Scenario& scenario, const EstimateOptions& options = {}) {
  return predict(scenario, scenario.layout, options);
}

}  // namespace palmsim
