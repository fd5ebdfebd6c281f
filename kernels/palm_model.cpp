#include "kernels/palm_model.h"

#include "kernels/cpu/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/palm_choices.h"
#include "model/layout.h"
#include "model/pipeline_schedule.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace palmsim {

using cpu::gemm;

struct SwigluMlp {
  std::string w_in, w_out;
  int64_t width = 0;
  const char *in_fwd, *act_fwd, *out_fwd, *in_bwd, *act_bwd, *out_bwd;
};

namespace {

SwigluMlp dense_mlp(const std::string& layer, int64_t width) {
  return {layer + "win",     layer + "wout",   width,          "mlp_in_proj.fwd", "mlp_act.fwd",
          "mlp_out_proj.fwd", "mlp_in_proj.bwd", "mlp_act.bwd", "mlp_out_proj.bwd"};
}

// DeepSeek-MoE's shared experts: every token uses them beside its routed ones.
SwigluMlp shared_experts_mlp(const std::string& layer, const MoeSpec& moe) {
  return {layer + "shared_win",      layer + "shared_wout",  moe.shared_experts * moe.expert_d_ff,
          "moe_shared_in.fwd",       "moe_shared_act.fwd",   "moe_shared_out.fwd",
          "moe_shared_in.bwd",       "moe_shared_act.bwd",   "moe_shared_out.bwd"};
}

std::string layer_prefix(int layer) { return "layer" + std::to_string(layer) + "."; }

}  // namespace

template <class T>
PalmModel<T>::PalmModel(const ModelSpec& spec, int tp, int tp_rank, bool allocate, int ep, int ep_rank, int pp,
                        int pp_rank, int vpp, Schedule schedule)
    : spec_(spec), tp_(tp), tp_rank_(tp_rank), ep_(ep), ep_rank_(ep_rank), pp_(pp), pp_rank_(pp_rank), schedule_(schedule) {
  if (!ffn_is_gated(spec.ffn) || spec.ffn != Ffn::swiglu)
    throw std::invalid_argument("the training step implements PaLM's SwiGLU feed-forward");
  if (spec.n_heads % tp || spec.d_ff % tp)
    throw std::invalid_argument("tensor parallelism must divide n_heads and d_ff");
  if (pp < 1 || vpp < 1 || int64_t(pp) * vpp > spec.n_layers)
    throw std::invalid_argument("pipeline stages times model chunks must be 1 to n_layers");
  check_trainable_moe(spec.moe, tp, ep);
  for (int chunk = 0; chunk < vpp; ++chunk)
    chunks_.push_back(stage_layers(spec.n_layers, pp * vpp, virtual_stage(schedule, pp, pp_rank, chunk)));
  heads_ = spec.n_heads / tp;
  kv_heads_ = spec.n_kv_heads >= tp ? spec.n_kv_heads / tp : spec.n_kv_heads;
  ff_ = spec.d_ff / tp;
  const int64_t d = spec.d_model, q = spec.head_dim;
  const bool sharded = tp > 1;
  // The tied embedding: looked up on the first stage, the logits' weights on the last.
  add_tensor("embedding", spec.vocab, d, false, 1.0, holds_embedding());
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    const bool here = holds_layer(l);
    add_tensor(p + "ln", 1, d, false, 0.0, here);
    if (!spec.parallel_block) add_tensor(p + "ln2", 1, d, false, 0.0, here);
    add_tensor(p + "wq", d, heads_ * q, sharded, 1.0 / std::sqrt(double(d)), here);
    add_tensor(p + "wkv", d, 2 * kv_heads_ * q, sharded && spec.n_kv_heads >= tp, 1.0 / std::sqrt(double(d)), here);
    add_tensor(p + "wo", heads_ * q, d, sharded, 1.0 / std::sqrt(double(spec.n_heads * q)), here);
    if (is_moe_layer(l)) {
      add_tensor(p + "router", d, spec.moe.n_experts, false, 1.0 / std::sqrt(double(d)), here);
      const int64_t shared = int64_t(spec.moe.shared_experts) * spec.moe.expert_d_ff;
      if (shared == 0) continue;
      add_tensor(p + "shared_win", d, 2 * shared, false, 1.0 / std::sqrt(double(d)), here);
      add_tensor(p + "shared_wout", shared, d, false, 1.0 / std::sqrt(double(shared)), here);
      continue;
    }
    add_tensor(p + "win", d, 2 * ff_, sharded, 1.0 / std::sqrt(double(d)), here);
    add_tensor(p + "wout", ff_, d, sharded, 1.0 / std::sqrt(double(spec.d_ff)), here);
  }
  add_tensor("final_ln", 1, d, false, 0.0, holds_logits());
  n_dense_params_ = n_params_;
  add_experts();
  if (!allocate) return;
  params_.assign(n_params_, T(0));
  grads_.assign(n_params_, T(0));
}

