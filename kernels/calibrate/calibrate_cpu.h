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

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace palmsim {

struct CalibrateOptions {
  bool quick = false;            // a short grid for CI and first looks
  int threads = 0;               // OpenBLAS/oneTBB threads; 0 = all cores
  std::optional<StepPlan> plan;  // the configured model's step; a small PaLM-style one otherwise
};

Calibration calibrate_cpu(const CalibrateOptions& options);

// What a calibration measures. The quick grid is a subset of the full one (fewer GEMM shapes and
// message sizes) measured the same way: the same peak shape, repetitions per timing and rounds,
// the same triad size. Its figures are then the full one's at the shapes they share.
using GemmShape = std::tuple<int64_t, int64_t, int64_t>;  // m, n, k
struct CalibrationGrid {
  std::set<GemmShape> gemm_shapes;     // the size grid cubed, plus the plan's own GEMM shapes
  int64_t peak_size = 0;               // the square sgemm efficiencies are fractions of
  int64_t triad_bytes_per_array = 0;
  std::vector<std::string> collective_kinds;
  std::vector<int> collective_ranks;
  std::vector<double> message_bytes;
  int repetitions = 0;                 // per timing (small GEMMs more, to span ~20 ms)
  int rounds = 0;                      // passes over the peak, GEMMs, triad and step ops
};
CalibrationGrid calibration_grid(bool quick, const StepPlan& plan);
int gemm_repetitions(const CalibrationGrid& grid, const GemmShape& shape);

// The timings a calibration is fitted from, as functions: the machine's own kernels in
// calibrate_cpu, synthetic ones in tests. Kernels' seconds are the mean of `repetitions` timings
// (what a kernel costs a step: mean_of in model/robust_statistics.h), the triad's rate the median.
struct CalibrationKernels {
  std::function<double(int64_t m, int64_t n, int64_t k, int repetitions)> sgemm_seconds;
  std::function<double(int64_t bytes_per_array, int repetitions)> triad_bytes_per_s;
  std::function<std::map<std::string, double>(const ModelSpec& model, const Layout& layout, int repetitions)>
      step_op_seconds;  // seconds per call by "name.phase" on one rank of the layout
  std::function<double(const std::string& kind, int ranks, double bytes, int repetitions)> collective_seconds;
  std::function<SpeedSample()> reference;  // one sample of the machine's speed reference
  int reference_threads = 0, reference_ranks = 1;
  double reference_probe_bytes = 0;
};

// Measures `grid` through `kernels` and fits the calibration's figures for `plan` (device, date
// and memory size are the caller's). `progress` shows a bar on stderr.
Calibration fit_calibration(const CalibrationGrid& grid, const StepPlan& plan, const CalibrationKernels& kernels,
                            bool progress);

// The plan of the CPU trainer's step for `model` on one rank (fp32, fused attention).
StepPlan cpu_step_plan(const ModelSpec& model, int64_t microbatch, int tp = 1, int dp = 1, bool zero1 = false,
                       int ep = 1, int cp = 1, int pp = 1, Schedule schedule = Schedule::one_f_one_b, int vpp = 1,
                       ContextComm cp_comm = ContextComm::all_gather);

}  // namespace palmsim
