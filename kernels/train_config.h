#pragma once
// The `train:` section of a trainer config (scenarios/train-tiny.yaml). Unknown keys and bad values
// are InputErrors naming the field.
#include "kernels/adafactor.h"

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>

namespace palmsim {

struct TrainConfig {
  int64_t steps = 200;
  int64_t batch = 16;          // sequences per optimizer step (global, over data-parallel ranks)
  int64_t microbatch = 0;      // sequences per forward/backward on one rank; 0 = batch / dp
  OptimizerConfig optimizer;
  uint64_t seed = 1;
  int64_t log_every = 10;
  int64_t eval_every = 50;
  int64_t eval_batches = 4;    // held-out batches per evaluation
  int64_t checkpoint_every = 50;
  int threads = 0;             // 0 = all cores
  int dp = 1, tp = 1;
  bool zero1 = false;          // shard optimizer state over data-parallel ranks
  int ep = 1;                  // a sparse model's experts split over the data-parallel ranks: 1 or dp
  int cp = 1;                  // context parallelism: ranks holding different rows of the same sequences
  std::string corpus = "/usr/share/games/fortunes";  // Debian package `fortunes`
  double held_out_fraction = 0.05;

  int ranks() const { return dp * cp * tp; }
  // The ranks a gradient is averaged over (and ZeRO-1 shards): dp x cp, each as many tokens.
  int gradient_ranks() const { return dp * cp; }
  int64_t microbatch_size() const { return microbatch > 0 ? microbatch : batch / dp; }
};

TrainConfig parse_train_node(const YAML::Node& node);

}  // namespace palmsim