template <class T>
void PalmModel<T>::add_tensor(const std::string& name, int64_t rows, int64_t cols, bool sharded, double std,
                              bool here) {
  const size_t index = table_index_++;
  if (!here) return;
  tensors_.push_back({name, rows, cols, n_params_, sharded, std, false, index});
  n_params_ += size_t(rows * cols);
}

template <class T>
bool PalmModel<T>::is_moe_layer(int layer) const {
  return spec_.moe.sparse() && (layer + 1) % spec_.moe.layer_freq == 0;
}

// This rank's experts, layer by layer; each keeps the place it has in the one-rank table, so that
// any ep and pp initialise the same model.
template <class T>
void PalmModel<T>::add_experts() {
  const int E = spec_.moe.n_experts, local = spec_.moe.sparse() ? E / ep_ : 0;
  const int64_t d = spec_.d_model, f = spec_.moe.expert_d_ff;
  const size_t dense_tensors = table_index_;
  size_t moe_layer = 0;
  for (int l = 0; l < spec_.n_layers; ++l) {
    if (!is_moe_layer(l)) continue;
    if (!holds_layer(l)) {
      ++moe_layer;
      continue;
    }
    for (int e = ep_rank_ * local; e < (ep_rank_ + 1) * local; ++e) {
      const std::string p = "layer" + std::to_string(l) + ".expert" + std::to_string(e) + ".";
      const size_t global = dense_tensors + 2 * (moe_layer * size_t(E) + size_t(e));
      add_tensor(p + "win", d, 2 * f, false, 1.0 / std::sqrt(double(d)));
      tensors_.back().ep_sharded = ep_ > 1, tensors_.back().init_index = global;
      add_tensor(p + "wout", f, d, false, 1.0 / std::sqrt(double(f)));
      tensors_.back().ep_sharded = ep_ > 1, tensors_.back().init_index = global + 1;
    }
    ++moe_layer;
  }
}

template <class T>
MoeShape PalmModel<T>::moe_shape(int64_t tokens) const {
  return {tokens, spec_.d_model, spec_.moe.n_experts, spec_.moe.top_k, spec_.moe.expert_d_ff,
          spec_.moe.capacity_factor};
}

template <class T>
MoeWeights<T> PalmModel<T>::moe_weights(int layer) const {
  const std::string p = "layer" + std::to_string(layer) + ".";
  MoeWeights<T> w;
  w.router = params_.data() + tensor(p + "router").offset;
  const int local = spec_.moe.n_experts / ep_;
  for (int e = ep_rank_ * local; e < (ep_rank_ + 1) * local; ++e) {
    const std::string x = p + "expert" + std::to_string(e) + ".";
    w.w_in.push_back(params_.data() + tensor(x + "win").offset);
    w.w_out.push_back(params_.data() + tensor(x + "wout").offset);
  }
  return w;
}

template <class T>
MoeGrads<T> PalmModel<T>::moe_grads(int layer) {
  const MoeWeights<T> w = moe_weights(layer);
  auto to_grad = [&](const T* param) { return grads_.data() + (param - params_.data()); };
  MoeGrads<T> g;
  g.router = to_grad(w.router);
  for (const T* p : w.w_in) g.w_in.push_back(to_grad(p));
  for (const T* p : w.w_out) g.w_out.push_back(to_grad(p));
  return g;
}

template <class T>
const TensorInfo& PalmModel<T>::tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  throw std::out_of_range("no tensor " + name);
}

template <class T>
void PalmModel<T>::pad_to_multiple(size_t n) {
  const size_t padded = (n_params_ + n - 1) / n * n;
  params_.resize(padded, T(0));
  grads_.resize(padded, T(0));
}

template <class T>
std::vector<T> PalmModel<T>::shard_of(const TensorInfo& t, const double* full) const {
  std::vector<T> out(t.size());
  const std::string kind = t.name.substr(t.name.find('.') + 1);
  const bool by_rows = kind == "wo" || kind == "wout";
  const int64_t full_cols = t.tp_sharded && !by_rows ? t.cols * tp_ : t.cols;
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) {
      int64_t fr = r, fc = c;
      if (t.tp_sharded && by_rows) {
        fr = tp_rank_ * t.rows + r;
      } else if (t.tp_sharded && kind == "wq") {
        fc = tp_rank_ * t.cols + c;
      } else if (t.tp_sharded) {  // wkv and win: two halves [K | V] or [W | V], each split tp ways
        const int64_t half = t.cols / 2, full_half = full_cols / 2;
        fc = (c < half ? 0 : full_half) + tp_rank_ * half + (c % half);
      }
      out[size_t(r * t.cols + c)] = T(full[fr * full_cols + fc]);
    }
  return out;
}

