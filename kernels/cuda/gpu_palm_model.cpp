#include "kernels/cuda/gpu_palm_model.h"

#include "kernels/cuda/attention.h"
#include "kernels/palm_choices.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace palmsim::cuda {

GpuPalmModel::GpuPalmModel(const ModelSpec& spec, int tp, int tp_rank, cudaStream_t stream)
    : spec_(spec), tp_(tp), tp_rank_(tp_rank), stream_(stream), gemm_(stream) {
  if (spec.moe.sparse())
    throw std::invalid_argument("the CUDA backend's step is dense: a sparse model (model.moe) trains on --backend cpu");
  const PalmModel<float> table(spec, tp, tp_rank, false);  // throws on what the step cannot run
  tensors_ = table.tensors();
  n_params_ = table.parameter_count();
  heads_ = table.local_heads();
  kv_heads_ = table.local_kv_heads();
  ff_ = table.local_ff();
  const std::string why = attention_unsupported_reason({1, spec.seq_len, heads_, kv_heads_, spec.head_dim});
  if (!why.empty()) throw std::invalid_argument(why);
  if (spec.d_model % 8 || spec.head_dim % 8 || ff_ % 8 || spec.vocab % 8)
    throw std::invalid_argument("the CUDA backend needs d_model, head_dim, d_ff / tp and vocab multiples of 8 "
                                "(16-byte rows for the tensor cores)");
  params_.resize(n_params_);
  grads_.resize(n_params_);
  params_bf16_.resize(n_params_);
  zero_grads();
}

size_t GpuPalmModel::offset(const std::string& name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return t.offset;
  throw std::out_of_range("no tensor " + name);
}

void GpuPalmModel::init(uint64_t seed) {
  PalmModel<float> host(spec_, tp_, tp_rank_, false);
  host.init(seed);
  set_params(host.params());
}

void GpuPalmModel::set_params(const std::vector<float>& host) {
  if (host.size() < n_params_) throw std::invalid_argument("set_params: too few values");
  CUDA_CHECK(cudaMemcpyAsync(params_.data(), host.data(), n_params_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
  cast_to_bf16(params_.data(), params_bf16_.data(), int64_t(n_params_), stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

std::vector<float> GpuPalmModel::params_to_host() const { return params_.download(stream_); }
std::vector<float> GpuPalmModel::grads_to_host() const { return grads_.download(stream_); }
void GpuPalmModel::zero_grads() { grads_.zero(stream_); }

double GpuPalmModel::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                                      GpuOpTimer* timer, double grad_scale) {
  return run(tokens, targets, batch, tp, timer, true, grad_scale, nullptr);
}

double GpuPalmModel::evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp) {
  double ce = 0;
  run(tokens, targets, batch, tp, nullptr, false, 1.0, &ce);
  return ce;
}

// Tokens, targets and, for backward, the positions of each distinct token in order: the embedding
// gradient then sums each token's rows in one block, deterministically.
void GpuPalmModel::upload_tokens(const int32_t* tokens, const int32_t* targets, int64_t n, bool backward) {
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= spec_.vocab || targets[i] < 0 || targets[i] >= spec_.vocab)
      throw std::invalid_argument("token id outside the vocabulary");
  ws_.tokens.upload(tokens, size_t(n), stream_);
  ws_.targets.upload(targets, size_t(n), stream_);
  if (!backward) return;
  std::vector<int32_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), 0);
  std::stable_sort(positions.begin(), positions.end(), [&](int32_t a, int32_t b) { return tokens[a] < tokens[b]; });
  std::vector<int32_t> group_tokens, group_starts;
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || tokens[positions[size_t(i)]] != tokens[positions[size_t(i - 1)]]) {
      group_tokens.push_back(tokens[positions[size_t(i)]]);
      group_starts.push_back(int32_t(i));
    }
  group_starts.push_back(int32_t(n));
  embedding_groups_ = int64_t(group_tokens.size());
  ws_.positions.upload(positions, stream_);
  ws_.group_tokens.upload(group_tokens, stream_);
  ws_.group_starts.upload(group_starts, stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vectors die here
}

