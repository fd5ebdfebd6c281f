#pragma once
// `palmsim calibrate --backend cpu`: measures this machine's CPU the way the StepPlan uses it and
// fits the figures hwmodels read (hwmodels/calibration.h):
//   - the sgemm peak, and GEMM efficiency over a grid of shapes plus the model's own GEMM shapes;
//   - the streaming memory rate;
//   - every other op of the training step, run alone through the trainer's own kernels at the
//     model's shapes, as bytes/s (memory-bound ops) or a fraction of peak (attention) of what
//     the StepPlan charges that op;
//   - all-reduce, reduce-scatter and all-gather through the thread-rank communicator over sizes.
#include "hwmodels/calibration.h"
#include "model/step_plan.h"

#include <optional>

namespace palmsim {

struct CalibrateOptions {
  bool quick = false;            // a short grid for CI and first looks
  int threads = 0;               // OpenBLAS/oneTBB threads; 0 = all cores
  std::optional<StepPlan> plan;  // the configured model's step; a small PaLM-style one otherwise
};

Calibration calibrate_cpu(const CalibrateOptions& options);

// The plan of the CPU trainer's step for `model` on one rank (fp32, fused attention).
StepPlan cpu_step_plan(const ModelSpec& model, int64_t microbatch, int tp = 1, int dp = 1, bool zero1 = false);

}  // namespace palmsim
