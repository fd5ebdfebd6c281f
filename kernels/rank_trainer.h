#pragma once
// One rank's part of a training step: its model shard (tensor parallel), its share of the global
// batch (data parallel) and its rows of those sequences (context parallel), the collectives between
// them, and the optimizer on all of its parameters or, with ZeRO-1, on its 1/(dp x cp) slice of the
// flat parameter buffer (the rest all-gathered after). Gradients are averaged over the dp x cp
// ranks: each holds as many tokens, so their mean is the gradient of the global batch's mean loss.
// With expert parallelism (ep = dp) a sparse model's experts are split over the data-parallel
// ranks, which exchange tokens through the data-parallel group's all-to-all. With pipeline stages
// (pp > 1) each rank holds one stage's layers and runs its stage's order of the schedule
// (model/pipeline_schedule.h, the simulator's too): 1F1B (PipeDream-flush, Narayanan et al. 2021),
// interleaved 1F1B over vpp model chunks a stage (Narayanan et al. 2021) or ZB-H1 (Qi et al. 2023:
// backward passes without the layers' weight gradients, which run later as their own passes).
// Activations go to the next stage and their gradients come back point to point; the first and
// last stages sum the tied embedding's gradient; the gradient norm and the loss are summed over
// the stages.
#include "kernels/adafactor.h"
#include "kernels/communicator.h"
#include "kernels/op_timer.h"
#include "kernels/palm_model.h"
#include "kernels/rank_grid.h"
#include "kernels/train_config.h"

#include <memory>

namespace palmsim {

// What a pipeline stage spends waiting for its neighbour's activation or gradient (timed as
// pp_wait.fwd and pp_wait.bwd): the bubble, and any imbalance between stages, as measured.
inline constexpr const char* kPipelineWaitOp = "pp_wait";
inline constexpr const char* kPipelineWaitForward = "pp_wait.fwd";
inline constexpr const char* kPipelineWaitBackward = "pp_wait.bwd";

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
  int dp_rank() const { return coords_.dp; }
  int tp_rank() const { return coords_.tp; }
  int stage() const { return coords_.pp; }
  // The stages this one's activations go to and come from, round the ring (interleaving wraps).
  // The stage that runs virtual stage v (model/pipeline_schedule.h): its messages' peer.
  int stage_of(int v) const { return stage_chunk(config_.schedule, config_.pp, v).stage; }

 private:
  // Sums per-tensor partial sums of squares over the ranks that hold other pieces of each tensor.
  void reduce_tensor_sums(std::vector<double>& sums);
  // The clipping factor of the gradient's global norm; fills each tensor's parameter RMS.
  double clip_scale(const float* range_grads, size_t begin, size_t end, std::vector<double>& rms);
  // Forward and backward of every microbatch: in turn, or through the pipeline's stages.
  double microbatches(const int32_t* tokens, const int32_t* targets, OpTimer* timer);
  double pipeline(const int32_t* tokens, const int32_t* targets, OpTimer* timer);
  double pipeline_evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch);
  // Floats in one message between stages: `sequences` of this rank's rows, d_model wide.
  size_t stage_message(int64_t sequences) const;
  // Receives n floats from stage `peer` under `tag` into received_, timing the wait and the copy apart.
  void receive(int peer, int tag, size_t n, const char* wait_op, const char* copy_op, OpTimer* timer);
  TrainConfig config_;
  RankCoords coords_;  // from rank_grid: Megatron's order, written once (model/rank_order.h)
  Communicator* tp_;
  Communicator* cp_;
  Communicator* grad_;  // dp x cp: gradients, ZeRO-1 shards, the loss's mean
  Communicator* ep_;  // the data-parallel group when the experts are split over it, else null
  Communicator* pp_;         // the stages one microbatch flows through; null without a pipeline
  Communicator* embedding_;  // the first and last stage, which both hold the tied embedding
  std::vector<float> received_;  // an activation or its gradient from the neighbouring stage
  PalmModel<float> model_;
  std::unique_ptr<Adafactor<float>> optimizer_;
  std::vector<float> shard_grads_, reduced_grads_;
};

}  // namespace palmsim
