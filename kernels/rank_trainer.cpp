#include "kernels/rank_trainer.h"

#include "model/pipeline_schedule.h"

#include <algorithm>
#include <cmath>

namespace palmsim {

RankTrainer::RankTrainer(const ModelSpec& spec, const TrainConfig& config, const RankContext& ranks)
    : config_(config),
      coords_(ranks.coords),
      tp_(ranks.tp),
      cp_(config.cp > 1 ? ranks.cp : nullptr),
      grad_(ranks.grad),
      ep_(config.ep > 1 ? ranks.dp : nullptr),
      pp_(config.pp > 1 ? ranks.pp : nullptr),
      // A tied embedding on two stages sums its gradient between them; ZB-V's V holds both ends on one.
      embedding_(!ends_share_a_stage(config.schedule, config.pp, config.vpp) ? ranks.embedding : nullptr),
      model_(spec, config.tp, coords_.tp, true, config.ep, config.ep > 1 ? dp_rank() : 0, config.pp,
             stage(), config.vpp, config.schedule) {
  model_.set_context_comm(config.cp_comm);
  size_t begin = 0, end = model_.parameter_count();
  const int grad_ranks = config.gradient_ranks();
  if (config.zero1) {
    model_.pad_to_multiple(size_t(grad_ranks));
    const size_t shard = model_.params().size() / size_t(grad_ranks);
    begin = shard * size_t(coords_.dp * config.cp + coords_.cp);  // its place in the dp x cp group, cp fastest
    end = begin + shard;
    shard_grads_.assign(shard, 0.0f);
  }
  optimizer_ = std::make_unique<Adafactor<float>>(config.optimizer, begin, end);
}

void RankTrainer::reduce_tensor_sums(std::vector<double>& sums) {
  if (config_.zero1) grad_->all_reduce(sums.data(), sums.size());  // each rank summed its slice
  if (config_.tp > 1) {
    // Sharded tensors: add the other tensor-parallel ranks' pieces; replicated ones are complete.
    std::vector<double> sharded(sums.size(), 0.0);
    for (size_t t = 0; t < sums.size(); ++t)
      if (model_.tensors()[t].tp_sharded) sharded[t] = sums[t];
    tp_->all_reduce(sharded.data(), sharded.size());
    for (size_t t = 0; t < sums.size(); ++t)
      if (model_.tensors()[t].tp_sharded) sums[t] = sharded[t];
  }
}

// The gradient's global norm over every rank's tensors (each counted once) against the clipping
// threshold, and each tensor's parameter RMS (Adafactor's update scale), from this rank's range.
double RankTrainer::clip_scale(const float* range_grads, size_t begin, size_t end, std::vector<double>& rms) {
  std::vector<double> grad_sq = sum_of_squares_per_tensor(range_grads, begin, end, model_.tensors());
  std::vector<double> param_sq = sum_of_squares_per_tensor(model_.params().data() + begin, begin, end, model_.tensors());
  reduce_tensor_sums(grad_sq);
  reduce_tensor_sums(param_sq);
  double norm_sq = 0, experts_sq = 0;  // split experts: every rank's count once in the norm
  for (size_t t = 0; t < grad_sq.size(); ++t) {
    const TensorInfo& info = model_.tensors()[t];
    if (embedding_ && !model_.holds_logits() && info.name == "embedding") continue;  // the logits' stage counts it
    (info.ep_sharded ? experts_sq : norm_sq) += grad_sq[t];
  }
  if (config_.ep > 1) ep_->all_reduce(&experts_sq, 1);
  norm_sq += experts_sq;
  if (pp_) pp_->all_reduce(&norm_sq, 1);  // every stage's tensors
  const double norm = std::sqrt(norm_sq);
  const double clip = norm > config_.optimizer.clip_norm ? config_.optimizer.clip_norm / norm : 1.0;
  for (size_t t = 0; t < param_sq.size(); ++t) {
    const TensorInfo& info = model_.tensors()[t];
    const double elements = double(info.size()) * (info.tp_sharded ? config_.tp : 1);
    rms.push_back(std::sqrt(param_sq[t] / elements));
  }
  return clip;
}

double RankTrainer::step(const int32_t* tokens, const int32_t* targets, int64_t step_number, OpTimer* timer) {
  std::vector<float>& grads = model_.grads();
  {
    // Clearing the gradients and (below) staging the reduced ones are the optimizer step's passes
    // over the parameters too: timed as optimizer.opt, as calibration times that op
    // (kernels/calibrate/step_op_benchmarks.cpp), instead of ~3 % of the step left untimed.
    auto scope = time_op(timer, "optimizer.opt");
    std::fill(grads.begin(), grads.end(), 0.0f);
  }
  double loss = config_.pp > 1 ? pipeline(tokens, targets, timer) : microbatches(tokens, targets, timer);
  if (embedding_) {
    // The tied embedding: the first stage's lookups and the last stage's logits each gave part of
    // its gradient (Megatron-LM's embedding group).
    auto scope = time_op(timer, "embedding_allreduce.bwd");
    const TensorInfo& e = model_.tensor("embedding");
    embedding_->all_reduce(grads.data() + e.offset, e.size());
  }

  if (config_.tp > 1) {
    // Replicated K/V projections: every rank's query heads contributed a part of their gradient.
    auto scope = time_op(timer, "tp_kv_grad_allreduce.bwd");
    for (const TensorInfo& t : model_.tensors())
      if (!t.tp_sharded && t.name.ends_with("wkv")) tp_->all_reduce(grads.data() + t.offset, t.size());
  }
  const int grad_ranks = config_.gradient_ranks();
  const float inv_ranks = 1.0f / float(grad_ranks);
  const float* range_grads = grads.data();
  if (config_.zero1) {
    auto scope = time_op(timer, "dp_reducescatter.bwd");
    grad_->reduce_scatter(grads.data(), shard_grads_.data(), shard_grads_.size());
    for (float& g : shard_grads_) g *= inv_ranks;
    range_grads = shard_grads_.data();
  } else if (grad_ranks > 1) {
    // Split experts already hold the sum over every rank's tokens: only the dense prefix is reduced.
    auto scope = time_op(timer, "dp_allreduce.bwd");
    grad_->all_reduce(grads.data(), config_.ep > 1 ? model_.dense_parameter_count() : grads.size());
    for (float& g : grads) g *= inv_ranks;
  }
  const size_t begin = optimizer_->begin(), end = optimizer_->end();
  {
    auto scope = time_op(timer, "optimizer.opt");
    reduced_grads_.assign(range_grads, range_grads + (end - begin));
  }

  std::vector<double> rms;
  double clip = 1.0;
  {
    auto scope = time_op(timer, "grad_norm.opt");
    clip = clip_scale(range_grads, begin, end, rms);
  }
  {
    auto scope = time_op(timer, "optimizer.opt");
    optimizer_->update(model_.params().data(), range_grads, model_.tensors(), rms, step_number, clip);
  }
  if (config_.zero1) {
    auto scope = time_op(timer, "dp_allgather.opt");
    std::vector<float> shard(model_.params().begin() + long(begin), model_.params().begin() + long(end));
    grad_->all_gather(shard.data(), model_.params().data(), shard.size());
  }
  if (grad_ranks > 1) {
    grad_->all_reduce(&loss, 1);
    loss /= grad_ranks;
  }
  return loss;
}

double RankTrainer::microbatches(const int32_t* tokens, const int32_t* targets, OpTimer* timer) {
  const int64_t local = config_.batch / config_.dp, mb = config_.microbatch_size(), micro = local / mb;
  const int64_t seq = model_.spec().seq_len;
  double loss = 0;
  for (int64_t i = 0; i < micro; ++i) {
    const int64_t offset = i * mb * seq;
    loss += model_.forward_backward(tokens + offset, targets + offset, mb, tp_, timer, 1.0 / double(micro), ep_, cp_);
  }
  return loss / double(micro);
}

// Each stage runs its order of the schedule (model/pipeline_schedule.h). Sends are buffered
// (kernels/thread_communicator.h): a stage never waits for its neighbour to take a message, only
// for one to arrive. Moving a message, out of this stage or into it, is the plan's pp_send of its
// phase (one copy through memory); waiting for one to arrive is pp_wait. A message's tag names the
// virtual stage it is for and its direction: under the interleaved schedule the last stage's
// activations wrap round to the first stage beside the gradients that stage sends back.
size_t RankTrainer::stage_message(int64_t sequences) const {
  return size_t(sequences * model_.spec().seq_len / config_.cp * model_.spec().d_model);  // this rank's rows
}

void RankTrainer::receive(int peer, int tag, size_t n, const char* wait_op, const char* copy_op, OpTimer* timer) {
  received_.resize(n);
  {
    auto scope = time_op(timer, wait_op);
    pp_->wait_for(peer, tag);
  }
  auto scope = time_op(timer, copy_op);
  pp_->recv(received_.data(), n, peer, tag);
}

namespace {
// A message is tagged with the virtual stage it is for (model/pipeline_schedule.h) and its direction.
int message_tag(int virtual_stage_index, bool forward) { return 2 * virtual_stage_index + (forward ? 0 : 1); }
}  // namespace

double RankTrainer::pipeline(const int32_t* tokens, const int32_t* targets, OpTimer* timer) {
  const int64_t local = config_.batch / config_.dp, mb = config_.microbatch_size(), micro = local / mb;
  const int64_t seq = model_.spec().seq_len;
  const int stages = config_.pp, s = stage(), chunks = config_.vpp;
  const size_t message = stage_message(mb);
  // 1F1B and ZB-H1 hold at most pp microbatches between their forward and their last backward
  // pass, so microbatch i can use workspace i mod pp, ZB-H2 twice that; with chunks, each
  // microbatch has its own.
  // ZB-V's and ZB-H2's orders are played out with the config's pass times (unit ones unless a
  // prediction gave them). ZB-V's turn at the last stage is a message to itself.
  const int in_flight = microbatches_in_flight(config_.schedule, stages);
  auto slot = [&](int64_t i) { return int(chunks > 1 ? i : i % in_flight); };
  double loss = 0;
  auto forward = [&](int64_t i, int chunk) {
    const int v = virtual_stage(config_.schedule, stages, s, chunk);
    if (!model_.first_virtual(chunk))
      receive(stage_of(v - 1), message_tag(v, true), message, kPipelineWaitForward, "pp_send.fwd", timer);
    const int64_t offset = i * mb * seq;
    loss += model_.stage_forward(slot(i), chunk, tokens + offset, targets + offset, mb, received_.data(), tp_, ep_,
                                 cp_, timer, 1.0 / double(micro));
    if (model_.last_virtual(chunk)) return;
    auto scope = time_op(timer, "pp_send.fwd");
    pp_->send(model_.stage_output(slot(i)).data(), message, stage_of(v + 1), message_tag(v + 1, true));
  };
  const bool deferred = defers_weight_gradients(config_.schedule);
  auto backward = [&](int64_t i, int chunk) {
    const int v = virtual_stage(config_.schedule, stages, s, chunk);
    if (!model_.last_virtual(chunk))
      receive(stage_of(v + 1), message_tag(v, false), message, kPipelineWaitBackward, "pp_send.bwd", timer);
    model_.stage_backward(slot(i), chunk, received_.data(), deferred);
    if (model_.first_virtual(chunk)) return;
    auto scope = time_op(timer, "pp_send.bwd");
    pp_->send(model_.stage_input_grad(slot(i)).data(), message, stage_of(v - 1), message_tag(v - 1, false));
  };
  for (const ChunkWork& item : stage_schedule(config_.schedule, stages, chunks, s, int(micro), config_.pipeline_passes)) {
    if (item.forward) forward(item.microbatch, item.chunk);
    else if (item.weight) model_.stage_weight_gradients(slot(item.microbatch), item.chunk);
    else backward(item.microbatch, item.chunk);
  }
  loss /= double(micro);
  // The last stage's cross-entropy, every stage's balance loss. The stages meet here: a later stage
  // waits for the earlier ones' last backwards, the pipeline's drain.
  auto scope = time_op(timer, kPipelineWaitBackward);
  pp_->all_reduce(&loss, 1);
  return loss;
}

// Forward only, virtual stage after virtual stage; the last one's cross-entropy is shared with
// every stage.
double RankTrainer::pipeline_evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch) {
  const size_t message = stage_message(batch);
  double ce = 0;
  for (int chunk = 0; chunk < config_.vpp; ++chunk) {
    const int v = virtual_stage(config_.schedule, config_.pp, stage(), chunk);
    if (!model_.first_virtual(chunk))
      receive(stage_of(v - 1), message_tag(v, true), message, kPipelineWaitForward, "pp_send.fwd", nullptr);
    double chunk_ce = 0;
    model_.stage_forward(0, chunk, tokens, targets, batch, received_.data(), tp_, ep_, cp_, nullptr, 1.0, &chunk_ce);
    if (model_.last_virtual(chunk)) ce = chunk_ce;
    else pp_->send(model_.stage_output(0).data(), message, stage_of(v + 1), message_tag(v + 1, true));
  }
  pp_->all_reduce(&ce, 1);
  return ce;
}

double RankTrainer::evaluate(const int32_t* tokens, const int32_t* targets, int64_t sequences) {
  const int64_t mb = config_.microbatch_size(), seq = model_.spec().seq_len;
  double ce = 0;
  int64_t batches = 0;
  for (int64_t i = 0; i + mb <= sequences; i += mb, ++batches)
    ce += pp_ ? pipeline_evaluate(tokens + i * seq, targets + i * seq, mb)
              : model_.evaluate(tokens + i * seq, targets + i * seq, mb, tp_, ep_, cp_);
  ce /= double(std::max<int64_t>(1, batches));
  if (config_.gradient_ranks() > 1) {
    grad_->all_reduce(&ce, 1);
    ce /= config_.gradient_ranks();
  }
  return ce;
}

}  // namespace palmsim