template <class T>
void PalmModel<T>::init(uint64_t seed) {
  if (params_.size() < n_params_) params_.resize(n_params_, T(0));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorInfo& t = tensors_[i];
    T* dst = params_.data() + t.offset;
    if (t.init_std == 0) {
      std::fill(dst, dst + t.size(), T(1));
      continue;
    }
    // Draw the whole tensor, then keep this rank's piece: every tp and ep gives the same model.
    std::mt19937_64 rng(seed * 1000003ULL + t.init_index);
    std::normal_distribution<double> normal(0.0, t.init_std);
    std::vector<double> full(t.size() * size_t(t.tp_sharded ? tp_ : 1));
    for (double& v : full) v = normal(rng);
    const std::vector<T> piece = shard_of(t, full.data());
    std::copy(piece.begin(), piece.end(), dst);
  }
}

template <class T>
double PalmModel<T>::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t batch,
                                      Communicator* tp, OpTimer* timer, double grad_scale, Communicator* ep,
                                      Communicator* cp) {
  const double loss = stage_forward(0, 0, tokens, targets, batch, nullptr, tp, ep, cp, timer, grad_scale);
  stage_backward(0, 0, nullptr);
  return loss;
}

template <class T>
double PalmModel<T>::evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                              Communicator* ep, Communicator* cp) {
  double ce = 0;
  stage_forward(0, 0, tokens, targets, batch, nullptr, tp, ep, cp, nullptr, 1.0, &ce);
  return ce;
}

template <class T>
const typename PalmModel<T>::Pass& PalmModel<T>::begin_pass(const int32_t* tokens, const int32_t* targets, int64_t batch,
                                                     Communicator* tp, Communicator* ep, Communicator* cp,
                                                     OpTimer* timer, double grad_scale) {
  Workspace& w = ws();
  Pass& p = w.pass;
  p = Pass{};
  p.tokens = tokens, p.targets = targets, p.batch = batch;
  p.tp = tp, p.ep = ep, p.cp = cp, p.timer = timer, p.grad_scale = grad_scale;
  if (cp && cp->size() > 1) {
    if (spec_.moe.sparse()) throw std::invalid_argument("context parallelism with a sparse model is not implemented");
    if (!w.cp || !w.cp->is_for(cp->size(), cp->rank(), spec_.seq_len))
      w.cp = std::make_unique<ContextParallel<T>>(cp->size(), cp->rank(), spec_.seq_len);
    p.context = w.cp.get();
    p.context->select(tokens, batch, w.tokens);
    p.context->select(targets, batch, w.targets);
    p.tokens = w.tokens.data(), p.targets = w.targets.data();
  }
  const int64_t q = spec_.head_dim;
  p.R = p.context ? p.context->rows() : spec_.seq_len;
  p.N = batch * p.R;
  p.hq = heads_ * q, p.kvq = 2 * kv_heads_ * q, p.ld = p.hq + p.kvq;
  p.shape = {batch, spec_.seq_len, heads_, kv_heads_, q};
  p.rows = {p.R, p.context ? p.context->positions() : nullptr};
  return p;
}

// resize() keeps the memory of earlier calls; every buffer is fully overwritten before it is
// read, except dx, which is cleared where backward starts accumulating into it.
template <class T>
double PalmModel<T>::stage_forward(int slot, int chunk, const int32_t* tokens, const int32_t* targets,
                                   int64_t batch, const T* input, Communicator* tp, Communicator* ep,
                                   Communicator* cp, OpTimer* timer, double grad_scale, double* plain_ce) {
  if (slots_.size() <= size_t(slot)) slots_.resize(size_t(slot) + 1);
  slot_ = size_t(slot);
  const Pass& p = begin_pass(tokens, targets, batch, tp, ep, cp, timer, grad_scale);
  if (first_virtual(chunk))
    embedding_forward(p);
  else
    ws().x.assign(input, input + p.N * spec_.d_model);
  ws().layers.resize(size_t(spec_.n_layers));
  ws().y.resize(size_t(p.N * spec_.d_model));
  double loss = 0;  // the MoE layers' balance loss, then this chunk's cross-entropy
  const StageLayers& layers = chunks_[size_t(chunk)];
  for (int l = layers.first; l < layers.end; ++l) loss += layer_forward(p, l);
  return last_virtual(chunk) ? head_forward(p, plain_ce) + loss : loss;
}

template <class T>
void PalmModel<T>::stage_backward(int slot, int chunk, const T* output_grad, bool defer_weight_gradients) {
  slot_ = size_t(slot);
  const Pass& p = ws().pass;
  ws().defer_weight_gradients = defer_weight_gradients;
  ws().chunk = chunk;
  ws().deferred.resize(size_t(chunks()));
  ws().deferred_dy.resize(size_t(chunks()));
  ws().deferred[size_t(chunk)].clear();
  ws().deferred_dy[size_t(chunk)].clear();
  if (last_virtual(chunk))
    head_backward(p);
  else
    ws().dx.assign(output_grad, output_grad + p.N * spec_.d_model);
  ws().dh.resize(size_t(p.N * spec_.d_model));
  const StageLayers& layers = chunks_[size_t(chunk)];
  for (int l = layers.end - 1; l >= layers.first; --l) layer_backward(p, l);
  if (first_virtual(chunk)) embedding_backward(p);
}

