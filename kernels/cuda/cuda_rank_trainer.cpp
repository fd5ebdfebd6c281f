#include "kernels/cuda/cuda_rank_trainer.h"

#include "kernels/palm_choices.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace palmsim::cuda {

namespace {
constexpr int64_t kChunk = 1 << 16;  // elements per sum-of-squares block
}

CudaRankTrainer::CudaRankTrainer(const ModelSpec& spec, const TrainConfig& config, int rank, Communicator* tp,
                                 Communicator* dp, cudaStream_t stream)
    : config_(config), rank_(rank), tp_(tp), dp_(dp), stream_(stream), model_(spec, config.tp, rank % config.tp, stream) {
  if (config.zero1) throw std::invalid_argument("zero1 runs on the cpu backend only");
  const size_t n = model_.parameter_count();
  m_.resize(n);
  v_.resize(n);
  m_.zero(stream_);
  v_.zero(stream_);
  std::vector<int64_t> chunk_begin, tensor_begin;
  for (size_t t = 0; t < model_.tensors().size(); ++t) {
    const TensorInfo& info = model_.tensors()[t];
    tensor_begin.push_back(int64_t(info.offset));
    for (int64_t i = 0; i < int64_t(info.size()); i += kChunk) {
      chunk_begin.push_back(int64_t(info.offset) + i);
      chunk_tensor_.push_back(int64_t(t));
    }
  }
  chunk_begin.push_back(int64_t(n));
  chunk_begin_.upload(chunk_begin, stream_);
  tensor_begin_.upload(tensor_begin, stream_);
  chunk_sums_.resize(chunk_tensor_.size());
  tensor_scale_.resize(tensor_begin.size());
  scratch_.resize(std::max<size_t>(tensor_begin.size(), 1));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

double CudaRankTrainer::all_reduce_scalar(Communicator* group, double value) {
  CUDA_CHECK(cudaMemcpyAsync(scratch_.data(), &value, sizeof(double), cudaMemcpyHostToDevice, stream_));
  group->all_reduce(scratch_.data(), 1);
  CUDA_CHECK(cudaMemcpyAsync(&value, scratch_.data(), sizeof(double), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return value;
}

std::vector<double> CudaRankTrainer::tensor_sums_of_squares(const float* values) {
  chunk_sums_of_squares(values, chunk_begin_.data(), int64_t(chunk_tensor_.size()), chunk_sums_.data(), stream_);
  const std::vector<double> chunks = chunk_sums_.download(stream_);
  std::vector<double> sums(model_.tensors().size(), 0.0);
  for (size_t c = 0; c < chunks.size(); ++c) sums[size_t(chunk_tensor_[c])] += chunks[c];
  if (config_.tp > 1) {
    // Sharded tensors: add the other tensor-parallel ranks' pieces; replicated ones are complete.
    std::vector<double> sharded(sums.size(), 0.0);
    for (size_t t = 0; t < sums.size(); ++t)
      if (model_.tensors()[t].tp_sharded) sharded[t] = sums[t];
    scratch_.upload(sharded, stream_);
    tp_->all_reduce(scratch_.data(), sharded.size());
    sharded = scratch_.download(stream_);
    for (size_t t = 0; t < sums.size(); ++t)
      if (model_.tensors()[t].tp_sharded) sums[t] = sharded[t];
  }
  return sums;
}

double CudaRankTrainer::step(const int32_t* tokens, const int32_t* targets, int64_t step_number, GpuOpTimer* timer) {
  const ModelSpec& spec = model_.spec();
  const size_t n = model_.parameter_count();
  model_.zero_grads();
  const int64_t local = config_.batch / config_.dp, mb = config_.microbatch_size(), micro = local / mb;
  double loss = 0;
  for (int64_t i = 0; i < micro; ++i) {
    const int64_t offset = i * mb * spec.seq_len;
    loss += model_.forward_backward(tokens + offset, targets + offset, mb, tp_, timer, 1.0 / double(micro));
  }
  loss /= double(micro);

  if (config_.tp > 1) {
    // Replicated K/V projections: every rank's query heads contributed a part of their gradient.
    auto scope = time_gpu_op(timer, "tp_kv_grad_allreduce.bwd");
    for (const TensorInfo& t : model_.tensors())
      if (!t.tp_sharded && t.name.ends_with("wkv")) tp_->all_reduce(model_.grads() + t.offset, t.size());
  }
  if (config_.dp > 1) {
    auto scope = time_gpu_op(timer, "dp_allreduce.bwd");
    dp_->all_reduce(model_.grads(), n);
    scale_in_place(model_.grads(), 1.0f / float(config_.dp), int64_t(n), stream_);
  }

  const double lr = learning_rate(config_.optimizer, step_number);
  double clip = 1.0;
  {
    auto scope = time_gpu_op(timer, "grad_norm.opt");
    const std::vector<double> grad_sq = tensor_sums_of_squares(model_.grads());
    const std::vector<double> param_sq = tensor_sums_of_squares(model_.params());
    double norm_sq = 0;
    for (double s : grad_sq) norm_sq += s;
    const double norm = std::sqrt(norm_sq);
    clip = norm > config_.optimizer.clip_norm ? config_.optimizer.clip_norm / norm : 1.0;
    std::vector<double> scale;
    for (size_t t = 0; t < param_sq.size(); ++t) {
      const TensorInfo& info = model_.tensors()[t];
      const double elements = double(info.size()) * (info.tp_sharded ? config_.tp : 1);
      scale.push_back(lr * std::max(palm_choices::kParameterScaleFloor, std::sqrt(param_sq[t] / elements)));
    }
    tensor_scale_.upload(scale, stream_);
  }
  {
    auto scope = time_gpu_op(timer, "optimizer.opt");
    AdafactorStep s;
    s.lr = lr;
    s.beta1 = config_.optimizer.beta1;
    s.beta2 = 1.0 - std::pow(double(step_number), -config_.optimizer.decay_exponent);
    s.clip_scale = clip;
    s.epsilon = palm_choices::kSecondMomentEpsilon;
    adafactor_update(model_.params(), model_.params_bf16(), model_.grads(), m_.data(), v_.data(),
                     tensor_begin_.data(), tensor_scale_.data(), int64_t(model_.tensors().size()), int64_t(n), s,
                     stream_);
  }
  if (config_.dp > 1) loss = all_reduce_scalar(dp_, loss) / config_.dp;
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return loss;
}

double CudaRankTrainer::evaluate(const int32_t* tokens, const int32_t* targets, int64_t sequences) {
  const int64_t mb = config_.microbatch_size(), seq = model_.spec().seq_len;
  double ce = 0;
  int64_t batches = 0;
  for (int64_t i = 0; i + mb <= sequences; i += mb, ++batches)
    ce += model_.evaluate(tokens + i * seq, targets + i * seq, mb, tp_);
  ce /= double(std::max<int64_t>(1, batches));
  if (config_.dp > 1) ce = all_reduce_scalar(dp_, ce) / config_.dp;
  return ce;
}

}  // namespace palmsim::cuda
