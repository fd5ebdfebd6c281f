#pragma once
// `palmsim train` and `palmsim bench-step` on the CPU backend: thread ranks (dp x tp), real text,
// metrics, held-out loss, atomic checkpoints, resume, and per-op timing under StepPlan names.
#include "kernels/train_config.h"
#include "model/model_spec.h"

#include <iosfwd>
#include <map>
#include <string>

namespace palmsim {

struct TrainSummary {
  int64_t first_step = 0, last_step = 0;  // steps run in this invocation (first > last: none)
  double last_loss = 0, last_val_loss = 0;
  double unigram_cross_entropy = 0;       // nats/token of the held-out text under train unigrams
  double tokens_per_s = 0, mfu = 0;
  bool stopped_on_nan = false;
};

// Trains into `out_dir` (created if missing; resumed when it holds this run's checkpoint).
TrainSummary train(const ModelSpec& model, const TrainConfig& config, const std::string& out_dir, std::ostream& log);

struct BenchResult {
  double step_time_s = 0, tokens_per_s = 0, mfu = 0;  // mean over the timed steps
  // The least-disturbed step and its ops: what calibration's best-of micro-benchmarks compare to.
  double best_step_time_s = 0;
  std::map<std::string, double> best_per_op_s;
  double peak_flops = 0;              // OpenBLAS's own large square sgemm rate: MFU's peak
  double gemm_flops_per_s = 0;        // achieved inside the step, GEMM ops only
  std::map<std::string, double> per_op_s;  // "name.phase" -> seconds per step, rank 0
  std::string device;
};

// Times `steps` optimizer steps (after one warm-up) on synthetic tokens.
BenchResult bench_step(const ModelSpec& model, const TrainConfig& config, int steps);

// Large-square sgemm rate of this machine with `threads` threads: the CPU's peak for MFU.
double measured_sgemm_peak(int threads);

}  // namespace palmsim
