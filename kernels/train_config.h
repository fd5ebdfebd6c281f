#pragma once
// A trainer config (scenarios/train-tiny.yaml) speaks the scenario dialect: the ranks and batch are
// the `layout:` (tp, dp, cp, ep, pp with the 1F1B schedule, microbatch, sharding none or zero1) and `training:`
// (global_batch, optimizer adafactor-unfactored) sections every scenario has, and `train:` holds
// what only the trainer needs (steps, learning rate, seed, logging, checkpoints, corpus). Unknown
// keys, what the trainer does not run and bad values are InputErrors naming the field.
#include "kernels/adafactor.h"
#include "model/layout.h"

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>

namespace palmsim {

struct TrainConfig {
  int64_t steps = 200;
  int64_t batch = 16;          // training.global_batch: sequences per optimizer step, over dp ranks
  int64_t microbatch = 0;      // layout.microbatch: sequences per forward/backward; 0 = batch / dp
  OptimizerConfig optimizer;
  uint64_t seed = 1;
  int64_t log_every = 10;
  int64_t eval_every = 50;
  int64_t eval_batches = 4;    // held-out batches per evaluation
  int64_t checkpoint_every = 50;
  int threads = 0;             // 0 = all cores
  int dp = 1, tp = 1;
  bool zero1 = false;          // layout.sharding zero1: optimizer state sharded over dp x cp ranks
  int ep = 1;                  // a sparse model's experts split over the data-parallel ranks: 1 or dp
  int cp = 1;                  // context parallelism: ranks holding different rows of the same sequences
  ContextComm cp_comm = ContextComm::all_gather;  // how they exchange K/V (stack: {cp_comm: ...})
  int pp = 1;                  // pipeline stages (layers split by stage_layers, model/layout.h)
  // Their order (model/pipeline_schedule.h): 1F1B, interleaved 1F1B over vpp model chunks a
  // stage, or ZB-H1, ZB-H2 or ZB-V with the layers' weight gradients deferred
  // (PalmModel::stage_weight_gradients).
  Schedule schedule = Schedule::one_f_one_b;
  int vpp = 1;
  // The pass times ZB-H2's and ZB-V's orders are played out with: unit passes, or the ones a
  // prediction priced (validate-local), so the trainer runs the order predicted.
  PassSeconds pipeline_passes;
  std::string corpus = "/usr/share/games/fortunes";  // Debian package `fortunes`
  double held_out_fraction = 0.05;

  int stage_ranks() const { return dp * cp * tp; }
  int ranks() const { return pp * stage_ranks(); }
  // The ranks a gradient is averaged over (and ZeRO-1 shards): dp x cp, each as many tokens.
  int gradient_ranks() const { return dp * cp; }
  int64_t microbatch_size() const { return microbatch > 0 ? microbatch : batch / dp; }
};

// The config's train:, layout: and training: sections (any may be absent: defaults).
TrainConfig parse_train_sections(const YAML::Node& root);

}  // namespace palmsim