template <class T>
bool PalmModel<T>::holds_logits() const {
  for (int chunk = 0; chunk < chunks(); ++chunk)
    if (last_virtual(chunk)) return true;
  return false;
}

template <class T>
bool PalmModel<T>::holds_layer(int layer) const {
  for (const StageLayers& c : chunks_)
    if (layer >= c.first && layer < c.end) return true;
  return false;
}

// ---- forward ----

template <class T>
void PalmModel<T>::embedding_forward(const Pass& p) {
  auto scope = time_op(p.timer, "embedding.fwd");
  const int64_t d = spec_.d_model;
  const T* E = param("embedding");
  ws().x.resize(size_t(p.N * d));
  for (int64_t n = 0; n < p.N; ++n) std::copy_n(E + int64_t(p.tokens[n]) * d, d, ws().x.data() + n * d);
}

// A parallel block sums both branches into y before one all-reduce; a serial block adds the
// attention branch to the residual before its MLP reads it.
template <class T>
double PalmModel<T>::layer_forward(const Pass& p, int l) {
  std::vector<T>& x = ws().x;
  LayerActivations& a = ws().layers[size_t(l)];
  const std::string prefix = layer_prefix(l);
  a.x.assign(x.begin(), x.end());
  layer_norm_forward(p, x, param(prefix + "ln"), a.h, a.mean, a.rstd);
  attention_forward(p, a, prefix, a.h);
  if (spec_.parallel_block) {
    const double balance_loss = mlp_forward(p, a, l, prefix, a.h, T(1));
    add_branches(p);
    return balance_loss;
  }
  add_branches(p);
  a.x_mid.assign(x.begin(), x.end());
  layer_norm_forward(p, x, param(prefix + "ln2"), a.h2, a.mean2, a.rstd2);
  const double balance_loss = mlp_forward(p, a, l, prefix, a.h2, T(0));
  add_branches(p);
  return balance_loss;
}

template <class T>
void PalmModel<T>::layer_norm_forward(const Pass& p, const std::vector<T>& in, const T* g, std::vector<T>& out,
                                      std::vector<T>& mean, std::vector<T>& rstd) {
  auto scope = time_op(p.timer, "ln.fwd");
  const int64_t d = spec_.d_model;
  out.resize(size_t(p.N * d));
  mean.resize(size_t(p.N));
  rstd.resize(size_t(p.N));
  cpu::layernorm_forward(in.data(), g, out.data(), mean.data(), rstd.data(), p.N, d);
}

// LN output h -> y = Attn(h), this rank's partial sum over its heads. Under context parallelism
// attention reads the whole sequences' K/V, gathered from every rank (cp_kv_allgather).
template <class T>
void PalmModel<T>::attention_forward(const Pass& p, LayerActivations& a, const std::string& prefix,
                                     const std::vector<T>& h) {
  const int64_t N = p.N, d = spec_.d_model, q = spec_.head_dim, hq = p.hq, kvq = p.kvq, ld = p.ld;
  {
    auto scope = time_op(p.timer, "qkv_proj.fwd");
    a.qkv.resize(size_t(N * ld));
    gemm(false, false, N, hq, d, T(1), h.data(), d, param(prefix + "wq"), hq, T(0), a.qkv.data(), ld);
    gemm(false, false, N, kvq, d, T(1), h.data(), d, param(prefix + "wkv"), kvq, T(0), a.qkv.data() + hq, ld);
  }
  if (spec_.rope) {
    auto scope = time_op(p.timer, "rope.fwd");
    cpu::rope_forward(a.qkv.data(), N, ld, heads_, q, p.R, p.rows.positions);
    cpu::rope_forward(a.qkv.data() + hq, N, ld, kv_heads_, q, p.R, p.rows.positions);
  }
  a.o.resize(size_t(N * hq));
  a.lse.resize(size_t(p.batch * heads_ * p.R));
  if (p.context && cp_comm_ == ContextComm::ring) {
    ring_attention_forward(p, a);
  } else {
    if (p.context) {
      auto scope = time_op(p.timer, "cp_kv_allgather.fwd");
      p.context->gather_kv(p.cp, a.qkv.data(), p.batch, ld, hq, kvq, ws().kv);
    }
    auto scope = time_op(p.timer, "attention.fwd");
    if (p.context)
      cpu::attention_rows_forward(p.shape, p.rows, a.qkv.data(), ld, ws().kv.data(), kvq, a.o.data(), a.lse.data());
    else
      cpu::attention_forward(p.shape, a.qkv.data(), a.o.data(), a.lse.data());
  }
  auto scope = time_op(p.timer, "attn_out_proj.fwd");
  gemm(false, false, N, d, hq, T(1), a.o.data(), hq, param(prefix + "wo"), d, T(0), ws().y.data(), d);
}

