#pragma once
// One rank's part of a training step: its model shard (tensor parallel), its share of the global
// batch (data parallel) and its rows of those sequences (context parallel), the collectives between
// them, and the optimizer on all of its parameters or, with ZeRO-1, on its 1/(dp x cp) slice of the
// flat parameter buffer (the rest all-gathered after). Gradients are averaged over the dp x cp
// ranks: each holds as many tokens, so their mean is the gradient of the global batch's mean loss.
// With expert parallelism (ep = dp) a sparse model's experts are split over the data-parallel
// ranks, which exchange tokens through the data-parallel group's all-to-all.
#include "kernels/adafactor.h"
#include "kernels/communicator.h"
#include "kernels/op_timer.h"
#include "kernels/palm_model.h"
#include "kernels/rank_grid.h"
#include "kernels/train_config.h"

#include <memory>

namespace palmsim {

class RankTrainer {
 public:
  // `ranks`: this rank's number and groups (kernels/rank_grid.h; groups may be null at size 1).
  RankTrainer(const ModelSpec& spec, const TrainConfig& config, const RankContext& ranks);

  // One optimizer step on this rank's batch / dp sequences (tokens and targets, seq_len each).
  // Returns the mean loss (with z-loss) over the whole global batch.
  double step(const int32_t* tokens, const int32_t* targets, int64_t step_number, OpTimer* timer);
  // Mean held-out cross-entropy over the data-parallel ranks' shares.
  double evaluate(const int32_t* tokens, const int32_t* targets, int64_t sequences);
  // Gradients of the last step before the optimizer used them (reduced over data parallelism;
  // for ZeRO-1 only this rank's slice is meaningful): what equivalence tests compare.
  const std::vector<float>& reduced_grads() const { return reduced_grads_; }

  PalmModel<float>& model() { return model_; }
  Adafactor<float>& optimizer() { return *optimizer_; }
  int dp_rank() const { return rank_ / (config_.tp * config_.cp); }
  int tp_rank() const { return rank_ % config_.tp; }

 private:
  // Sums per-tensor partial sums of squares over the ranks that hold other pieces of each tensor.
  void reduce_tensor_sums(std::vector<double>& sums);
  TrainConfig config_;
  int rank_;
  Communicator* tp_;
  Communicator* cp_;
  Communicator* grad_;  // dp x cp: gradients, ZeRO-1 shards, the loss's mean
  Communicator* ep_;  // the data-parallel group when the experts are split over it, else null
  PalmModel<float> model_;
  std::unique_ptr<Adafactor<float>> optimizer_;
  std::vector<float> shard_grads_, reduced_grads_;
};

}  // namespace palmsim