// resize() keeps the memory of earlier calls; dx is cleared where backward starts accumulating.
double GpuPalmModel::run(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                         GpuOpTimer* timer, bool backward, double grad_scale, double* plain_ce) {
  const ModelSpec& s = spec_;
  Pass p;
  p.batch = batch, p.N = batch * s.seq_len, p.tp = tp, p.timer = timer, p.grad_scale = grad_scale;
  p.dims = {batch, s.seq_len, heads_, kv_heads_, s.head_dim};
  p.hq = heads_ * s.head_dim, p.kvq = 2 * kv_heads_ * s.head_dim, p.ld = p.hq + p.kvq;
  Workspace& w = ws_;
  const int64_t N = p.N;
  upload_tokens(tokens, targets, N, backward);
  embed(p);
  w.layers.resize(size_t(s.n_layers));
  for (int l = 0; l < s.n_layers; ++l) layer_forward(p, l);
  head_forward(p);
  if (backward) {
    head_backward(p);
    for (int l = s.n_layers - 1; l >= 0; --l) layer_backward(p, l);
    auto scope = time_gpu_op(timer, "embedding.bwd");
    embedding_backward(w.group_tokens.data(), w.group_starts.data(), w.positions.data(), embedding_groups_, w.dx.data(),
                       grad("embedding"), s.d_model, stream_);
  }

  // The loss: per-row values summed on the host in row order, in double (as the CPU backend).
  const std::vector<float> loss_rows = w.row_loss.download(stream_);
  double loss = 0;
  for (float v : loss_rows) loss += v;
  if (plain_ce) {
    const std::vector<float> ce_rows = w.row_ce.download(stream_);
    double ce = 0;
    for (float v : ce_rows) ce += v;
    *plain_ce = ce / double(N);
  }
  return loss / double(N);
}

// ---- forward ----

void GpuPalmModel::embed(const Pass& p) {
  Workspace& w = ws_;
  const int64_t N = p.N, d = spec_.d_model;
  w.x.resize(size_t(N * d));
  w.y.resize(size_t(N * d));
  auto scope = time_gpu_op(p.timer, "embedding.fwd");
  embedding_forward(param("embedding"), w.tokens.data(), w.x.data(), N, d, stream_);
}

void GpuPalmModel::layer_forward(const Pass& p, int l) {
  Workspace& w = ws_;
  LayerActivations& a = w.layers[size_t(l)];
  const std::string prefix = "layer" + std::to_string(l) + ".";
  auto save = [&](DeviceBuffer<float>& into) {
    into.resize(w.x.size());
    CUDA_CHECK(cudaMemcpyAsync(into.data(), w.x.data(), w.x.bytes(), cudaMemcpyDeviceToDevice, stream_));
  };
  save(a.x);
  layer_norm(p, w.x, prefix + "ln", a.h, a.mean, a.rstd);
  attention_branch(p, a, prefix, a.h);
  if (spec_.parallel_block) {
    mlp_branch(p, a, prefix, a.h, 1.0f);
    add_branches(p);
  } else {
    add_branches(p);
    save(a.x_mid);
    layer_norm(p, w.x, prefix + "ln2", a.h2, a.mean2, a.rstd2);
    mlp_branch(p, a, prefix, a.h2, 0.0f);
    add_branches(p);
  }
}

void GpuPalmModel::layer_norm(const Pass& p, const DeviceBuffer<float>& in, const std::string& g,
                              DeviceBuffer<bf16>& out, DeviceBuffer<float>& mean, DeviceBuffer<float>& rstd) {
  const int64_t N = p.N, d = spec_.d_model;
  auto scope = time_gpu_op(p.timer, "ln.fwd");
  out.resize(size_t(N * d));
  mean.resize(size_t(N));
  rstd.resize(size_t(N));
  layernorm_forward(in.data(), param(g), out.data(), mean.data(), rstd.data(), N, d, stream_);
}