// Adds the MLP branch to y (beta = 1) or sets it: SwiGLU, or a mixture of experts (and its shared
// experts) in the MoE layers, whose load-balancing loss is returned.
template <class T>
double PalmModel<T>::mlp_forward(const Pass& p, LayerActivations& a, int l, const std::string& prefix,
                                 const std::vector<T>& h, T beta) {
  if (!is_moe_layer(l)) {
    swiglu_forward(p, a, dense_mlp(prefix, ff_), h, beta);
    return 0.0;
  }
  const double balance_loss = moe_forward(moe_shape(p.N), moe_weights(l), h.data(), ws().y.data(), beta != T(0),
                                          a.moe, ws().moe, p.ep, p.timer);
  if (spec_.moe.shared_experts > 0) swiglu_forward(p, a, shared_experts_mlp(prefix, spec_.moe), h, T(1));
  return balance_loss;
}

template <class T>
void PalmModel<T>::swiglu_forward(const Pass& p, LayerActivations& a, const SwigluMlp& mlp, const std::vector<T>& h,
                                  T beta) {
  const int64_t N = p.N, d = spec_.d_model, width = mlp.width;
  {
    auto scope = time_op(p.timer, mlp.in_fwd);
    a.u.resize(size_t(N * 2 * width));
    gemm(false, false, N, 2 * width, d, T(1), h.data(), d, param(mlp.w_in), 2 * width, T(0), a.u.data(), 2 * width);
  }
  {
    auto scope = time_op(p.timer, mlp.act_fwd);
    a.m.resize(size_t(N * width));
    cpu::swiglu_forward(a.u.data(), a.m.data(), N, width);
  }
  auto scope = time_op(p.timer, mlp.out_fwd);
  gemm(false, false, N, d, width, T(1), a.m.data(), width, param(mlp.w_out), d, beta, ws().y.data(), d);
}

template <class T>
void PalmModel<T>::add_branches(const Pass& p) {
  std::vector<T>& y = ws().y;
  if (tp_ > 1) {
    auto scope = time_op(p.timer, "tp_allreduce.fwd");
    p.tp->all_reduce(y.data(), y.size());
  }
  auto scope = time_op(p.timer, "residual.fwd");
  std::vector<T>& x = ws().x;
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}

// Final LayerNorm, logits against the shared embedding scaled by 1/sqrt(d), and the loss (with
// z-loss); the plain cross-entropy goes to plain_ce when given.
template <class T>
double PalmModel<T>::head_forward(const Pass& p, double* plain_ce) {
  Workspace& w = ws();
  const int64_t N = p.N, d = spec_.d_model, V = spec_.vocab;
  if (palm_choices::kFinalLayerNorm) {
    auto scope = time_op(p.timer, "final_ln.fwd");
    w.hf.resize(size_t(N * d));
    w.mean_f.resize(size_t(N));
    w.rstd_f.resize(size_t(N));
    cpu::layernorm_forward(w.x.data(), param("final_ln"), w.hf.data(), w.mean_f.data(), w.rstd_f.data(), N, d);
  }
  const T logit_scale = T(1.0 / std::sqrt(double(d)));
  {
    auto scope = time_op(p.timer, "logits.fwd");
    w.logits.resize(size_t(N * V));
    w.log_z.resize(size_t(N));
    gemm(false, true, N, V, d, logit_scale, w.hf.data(), d, param("embedding"), d, T(0), w.logits.data(), V);
  }
  auto scope = time_op(p.timer, "loss.fwd");
  return cpu::cross_entropy_forward(w.logits.data(), p.targets, w.log_z.data(), N, V, palm_choices::kZLossWeight,
                                    plain_ce);
}

// ---- backward ----

template <class T>
void PalmModel<T>::head_backward(const Pass& p) {
  Workspace& w = ws();
  const int64_t N = p.N, d = spec_.d_model, V = spec_.vocab;
  const T logit_scale = T(1.0 / std::sqrt(double(d)));
  std::vector<T>& dlogits = w.logits;  // the logits are not needed once log Z is known
  {
    auto scope = time_op(p.timer, "loss.bwd");
    // In place: each gradient element depends only on the logit it replaces.
    cpu::cross_entropy_backward(w.logits.data(), p.targets, w.log_z.data(), dlogits.data(), N, V,
                                palm_choices::kZLossWeight);
    if (p.grad_scale != 1.0)
      for (T& g : dlogits) g *= T(p.grad_scale);
  }
  {
    auto scope = time_op(p.timer, "logits.bwd");
    w.dhf.resize(size_t(N * d));
    gemm(false, false, N, d, V, logit_scale, dlogits.data(), V, param("embedding"), d, T(0), w.dhf.data(), d);
    gemm(true, false, V, d, N, logit_scale, dlogits.data(), V, w.hf.data(), d, T(1), grad("embedding"), d);
  }
  auto scope = time_op(p.timer, "final_ln.bwd");
  w.dx.assign(size_t(N * d), T(0));
  cpu::layernorm_backward(w.x.data(), param("final_ln"), w.mean_f.data(), w.rstd_f.data(), w.dhf.data(), w.dx.data(),
                          grad("final_ln"), N, d);
}

