#include "kernels/rank_trainer.h"

#include <algorithm>
#include <cmath>

namespace palmsim {

RankTrainer::RankTrainer(const ModelSpec& spec, const TrainConfig& config, const RankContext& ranks)
    : config_(config),
      rank_(ranks.rank),
      tp_(ranks.tp),
      cp_(config.cp > 1 ? ranks.cp : nullptr),
      grad_(ranks.grad),
      ep_(config.ep > 1 ? ranks.dp : nullptr),
      model_(spec, config.tp, ranks.rank % config.tp, true, config.ep, config.ep > 1 ? dp_rank() : 0) {
  size_t begin = 0, end = model_.parameter_count();
  const int grad_ranks = config.gradient_ranks();
  if (config.zero1) {
    model_.pad_to_multiple(size_t(grad_ranks));
    const size_t shard = model_.params().size() / size_t(grad_ranks);
    begin = shard * size_t(rank_ / config.tp);
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

double RankTrainer::step(const int32_t* tokens, const int32_t* targets, int64_t step_number, OpTimer* timer) {
  const ModelSpec& spec = model_.spec();
  std::vector<float>& grads = model_.grads();
  {
    // Clearing the gradients and (below) staging the reduced ones are the optimizer step's passes
    // over the parameters too: timed as optimizer.opt, as calibration times that op
    // (kernels/calibrate/step_op_benchmarks.cpp), instead of ~3 % of the step left untimed.
    auto scope = time_op(timer, "optimizer.opt");
    std::fill(grads.begin(), grads.end(), 0.0f);
  }
  const int64_t local = config_.batch / config_.dp, mb = config_.microbatch_size(), micro = local / mb;
  double loss = 0;
  for (int64_t i = 0; i < micro; ++i) {
    const int64_t offset = i * mb * spec.seq_len;
    loss += model_.forward_backward(tokens + offset, targets + offset, mb, tp_, timer, 1.0 / double(micro), ep_, cp_);
  }
  loss /= double(micro);

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

  double clip = 1.0;
  std::vector<double> rms;
  {
    auto scope = time_op(timer, "grad_norm.opt");
    std::vector<double> grad_sq = sum_of_squares_per_tensor(range_grads, begin, end, model_.tensors());
    std::vector<double> param_sq = sum_of_squares_per_tensor(model_.params().data() + begin, begin, end, model_.tensors());
    reduce_tensor_sums(grad_sq);
    reduce_tensor_sums(param_sq);
    double norm_sq = 0, experts_sq = 0;  // split experts: every rank's count once in the norm
    for (size_t t = 0; t < grad_sq.size(); ++t) (model_.tensors()[t].ep_sharded ? experts_sq : norm_sq) += grad_sq[t];
    if (config_.ep > 1) ep_->all_reduce(&experts_sq, 1);
    norm_sq += experts_sq;
    const double norm = std::sqrt(norm_sq);
    clip = norm > config_.optimizer.clip_norm ? config_.optimizer.clip_norm / norm : 1.0;
    for (size_t t = 0; t < param_sq.size(); ++t) {
      const TensorInfo& info = model_.tensors()[t];
      const double elements = double(info.size()) * (info.tp_sharded ? config_.tp : 1);
      rms.push_back(std::sqrt(param_sq[t] / elements));
    }
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

double RankTrainer::evaluate(const int32_t* tokens, const int32_t* targets, int64_t sequences) {
  const int64_t mb = config_.microbatch_size(), seq = model_.spec().seq_len;
  double ce = 0;
  int64_t batches = 0;
  for (int64_t i = 0; i + mb <= sequences; i += mb, ++batches)
    ce += model_.evaluate(tokens + i * seq, targets + i * seq, mb, tp_, ep_, cp_);
  ce /= double(std::max<int64_t>(1, batches));
  if (config_.gradient_ranks() > 1) {
    grad_->all_reduce(&ce, 1);
    ce /= config_.gradient_ranks();
  }
  return ce;
}

}  // namespace palmsim