void GpuPalmModel::attention_branch(const Pass& p, LayerActivations& a, const std::string& prefix,
                                    const DeviceBuffer<bf16>& h) {
  const int64_t N = p.N, d = spec_.d_model, q = spec_.head_dim, S = spec_.seq_len, hq = p.hq, kvq = p.kvq, ld = p.ld;
  {
    auto scope = time_gpu_op(p.timer, "qkv_proj.fwd");
    a.qkv.resize(size_t(N * ld));
    gemm_(false, false, N, hq, d, 1.0f, h.data(), d, param_bf16(prefix + "wq"), hq, 0.0f, a.qkv.data(), ld);
    gemm_(false, false, N, kvq, d, 1.0f, h.data(), d, param_bf16(prefix + "wkv"), kvq, 0.0f, a.qkv.data() + hq, ld);
  }
  if (spec_.rope) {
    auto scope = time_gpu_op(p.timer, "rope.fwd");
    rope(a.qkv.data(), N, ld, heads_, q, S, false, stream_);
    rope(a.qkv.data() + hq, N, ld, kv_heads_, q, S, false, stream_);
  }
  {
    auto scope = time_gpu_op(p.timer, "attention.fwd");
    a.o.resize(size_t(N * hq));
    a.lse.resize(size_t(p.batch * heads_ * S));
    attention_forward(p.dims, a.qkv.data(), a.o.data(), a.lse.data(), stream_);
  }
  auto scope = time_gpu_op(p.timer, "attn_out_proj.fwd");
  gemm_(false, false, N, d, hq, 1.0f, a.o.data(), hq, param_bf16(prefix + "wo"), d, 0.0f, ws_.y.data(), d);
}

void GpuPalmModel::mlp_branch(const Pass& p, LayerActivations& a, const std::string& prefix,
                              const DeviceBuffer<bf16>& h, float beta) {
  const int64_t N = p.N, d = spec_.d_model, f = ff_;
  {
    auto scope = time_gpu_op(p.timer, "mlp_in_proj.fwd");
    a.u.resize(size_t(N * 2 * f));
    gemm_(false, false, N, 2 * f, d, 1.0f, h.data(), d, param_bf16(prefix + "win"), 2 * f, 0.0f, a.u.data(), 2 * f);
  }
  {
    auto scope = time_gpu_op(p.timer, "mlp_act.fwd");
    a.m.resize(size_t(N * f));
    swiglu_forward(a.u.data(), a.m.data(), N, f, stream_);
  }
  auto scope = time_gpu_op(p.timer, "mlp_out_proj.fwd");
  gemm_(false, false, N, d, f, 1.0f, a.m.data(), f, param_bf16(prefix + "wout"), d, beta, ws_.y.data(), d);
}

void GpuPalmModel::all_reduce(const Pass& p, DeviceBuffer<float>& v, const char* name) {
  if (tp_ == 1) return;
  auto scope = time_gpu_op(p.timer, name);
  p.tp->all_reduce(v.data(), v.size());
}

void GpuPalmModel::add_branches(const Pass& p) {
  all_reduce(p, ws_.y, "tp_allreduce.fwd");
  auto scope = time_gpu_op(p.timer, "residual.fwd");
  add_in_place(ws_.x.data(), ws_.y.data(), p.N * spec_.d_model, stream_);
}

void GpuPalmModel::head_forward(const Pass& p) {
  Workspace& w = ws_;
  const int64_t N = p.N, d = spec_.d_model, V = spec_.vocab;
  {
    auto scope = time_gpu_op(p.timer, "final_ln.fwd");
    w.hf.resize(size_t(N * d));
    w.mean_f.resize(size_t(N));
    w.rstd_f.resize(size_t(N));
    layernorm_forward(w.x.data(), param("final_ln"), w.hf.data(), w.mean_f.data(), w.rstd_f.data(), N, d, stream_);
  }
  const float logit_scale = float(1.0 / std::sqrt(double(d)));
  {
    auto scope = time_gpu_op(p.timer, "logits.fwd");
    w.logits.resize(size_t(N * V));
    gemm_(false, true, N, V, d, logit_scale, w.hf.data(), d, param_bf16("embedding"), d, 0.0f, w.logits.data(), V);
  }
  auto scope = time_gpu_op(p.timer, "loss.fwd");
  w.log_z.resize(size_t(N));
  w.row_loss.resize(size_t(N));
  w.row_ce.resize(size_t(N));
  cross_entropy_forward(w.logits.data(), w.targets.data(), w.log_z.data(), w.row_loss.data(), w.row_ce.data(), N, V,
                        float(palm_choices::kZLossWeight), stream_);
}