template <class T>
void PalmModel<T>::layer_backward(const Pass& p, int l) {
  LayerActivations& a = ws().layers[size_t(l)];
  const std::string prefix = layer_prefix(l);
  if (spec_.parallel_block) {
    residual_backward(p);
    mlp_backward(p, a, l, prefix, a.h, T(0));
    attention_backward(p, a, prefix, T(1));
    reduce_dh(p);
    layer_norm_backward(p, a.x, prefix + "ln", a.mean, a.rstd);
    return;
  }
  residual_backward(p);
  mlp_backward(p, a, l, prefix, a.h2, T(0));
  reduce_dh(p);
  layer_norm_backward(p, a.x_mid, prefix + "ln2", a.mean2, a.rstd2);
  residual_backward(p);
  attention_backward(p, a, prefix, T(0));
  reduce_dh(p);
  layer_norm_backward(p, a.x, prefix + "ln", a.mean, a.rstd);
}

template <class T>
void PalmModel<T>::residual_backward(const Pass& p) {
  auto scope = time_op(p.timer, "residual.bwd");
  ws().dy.assign(ws().dx.begin(), ws().dx.end());  // dx keeps flowing down the residual
}

// From dy: accumulates into dh (beta) and the weight gradients. The routed experts write dh
// (beta is 0 in MoE layers), the shared ones add to it.
template <class T>
void PalmModel<T>::mlp_backward(const Pass& p, LayerActivations& a, int l, const std::string& prefix,
                                const std::vector<T>& h, T beta) {
  if (!is_moe_layer(l)) return swiglu_backward(p, a, dense_mlp(prefix, ff_), h, beta);
  moe_backward(moe_shape(p.N), moe_weights(l), h.data(), ws().dy.data(), ws().dh.data(), moe_grads(l), a.moe, ws().moe,
               p.grad_scale, p.ep, p.timer);
  if (spec_.moe.shared_experts > 0) swiglu_backward(p, a, shared_experts_mlp(prefix, spec_.moe), h, T(1));
}

template <class T>
void PalmModel<T>::swiglu_backward(const Pass& p, LayerActivations& a, const SwigluMlp& mlp, const std::vector<T>& h,
                                   T beta) {
  Workspace& w = ws();
  const int64_t N = p.N, d = spec_.d_model, width = mlp.width;
  {
    auto scope = time_op(p.timer, mlp.out_bwd);
    w.dm.resize(size_t(N * width));
    gemm(false, true, N, width, d, T(1), w.dy.data(), d, param(mlp.w_out), d, T(0), w.dm.data(), width);
    weight_gradient(mlp.out_bwd, width, d, N, a.m.data(), width, w.dy.data(), d, grad(mlp.w_out), d);
  }
  {
    auto scope = time_op(p.timer, mlp.act_bwd);
    w.du.resize(size_t(N * 2 * width));
    cpu::swiglu_backward(a.u.data(), w.dm.data(), w.du.data(), N, width);
  }
  auto scope = time_op(p.timer, mlp.in_bwd);
  gemm(false, true, N, d, 2 * width, T(1), w.du.data(), 2 * width, param(mlp.w_in), 2 * width, beta, w.dh.data(), d);
  weight_gradient(mlp.in_bwd, d, 2 * width, N, h.data(), d, w.du.data(), 2 * width, grad(mlp.w_in), 2 * width);
}

// The cp ranks' K/V blocks pass round the ring under their own tags (kernels/context_parallel.h).
constexpr int kRingKvTag = 0, kRingDkvTag = 1;

// The ring's start: this rank's own K/V block in the workspace; the shape of attention against one
// block (its keys: one rank's rows of each sequence).
template <class T>
cpu::AttentionShape PalmModel<T>::ring_start(const Pass& p, const LayerActivations& a) {
  p.context->own_kv(a.qkv.data(), p.batch, p.ld, p.hq, p.kvq, ws().kv);
  cpu::AttentionShape block = p.shape;
  block.seq = p.R;
  return block;
}

