#pragma once
// The closed-form estimator: prices every op of a StepPlan on a system, decides what overlaps, adds
// the pipeline bubble, and reports step time, MFU, HFU and memory. Fast enough for search.
#include "hwmodels/comm_model.h"
#include "hwmodels/compute_model.h"
#include "model/pipeline_schedule.h"
#include "model/step_plan.h"
#include "sim/report.h"

namespace palmsim {

struct EstimateOptions {
  bool per_op = false;  // fill Report::per_op_s (costs a map; search leaves it off)
};

// Seconds one occurrence of `op` takes on its own (no overlap), the stack's kernel floor and
// per-call overheads included.
double op_seconds(const Op& op, const StepPlan& plan, const ComputeModel& compute,
                  const CommModel& comm);

// The part of op_seconds that the stack adds: the launch floor or host time where they exceed
// the op's own work, and per-call framework time (hwmodels/stack.h).
double stack_overhead_seconds(const Op& op, const StepPlan& plan, const ComputeModel& compute,
                              const CommModel& comm);

// What a layer pass whose device work takes `device_s` loses to its host synchronisations
// (Op::host_syncs, `syncs` of them per layer, fractional for a mix of layers): once the host has
// waited for the device it must issue the whole pass again before the device can finish it, so
// the pass takes at least the stack's host time for it (host_sync_s); the device waits for the
// rest. Estimator and simulator both add it to the pass.
double host_sync_exposed_seconds(double syncs, double device_s, const PlanOptions& options);

// What a layer pass whose compute takes `compute_s` loses to the collectives running beside it on
// the side stream (`side_s`: FSDP's gathers and reduce-scatters, context parallelism's K/V
// gathers): the overlapped stretch, min(side_s, compute_s), runs slower by the chip's
// overlap_compute_slowdown (hwmodels/chip.h). Estimator and simulator both add it to the pass
// (backward's side traffic hides behind recompute and backward, and slows the backward).
double overlap_interference_seconds(double side_s, double compute_s, const Chip& chip);

// The loss's chunk under a split that counts the loss as a layer (Layout::account_ends) holds one
// layer fewer than the others, which are priced: what the logits and loss (`loss_s`, per
// microbatch, a pass) add beyond the layer they replace (`layer_s`, the same pass's), at least
// nothing. Estimator and simulator both price the stage-end work so.
double loss_beyond_a_layer(double loss_s, double layer_s, const Layout& layout);

Report estimate(const StepPlan& plan, const System& system, const ComputeModel& compute,
                const CommModel& comm, const EstimateOptions& options = {});

// One model chunk's pass times as the estimator prices them: what ZB-V's order is found from
// (model/pipeline_schedule.h), so the simulator runs the order the closed form played out.
PassSeconds pipeline_pass_seconds(const StepPlan& plan, const ComputeModel& compute, const CommModel& comm);

// Sets the report's stack, band and validated-range note (predict and simulate call it; the
// estimator itself stays free of it, as search runs it for every layout) from the stack's fit (hwmodels/stack.h),
// for the report's step time: measured = predicted / (1 + e) with e between the 5th and 95th
// percentile of held-out errors.
// No band from fewer than kMinBandRuns runs.
void attach_band(Report& report, const Stack& stack, double model_parameters);
constexpr int kMinBandRuns = 5;

// PlanOptions a system implies (attention kernel, gradient reduction width).
PlanOptions plan_options_for(const System& system);

}  // namespace palmsim