// ---- backward ----

void GpuPalmModel::head_backward(const Pass& p) {
  Workspace& w = ws_;
  const int64_t N = p.N, d = spec_.d_model, V = spec_.vocab;
  const float logit_scale = float(1.0 / std::sqrt(double(d)));
  {
    auto scope = time_gpu_op(p.timer, "loss.bwd");
    w.dlogits.resize(size_t(N * V));
    cross_entropy_backward(w.logits.data(), w.targets.data(), w.log_z.data(), w.dlogits.data(), N, V,
                           float(palm_choices::kZLossWeight), float(p.grad_scale), stream_);
  }
  {
    auto scope = time_gpu_op(p.timer, "logits.bwd");
    w.dhf.resize(size_t(N * d));
    gemm_(false, false, N, d, V, logit_scale, w.dlogits.data(), V, param_bf16("embedding"), d, 0.0f, w.dhf.data(), d);
    gemm_(true, false, V, d, N, logit_scale, w.dlogits.data(), V, w.hf.data(), d, 1.0f, grad("embedding"), d);
  }
  w.ln_partials.resize(size_t(layernorm_partials_size(N, d)));
  {
    auto scope = time_gpu_op(p.timer, "final_ln.bwd");
    w.dx.resize(size_t(N * d));
    w.dx.zero(stream_);
    layernorm_backward(w.x.data(), param("final_ln"), w.mean_f.data(), w.rstd_f.data(), w.dhf.data(), w.dx.data(),
                       grad("final_ln"), w.ln_partials.data(), N, d, stream_);
  }
  w.dh.resize(size_t(N * d));
  w.dy.resize(size_t(N * d));
}

void GpuPalmModel::layer_backward(const Pass& p, int l) {
  LayerActivations& a = ws_.layers[size_t(l)];
  const std::string prefix = "layer" + std::to_string(l) + ".";
  if (spec_.parallel_block) {
    residual_backward(p);
    mlp_branch_backward(p, a, prefix, a.h, 0.0f);
    attention_branch_backward(p, a, prefix, 1.0f);
    reduce_dh(p);
    layer_norm_backward(p, a.x, prefix + "ln", a.mean, a.rstd);
    return;
  }
  residual_backward(p);
  mlp_branch_backward(p, a, prefix, a.h2, 0.0f);
  reduce_dh(p);
  layer_norm_backward(p, a.x_mid, prefix + "ln2", a.mean2, a.rstd2);
  residual_backward(p);
  attention_branch_backward(p, a, prefix, 0.0f);
  reduce_dh(p);
  layer_norm_backward(p, a.x, prefix + "ln", a.mean, a.rstd);
}

void GpuPalmModel::mlp_branch_backward(const Pass& p, LayerActivations& a, const std::string& prefix,
                                       const DeviceBuffer<bf16>& h, float beta) {
  Workspace& w = ws_;
  const int64_t N = p.N, d = spec_.d_model, f = ff_;
  {
    auto scope = time_gpu_op(p.timer, "mlp_out_proj.bwd");
    w.dm.resize(size_t(N * f));
    gemm_(false, true, N, f, d, 1.0f, w.dy.data(), d, param_bf16(prefix + "wout"), d, 0.0f, w.dm.data(), f);
    gemm_(true, false, f, d, N, 1.0f, a.m.data(), f, w.dy.data(), d, 1.0f, grad(prefix + "wout"), d);
  }
  {
    auto scope = time_gpu_op(p.timer, "mlp_act.bwd");
    w.du.resize(size_t(N * 2 * f));
    swiglu_backward(a.u.data(), w.dm.data(), w.du.data(), N, f, stream_);
  }
  auto scope = time_gpu_op(p.timer, "mlp_in_proj.bwd");
  gemm_(false, true, N, d, 2 * f, 1.0f, w.du.data(), 2 * f, param_bf16(prefix + "win"), 2 * f, beta, w.dh.data(), d);
  gemm_(true, false, d, 2 * f, N, 1.0f, h.data(), d, w.du.data(), 2 * f, 1.0f, grad(prefix + "win"), 2 * f);
}