// Step t of the ring: from t = 1 on the K/V block moves one rank on (timed as `op`), so this rank
// holds rank - t's; returns the sequence positions of that block's rows.
template <class T>
const int32_t* PalmModel<T>::ring_step(const Pass& p, int t, const char* op) {
  const int cp = p.cp->size();
  if (t > 0) {
    auto scope = time_op(p.timer, op);
    p.context->ring_pass(p.cp, ws().kv, kRingKvTag);
  }
  return p.context->positions_of((p.cp->rank() + cp - t) % cp);
}

// This rank's rows attend to each block in turn (its own first), each result merged into a.o /
// a.lse; cp - 1 passes.
template <class T>
void PalmModel<T>::ring_attention_forward(const Pass& p, LayerActivations& a) {
  Workspace& w = ws();
  const cpu::AttentionShape block = ring_start(p, a);
  w.ring_o.resize(a.o.size());
  w.ring_lse.resize(a.lse.size());
  for (int t = 0; t < p.cp->size(); ++t) {
    const int32_t* keys = ring_step(p, t, "cp_kv_ring.fwd");
    auto scope = time_op(p.timer, "attention.fwd");
    T* o = t == 0 ? a.o.data() : w.ring_o.data();
    T* lse = t == 0 ? a.lse.data() : w.ring_lse.data();
    cpu::attention_rows_forward(block, p.rows, a.qkv.data(), p.ld, w.kv.data(), p.kvq, o, lse, keys);
    if (t > 0) cpu::merge_attention_block(block, p.R, a.o.data(), a.lse.data(), o, lse);
  }
}

// The blocks pass round again; against each the rows' whole-sequence o and lse give each key's
// true probability, so the block's dQ share adds to this rank's and its dK/dV share to a sum that
// travels with the block: started by the rank after its owner, passed on after each addition,
// home after cp - 1 passes, where the owner adds its own share.
template <class T>
void PalmModel<T>::ring_attention_backward(const Pass& p, const LayerActivations& a) {
  Workspace& w = ws();
  const int64_t N = p.N, ld = p.ld, hq = p.hq, kvq = p.kvq;
  const cpu::AttentionShape block = ring_start(p, a);
  w.own_dkv.resize(w.kv.size());
  w.ring_dkv.resize(w.kv.size());
  w.ring_dq.resize(size_t(N * ld));
  for (int t = 0; t < p.cp->size(); ++t) {
    const int32_t* keys = ring_step(p, t, "cp_kv_ring.bwd");
    {
      auto scope = time_op(p.timer, "attention.bwd");
      T* dq = t == 0 ? w.dqkv.data() : w.ring_dq.data();
      T* dkv = t == 0 ? w.own_dkv.data() : w.ring_dkv.data();
      cpu::attention_rows_backward(block, p.rows, a.qkv.data(), ld, w.kv.data(), kvq, a.o.data(), a.lse.data(),
                                   w.d_o.data(), dq, dkv, keys);
      if (t > 0) {
        for (int64_t r = 0; r < N; ++r)
          for (int64_t c = 0; c < hq; ++c) w.dqkv[size_t(r * ld + c)] += w.ring_dq[size_t(r * ld + c)];
        if (t == 1) w.dkv = w.ring_dkv;
        else for (size_t i = 0; i < w.dkv.size(); ++i) w.dkv[i] += w.ring_dkv[i];
      }
    }
    if (t > 0) {
      auto scope = time_op(p.timer, "cp_dkv_ring.bwd");
      p.context->ring_pass(p.cp, w.dkv, kRingDkvTag);
    }
  }
  // This rank's block came home with every other rank's share.
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < kvq; ++c)
      w.dqkv[size_t(r * ld + hq + c)] = w.own_dkv[size_t(r * kvq + c)] + w.dkv[size_t(r * kvq + c)];
}

