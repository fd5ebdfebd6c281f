#pragma once
// `palmsim train` and `palmsim bench-step` on the CPU backend: thread ranks (pp x dp x cp x tp), real text,
// metrics, held-out loss, atomic checkpoints, resume, and per-op timing under StepPlan names.
#include "kernels/bench_result.h"
#include "kernels/train_config.h"
#include "model/model_spec.h"

#include <functional>
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


// The threads the trainer runs on: the config's count, else every core the process may use
// (`palmsim --threads N` caps it).
int trainer_threads(const TrainConfig& config);

// Times `steps` optimizer steps (after one warm-up) on synthetic tokens. `between_steps`, if
// given, runs on rank 0 before the first timed step and after each one, outside the timings
// (validate-local samples the machine's speed reference there).
BenchResult bench_step(const ModelSpec& model, const TrainConfig& config, int steps,
                       const std::function<void()>& between_steps = {});

// Large-square sgemm rate of this machine with `threads` threads: the CPU's peak for MFU.
double measured_sgemm_peak(int threads);

}  // namespace palmsim
