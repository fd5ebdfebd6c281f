#pragma once
// Memory per chip: weights, gradients, optimizer state and activations, for the worst pipeline
// stage (the first one under 1F1B holds the most microbatches in flight). Activation bytes per layer
// follow Korthikanti et al. 2022, Sec. 4, generalised to multi-/grouped-query attention, gated FFNs,
// parallel blocks, models without dropout and fused attention.
#include "model/step_plan.h"

namespace palmsim {

struct MemoryBreakdown {
  double weights = 0;
  double gradients = 0;
  double optimizer_state = 0;
  double activations = 0;  // stored for backward, all microbatches in flight
  double working = 0;      // transient: one layer rebuilt for backward, gathered weights, logits
  double total() const { return weights + gradients + optimizer_state + activations + working; }
};


// Activation bytes one layer stores for one microbatch under `recompute`, per tensor-parallel rank.
double activation_bytes_per_layer(const StepPlan& plan, Recompute recompute);

MemoryBreakdown memory_per_chip(const StepPlan& plan);  // optimizer: plan.options.optimizer

}  // namespace palmsim