// Under context parallelism backward gathers the whole sequences' K/V again, and every rank's
// queries sent gradient to every key: each row's owner receives the sum (cp_dkv_reducescatter);
// or the blocks pass round the ring again (ring_attention_backward).
template <class T>
void PalmModel<T>::attention_backward(const Pass& p, LayerActivations& a, const std::string& prefix, T beta) {
  Workspace& w = ws();
  const int64_t N = p.N, d = spec_.d_model, q = spec_.head_dim, hq = p.hq, kvq = p.kvq, ld = p.ld;
  {
    const char* op = "attn_out_proj.bwd";
    auto scope = time_op(p.timer, op);
    w.d_o.resize(size_t(N * hq));
    gemm(false, true, N, hq, d, T(1), w.dy.data(), d, param(prefix + "wo"), d, T(0), w.d_o.data(), hq);
    weight_gradient(op, hq, d, N, a.o.data(), hq, w.dy.data(), d, grad(prefix + "wo"), d);
  }
  w.dqkv.resize(size_t(N * ld));
  if (p.context && cp_comm_ == ContextComm::ring) {
    ring_attention_backward(p, a);
  } else {
    if (p.context) {
      auto scope = time_op(p.timer, "cp_kv_allgather.bwd");
      p.context->gather_kv(p.cp, a.qkv.data(), p.batch, ld, hq, kvq, w.kv);
    }
    {
      auto scope = time_op(p.timer, "attention.bwd");
      if (p.context) {
        w.dkv.resize(w.kv.size());
        cpu::attention_rows_backward(p.shape, p.rows, a.qkv.data(), ld, w.kv.data(), kvq, a.o.data(), a.lse.data(),
                                     w.d_o.data(), w.dqkv.data(), w.dkv.data());
      } else {
        cpu::attention_backward(p.shape, a.qkv.data(), a.o.data(), a.lse.data(), w.d_o.data(), w.dqkv.data());
      }
    }
    if (p.context) {
      auto scope = time_op(p.timer, "cp_dkv_reducescatter.bwd");
      p.context->reduce_scatter_dkv(p.cp, w.dkv, p.batch, kvq, w.dqkv.data(), ld, hq);
    }
  }
  if (spec_.rope) {
    auto scope = time_op(p.timer, "rope.bwd");
    cpu::rope_backward(w.dqkv.data(), N, ld, heads_, q, p.R, p.rows.positions);
    cpu::rope_backward(w.dqkv.data() + hq, N, ld, kv_heads_, q, p.R, p.rows.positions);
  }
  const char* op = "qkv_proj.bwd";
  auto scope = time_op(p.timer, op);
  const T* dqkv = w.dqkv.data();
  gemm(false, true, N, d, hq, T(1), dqkv, ld, param(prefix + "wq"), hq, beta, w.dh.data(), d);
  gemm(false, true, N, d, kvq, T(1), dqkv + hq, ld, param(prefix + "wkv"), kvq, T(1), w.dh.data(), d);
  weight_gradient(op, d, hq, N, a.h.data(), d, dqkv, ld, grad(prefix + "wq"), hq);
  weight_gradient(op, d, kvq, N, a.h.data(), d, dqkv + hq, ld, grad(prefix + "wkv"), kvq);
}

template <class T>
void PalmModel<T>::weight_gradient(const char* op, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
                                   const T* dy, int64_t ldy, T* dw, int64_t ldw) {
  Workspace& w = ws();
  if (!w.defer_weight_gradients) {
    gemm(true, false, m, n, k, T(1), a, lda, dy, ldy, T(1), dw, ldw);
    return;
  }
  std::vector<T>& copies = w.deferred_dy[size_t(w.chunk)];
  const size_t at = copies.size();
  copies.resize(at + size_t(k * n));
  for (int64_t r = 0; r < k; ++r) std::copy(dy + r * ldy, dy + r * ldy + n, copies.begin() + ptrdiff_t(at + size_t(r * n)));
  w.deferred[size_t(w.chunk)].push_back({op, m, n, k, a, lda, at, dw, ldw});
}

template <class T>
void PalmModel<T>::stage_weight_gradients(int slot, int chunk) {
  slot_ = size_t(slot);
  Workspace& w = ws();
  const std::vector<T>& dy = w.deferred_dy[size_t(chunk)];
  for (const DeferredWeightGradient& g : w.deferred[size_t(chunk)]) {
    auto scope = time_op(w.pass.timer, g.op);
    gemm(true, false, g.m, g.n, g.k, T(1), g.a, g.lda, dy.data() + g.dy, g.n, T(1), g.dw, g.ldw);
  }
  w.deferred[size_t(chunk)].clear();
  w.deferred_dy[size_t(chunk)].clear();
}

template <class T>
void PalmModel<T>::reduce_dh(const Pass& p) {
  if (tp_ == 1) return;
  auto scope = time_op(p.timer, "tp_allreduce.bwd");
  p.tp->all_reduce(ws().dh.data(), ws().dh.size());
}

template <class T>
void PalmModel<T>::layer_norm_backward(const Pass& p, const std::vector<T>& in, const std::string& g,
                                       const std::vector<T>& mean, const std::vector<T>& rstd) {
  auto scope = time_op(p.timer, "ln.bwd");
  cpu::layernorm_backward(in.data(), param(g), mean.data(), rstd.data(), ws().dh.data(), ws().dx.data(), grad(g), p.N,
                          spec_.d_model);
}

template <class T>
void PalmModel<T>::embedding_backward(const Pass& p) {
  auto scope = time_op(p.timer, "embedding.bwd");
  const int64_t d = spec_.d_model;
  T* dE = grad("embedding");
  for (int64_t n = 0; n < p.N; ++n) {
    T* row = dE + int64_t(p.tokens[n]) * d;
    for (int64_t i = 0; i < d; ++i) row[i] += ws().dx[size_t(n * d + i)];
  }
}

template class PalmModel<float>;
template class PalmModel<double>;

}  // namespace palmsim