void GpuPalmModel::attention_branch_backward(const Pass& p, LayerActivations& a, const std::string& prefix,
                                             float beta) {
  Workspace& w = ws_;
  const int64_t N = p.N, d = spec_.d_model, q = spec_.head_dim, S = spec_.seq_len, hq = p.hq, kvq = p.kvq, ld = p.ld;
  {
    auto scope = time_gpu_op(p.timer, "attn_out_proj.bwd");
    w.d_o.resize(size_t(N * hq));
    gemm_(false, true, N, hq, d, 1.0f, w.dy.data(), d, param_bf16(prefix + "wo"), d, 0.0f, w.d_o.data(), hq);
    gemm_(true, false, hq, d, N, 1.0f, a.o.data(), hq, w.dy.data(), d, 1.0f, grad(prefix + "wo"), d);
  }
  {
    auto scope = time_gpu_op(p.timer, "attention.bwd");
    w.dqkv.resize(size_t(N * ld));
    w.delta.resize(size_t(p.batch * heads_ * S));
    attention_backward(p.dims, a.qkv.data(), a.o.data(), a.lse.data(), w.d_o.data(), w.delta.data(), w.dqkv.data(),
                       stream_);
  }
  if (spec_.rope) {
    auto scope = time_gpu_op(p.timer, "rope.bwd");
    rope(w.dqkv.data(), N, ld, heads_, q, S, true, stream_);
    rope(w.dqkv.data() + hq, N, ld, kv_heads_, q, S, true, stream_);
  }
  auto scope = time_gpu_op(p.timer, "qkv_proj.bwd");
  const bf16* h = a.h.data();
  gemm_(false, true, N, d, hq, 1.0f, w.dqkv.data(), ld, param_bf16(prefix + "wq"), hq, beta, w.dh.data(), d);
  gemm_(false, true, N, d, kvq, 1.0f, w.dqkv.data() + hq, ld, param_bf16(prefix + "wkv"), kvq, 1.0f, w.dh.data(), d);
  gemm_(true, false, d, hq, N, 1.0f, h, d, w.dqkv.data(), ld, 1.0f, grad(prefix + "wq"), hq);
  gemm_(true, false, d, kvq, N, 1.0f, h, d, w.dqkv.data() + hq, ld, 1.0f, grad(prefix + "wkv"), kvq);
}

// The gradient reaching a branch output, in bf16 for its GEMMs; dx keeps flowing down the residual.
void GpuPalmModel::residual_backward(const Pass& p) {
  auto scope = time_gpu_op(p.timer, "residual.bwd");
  cast_to_bf16(ws_.dx.data(), ws_.dy.data(), p.N * spec_.d_model, stream_);
}

void GpuPalmModel::layer_norm_backward(const Pass& p, const DeviceBuffer<float>& in, const std::string& g,
                                       const DeviceBuffer<float>& mean, const DeviceBuffer<float>& rstd) {
  auto scope = time_gpu_op(p.timer, "ln.bwd");
  layernorm_backward(in.data(), param(g), mean.data(), rstd.data(), ws_.dh.data(), ws_.dx.data(), grad(g),
                     ws_.ln_partials.data(), p.N, spec_.d_model, stream_);
}

void GpuPalmModel::reduce_dh(const Pass& p) { all_reduce(p, ws_.dh, "tp_allreduce.bwd"); }

}  // namespace palmsim::cuda
