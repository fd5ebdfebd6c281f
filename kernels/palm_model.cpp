#include "kernels/palm_model.h"

#include "kernels/cpu/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/palm_choices.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace palmsim {

using cpu::gemm;

namespace {

// A SwiGLU MLP's weight names, its width on this rank and the ops it is timed under: the dense
// MLP, or a sparse layer's shared experts (DeepSeek-MoE: every token uses them beside its routed ones).
struct SwigluMlp {
  std::string w_in, w_out;
  int64_t width = 0;
  const char *in_fwd, *act_fwd, *out_fwd, *in_bwd, *act_bwd, *out_bwd;
};

SwigluMlp dense_mlp(const std::string& layer, int64_t width) {
  return {layer + "win",     layer + "wout",   width,          "mlp_in_proj.fwd", "mlp_act.fwd",
          "mlp_out_proj.fwd", "mlp_in_proj.bwd", "mlp_act.bwd", "mlp_out_proj.bwd"};
}

SwigluMlp shared_experts_mlp(const std::string& layer, const MoeSpec& moe) {
  return {layer + "shared_win",      layer + "shared_wout",  moe.shared_experts * moe.expert_d_ff,
          "moe_shared_in.fwd",       "moe_shared_act.fwd",   "moe_shared_out.fwd",
          "moe_shared_in.bwd",       "moe_shared_act.bwd",   "moe_shared_out.bwd"};
}

}  // namespace

template <class T>
PalmModel<T>::PalmModel(const ModelSpec& spec, int tp, int tp_rank, bool allocate, int ep, int ep_rank)
    : spec_(spec), tp_(tp), tp_rank_(tp_rank), ep_(ep), ep_rank_(ep_rank) {
  if (!ffn_is_gated(spec.ffn) || spec.ffn != Ffn::swiglu)
    throw std::invalid_argument("the training step implements PaLM's SwiGLU feed-forward");
  if (spec.n_heads % tp || spec.d_ff % tp)
    throw std::invalid_argument("tensor parallelism must divide n_heads and d_ff");
  check_trainable_moe(spec.moe, tp, ep);
  heads_ = spec.n_heads / tp;
  kv_heads_ = spec.n_kv_heads >= tp ? spec.n_kv_heads / tp : spec.n_kv_heads;
  ff_ = spec.d_ff / tp;
  const int64_t d = spec.d_model, q = spec.head_dim;
  const bool sharded = tp > 1;
  add_tensor("embedding", spec.vocab, d, false, 1.0);
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    add_tensor(p + "ln", 1, d, false, 0.0);
    if (!spec.parallel_block) add_tensor(p + "ln2", 1, d, false, 0.0);
    add_tensor(p + "wq", d, heads_ * q, sharded, 1.0 / std::sqrt(double(d)));
    add_tensor(p + "wkv", d, 2 * kv_heads_ * q, sharded && spec.n_kv_heads >= tp, 1.0 / std::sqrt(double(d)));
    add_tensor(p + "wo", heads_ * q, d, sharded, 1.0 / std::sqrt(double(spec.n_heads * q)));
    if (is_moe_layer(l)) {
      add_tensor(p + "router", d, spec.moe.n_experts, false, 1.0 / std::sqrt(double(d)));
      const int64_t shared = int64_t(spec.moe.shared_experts) * spec.moe.expert_d_ff;
      if (shared == 0) continue;
      add_tensor(p + "shared_win", d, 2 * shared, false, 1.0 / std::sqrt(double(d)));
      add_tensor(p + "shared_wout", shared, d, false, 1.0 / std::sqrt(double(shared)));
      continue;
    }
    add_tensor(p + "win", d, 2 * ff_, sharded, 1.0 / std::sqrt(double(d)));
    add_tensor(p + "wout", ff_, d, sharded, 1.0 / std::sqrt(double(spec.d_ff)));
  }
  add_tensor("final_ln", 1, d, false, 0.0);
  n_dense_params_ = n_params_;
  add_experts();
  if (!allocate) return;
  params_.assign(n_params_, T(0));
  grads_.assign(n_params_, T(0));
}

template <class T>
void PalmModel<T>::add_tensor(const std::string& name, int64_t rows, int64_t cols, bool sharded, double std) {
  tensors_.push_back({name, rows, cols, n_params_, sharded, std, false, tensors_.size()});
  n_params_ += size_t(rows * cols);
}

template <class T>
bool PalmModel<T>::is_moe_layer(int layer) const {
  return spec_.moe.sparse() && (layer + 1) % spec_.moe.layer_freq == 0;
}

// This rank's experts, layer by layer; each keeps the place it has in the one-rank table, so that
// any ep initialises the same model.
template <class T>
void PalmModel<T>::add_experts() {
  const int E = spec_.moe.n_experts, local = spec_.moe.sparse() ? E / ep_ : 0;
  const int64_t d = spec_.d_model, f = spec_.moe.expert_d_ff;
  const size_t dense_tensors = tensors_.size();
  size_t moe_layer = 0;
  for (int l = 0; l < spec_.n_layers; ++l) {
    if (!is_moe_layer(l)) continue;
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
  return run(tokens, targets, batch, tp, ep, cp, timer, true, grad_scale, nullptr);
}

template <class T>
double PalmModel<T>::evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                              Communicator* ep, Communicator* cp) {
  double ce = 0;
  run(tokens, targets, batch, tp, ep, cp, nullptr, false, 1.0, &ce);
  return ce;
}

template <class T>
double PalmModel<T>::run(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                         Communicator* ep, Communicator* cp, OpTimer* timer, bool backward, double grad_scale,
                         double* plain_ce) {
  const ModelSpec& s = spec_;
  Workspace& w = ws_;
  // Context parallelism: this rank computes on R rows of each sequence, at their positions.
  ContextParallel<T>* context = nullptr;
  if (cp && cp->size() > 1) {
    if (s.moe.sparse()) throw std::invalid_argument("context parallelism with a sparse model is not implemented");
    if (!w.cp || !w.cp->is_for(cp->size(), cp->rank(), s.seq_len))
      w.cp = std::make_unique<ContextParallel<T>>(cp->size(), cp->rank(), s.seq_len);
    context = w.cp.get();
    context->select(tokens, batch, w.tokens);
    context->select(targets, batch, w.targets);
    tokens = w.tokens.data(), targets = w.targets.data();
  }
  const int64_t S = s.seq_len, R = context ? context->rows() : S, N = batch * R, d = s.d_model, q = s.head_dim;
  const int64_t V = s.vocab, hq = heads_ * q, kvq = 2 * kv_heads_ * q, ld = hq + kvq, f = ff_;
  const cpu::AttentionShape shape{batch, S, heads_, kv_heads_, q};
  const cpu::QueryRows rows{R, context ? context->positions() : nullptr};
  auto P = [&](const std::string& name) { return params_.data() + tensor(name).offset; };
  auto G = [&](const std::string& name) { return grads_.data() + tensor(name).offset; };
  auto all_reduce = [&](std::vector<T>& v, const char* name) {
    if (tp_ == 1) return;
    auto scope = time_op(timer, name);
    tp->all_reduce(v.data(), v.size());
  };
  // Under context parallelism attention reads the whole sequences' K/V, gathered from every rank
  // forward and again backward (the StepPlan's cp_kv_allgather in both phases).
  auto gather_kv = [&](const std::vector<T>& qkv, const char* name) {
    auto scope = time_op(timer, name);
    context->gather_kv(cp, qkv.data(), batch, ld, hq, kvq, w.kv);
  };
  const T* E = P("embedding");

  // resize() keeps the memory of earlier calls; every buffer below is fully overwritten before it
  // is read, except dx, which is cleared where backward starts accumulating into it.
  std::vector<T>& x = w.x;
  x.resize(size_t(N * d));
  {
    auto scope = time_op(timer, "embedding.fwd");
    for (int64_t n = 0; n < N; ++n) std::copy_n(E + int64_t(tokens[n]) * d, d, x.data() + n * d);
  }

  std::vector<LayerActivations>& acts = w.layers;
  acts.resize(size_t(s.n_layers));
  std::vector<T>& y = w.y;
  y.resize(size_t(N * d));
  // Attention branch: LN output h -> y = Attn(h) (this rank's partial sum).
  auto attention_branch = [&](LayerActivations& a, const std::string& p, const std::vector<T>& h) {
    {
      auto scope = time_op(timer, "qkv_proj.fwd");
      a.qkv.resize(size_t(N * ld));
      gemm(false, false, N, hq, d, T(1), h.data(), d, P(p + "wq"), hq, T(0), a.qkv.data(), ld);
      gemm(false, false, N, kvq, d, T(1), h.data(), d, P(p + "wkv"), kvq, T(0), a.qkv.data() + hq, ld);
    }
    if (s.rope) {
      auto scope = time_op(timer, "rope.fwd");
      cpu::rope_forward(a.qkv.data(), N, ld, heads_, q, R, rows.positions);
      cpu::rope_forward(a.qkv.data() + hq, N, ld, kv_heads_, q, R, rows.positions);
    }
    if (context) gather_kv(a.qkv, "cp_kv_allgather.fwd");
    {
      auto scope = time_op(timer, "attention.fwd");
      a.o.resize(size_t(N * hq));
      a.lse.resize(size_t(batch * heads_ * R));
      if (context)
        cpu::attention_rows_forward(shape, rows, a.qkv.data(), ld, w.kv.data(), kvq, a.o.data(), a.lse.data());
      else
        cpu::attention_forward(shape, a.qkv.data(), a.o.data(), a.lse.data());
    }
    auto scope = time_op(timer, "attn_out_proj.fwd");
    gemm(false, false, N, d, hq, T(1), a.o.data(), hq, P(p + "wo"), d, T(0), y.data(), d);
  };
  // MLP branch: adds W_out(SwiGLU(h W_in)) to y (beta = 1) or sets it; a mixture of experts in
  // the MoE layers.
  double balance_loss = 0;
  auto swiglu_mlp = [&](LayerActivations& a, const SwigluMlp& mlp, const std::vector<T>& h, T beta) {
    const int64_t width = mlp.width;
    {
      auto scope = time_op(timer, mlp.in_fwd);
      a.u.resize(size_t(N * 2 * width));
      gemm(false, false, N, 2 * width, d, T(1), h.data(), d, P(mlp.w_in), 2 * width, T(0), a.u.data(), 2 * width);
    }
    {
      auto scope = time_op(timer, mlp.act_fwd);
      a.m.resize(size_t(N * width));
      cpu::swiglu_forward(a.u.data(), a.m.data(), N, width);
    }
    auto scope = time_op(timer, mlp.out_fwd);
    gemm(false, false, N, d, width, T(1), a.m.data(), width, P(mlp.w_out), d, beta, y.data(), d);
  };
  auto mlp_branch = [&](LayerActivations& a, int l, const std::string& p, const std::vector<T>& h, T beta) {
    if (!is_moe_layer(l)) return swiglu_mlp(a, dense_mlp(p, f), h, beta);
    balance_loss += moe_forward(moe_shape(N), moe_weights(l), h.data(), y.data(), beta != T(0), a.moe, w.moe, ep,
                                timer);
    if (s.moe.shared_experts > 0) swiglu_mlp(a, shared_experts_mlp(p, s.moe), h, T(1));
  };
  auto layer_norm = [&](const std::vector<T>& in, const T* g, std::vector<T>& out, std::vector<T>& mean,
                        std::vector<T>& rstd) {
    auto scope = time_op(timer, "ln.fwd");
    out.resize(size_t(N * d));
    mean.resize(size_t(N));
    rstd.resize(size_t(N));
    cpu::layernorm_forward(in.data(), g, out.data(), mean.data(), rstd.data(), N, d);
  };
  auto add_residual = [&](std::vector<T>& into) {
    auto scope = time_op(timer, "residual.fwd");
    for (size_t i = 0; i < into.size(); ++i) into[i] += y[i];
  };

  for (int l = 0; l < s.n_layers; ++l) {
    LayerActivations& a = acts[size_t(l)];
    const std::string p = "layer" + std::to_string(l) + ".";
    a.x.assign(x.begin(), x.end());
    layer_norm(x, P(p + "ln"), a.h, a.mean, a.rstd);
    attention_branch(a, p, a.h);
    if (s.parallel_block) {
      mlp_branch(a, l, p, a.h, T(1));
      all_reduce(y, "tp_allreduce.fwd");
      add_residual(x);
    } else {
      all_reduce(y, "tp_allreduce.fwd");
      add_residual(x);
      a.x_mid.assign(x.begin(), x.end());
      layer_norm(x, P(p + "ln2"), a.h2, a.mean2, a.rstd2);
      mlp_branch(a, l, p, a.h2, T(0));
      all_reduce(y, "tp_allreduce.fwd");
      add_residual(x);
    }
  }

  std::vector<T>&hf = w.hf, &mean_f = w.mean_f, &rstd_f = w.rstd_f;
  if (palm_choices::kFinalLayerNorm) {
    auto scope = time_op(timer, "final_ln.fwd");
    hf.resize(size_t(N * d));
    mean_f.resize(size_t(N));
    rstd_f.resize(size_t(N));
    cpu::layernorm_forward(x.data(), P("final_ln"), hf.data(), mean_f.data(), rstd_f.data(), N, d);
  }
  const T logit_scale = T(1.0 / std::sqrt(double(d)));
  std::vector<T>&logits = w.logits, &log_z = w.log_z;
  {
    auto scope = time_op(timer, "logits.fwd");
    logits.resize(size_t(N * V));
    log_z.resize(size_t(N));
    gemm(false, true, N, V, d, logit_scale, hf.data(), d, E, d, T(0), logits.data(), V);
  }
  double loss;
  {
    auto scope = time_op(timer, "loss.fwd");
    loss = cpu::cross_entropy_forward(logits.data(), targets, log_z.data(), N, V, palm_choices::kZLossWeight, plain_ce);
    loss += balance_loss;
  }
  if (!backward) return loss;

  // ---- backward ----
  std::vector<T>& dlogits = logits;  // the logits are not needed once log Z is known
  {
    auto scope = time_op(timer, "loss.bwd");
    // In place: each gradient element depends only on the logit it replaces.
    cpu::cross_entropy_backward(logits.data(), targets, log_z.data(), dlogits.data(), N, V, palm_choices::kZLossWeight);
    if (grad_scale != 1.0)
      for (T& g : dlogits) g *= T(grad_scale);
  }
  std::vector<T>&dhf = w.dhf, &dx = w.dx;
  {
    auto scope = time_op(timer, "logits.bwd");
    dhf.resize(size_t(N * d));
    gemm(false, false, N, d, V, logit_scale, dlogits.data(), V, E, d, T(0), dhf.data(), d);
    gemm(true, false, V, d, N, logit_scale, dlogits.data(), V, hf.data(), d, T(1), G("embedding"), d);
  }
  {
    auto scope = time_op(timer, "final_ln.bwd");
    dx.assign(size_t(N * d), T(0));
    cpu::layernorm_backward(x.data(), P("final_ln"), mean_f.data(), rstd_f.data(), dhf.data(), dx.data(),
                            G("final_ln"), N, d);
  }

  std::vector<T>&dy = w.dy, &dh = w.dh, &dm = w.dm, &du = w.du, &d_o = w.d_o, &dqkv = w.dqkv;
  dh.resize(size_t(N * d));
  // MLP branch backward from dy: accumulates into dh (beta) and the weight gradients.
  auto swiglu_mlp_backward = [&](LayerActivations& a, const SwigluMlp& mlp, const std::vector<T>& h, T beta) {
    const int64_t width = mlp.width;
    {
      auto scope = time_op(timer, mlp.out_bwd);
      dm.resize(size_t(N * width));
      gemm(false, true, N, width, d, T(1), dy.data(), d, P(mlp.w_out), d, T(0), dm.data(), width);
      gemm(true, false, width, d, N, T(1), a.m.data(), width, dy.data(), d, T(1), G(mlp.w_out), d);
    }
    {
      auto scope = time_op(timer, mlp.act_bwd);
      du.resize(size_t(N * 2 * width));
      cpu::swiglu_backward(a.u.data(), dm.data(), du.data(), N, width);
    }
    auto scope = time_op(timer, mlp.in_bwd);
    gemm(false, true, N, d, 2 * width, T(1), du.data(), 2 * width, P(mlp.w_in), 2 * width, beta, dh.data(), d);
    gemm(true, false, d, 2 * width, N, T(1), h.data(), d, du.data(), 2 * width, T(1), G(mlp.w_in), 2 * width);
  };
  auto mlp_backward = [&](LayerActivations& a, int l, const std::string& p, const std::vector<T>& h, T beta) {
    if (!is_moe_layer(l)) return swiglu_mlp_backward(a, dense_mlp(p, f), h, beta);
    // beta is 0 here: the routed experts write dh, the shared ones add to it.
    moe_backward(moe_shape(N), moe_weights(l), h.data(), dy.data(), dh.data(), moe_grads(l), a.moe, w.moe, grad_scale,
                 ep, timer);
    if (s.moe.shared_experts > 0) swiglu_mlp_backward(a, shared_experts_mlp(p, s.moe), h, T(1));
  };
  auto attention_backward = [&](LayerActivations& a, const std::string& p, T beta) {
    {
      auto scope = time_op(timer, "attn_out_proj.bwd");
      d_o.resize(size_t(N * hq));
      gemm(false, true, N, hq, d, T(1), dy.data(), d, P(p + "wo"), d, T(0), d_o.data(), hq);
      gemm(true, false, hq, d, N, T(1), a.o.data(), hq, dy.data(), d, T(1), G(p + "wo"), d);
    }
    if (context) gather_kv(a.qkv, "cp_kv_allgather.bwd");
    {
      auto scope = time_op(timer, "attention.bwd");
      dqkv.resize(size_t(N * ld));
      if (context) {
        w.dkv.resize(w.kv.size());
        cpu::attention_rows_backward(shape, rows, a.qkv.data(), ld, w.kv.data(), kvq, a.o.data(), a.lse.data(),
                                     d_o.data(), dqkv.data(), w.dkv.data());
      } else {
        cpu::attention_backward(shape, a.qkv.data(), a.o.data(), a.lse.data(), d_o.data(), dqkv.data());
      }
    }
    if (context) {
      // Every rank's queries sent gradient to every key: each row's owner receives the sum.
      auto scope = time_op(timer, "cp_dkv_reducescatter.bwd");
      context->reduce_scatter_dkv(cp, w.dkv, batch, kvq, dqkv.data(), ld, hq);
    }
    if (s.rope) {
      auto scope = time_op(timer, "rope.bwd");
      cpu::rope_backward(dqkv.data(), N, ld, heads_, q, R, rows.positions);
      cpu::rope_backward(dqkv.data() + hq, N, ld, kv_heads_, q, R, rows.positions);
    }
    auto scope = time_op(timer, "qkv_proj.bwd");
    gemm(false, true, N, d, hq, T(1), dqkv.data(), ld, P(p + "wq"), hq, beta, dh.data(), d);
    gemm(false, true, N, d, kvq, T(1), dqkv.data() + hq, ld, P(p + "wkv"), kvq, T(1), dh.data(), d);
    gemm(true, false, d, hq, N, T(1), a.h.data(), d, dqkv.data(), ld, T(1), G(p + "wq"), hq);
    gemm(true, false, d, kvq, N, T(1), a.h.data(), d, dqkv.data() + hq, ld, T(1), G(p + "wkv"), kvq);
  };
  auto copy_residual = [&] {
    auto scope = time_op(timer, "residual.bwd");
    dy.assign(dx.begin(), dx.end());  // the gradient reaching the branch output; dx keeps flowing down the residual
  };
  auto layer_norm_backward = [&](const std::vector<T>& in, const std::string& g, const std::vector<T>& mean,
                                 const std::vector<T>& rstd) {
    auto scope = time_op(timer, "ln.bwd");
    cpu::layernorm_backward(in.data(), P(g), mean.data(), rstd.data(), dh.data(), dx.data(), G(g), N, d);
  };
  auto reduce_dh = [&] {
    if (tp_ == 1) return;
    auto scope = time_op(timer, "tp_allreduce.bwd");
    tp->all_reduce(dh.data(), dh.size());
  };

  for (int l = s.n_layers - 1; l >= 0; --l) {
    LayerActivations& a = acts[size_t(l)];
    const std::string p = "layer" + std::to_string(l) + ".";
    if (s.parallel_block) {
      copy_residual();
      mlp_backward(a, l, p, a.h, T(0));
      attention_backward(a, p, T(1));
      reduce_dh();
      layer_norm_backward(a.x, p + "ln", a.mean, a.rstd);
    } else {
      copy_residual();
      mlp_backward(a, l, p, a.h2, T(0));
      reduce_dh();
      layer_norm_backward(a.x_mid, p + "ln2", a.mean2, a.rstd2);
      copy_residual();
      attention_backward(a, p, T(0));
      reduce_dh();
      layer_norm_backward(a.x, p + "ln", a.mean, a.rstd);
    }
  }
  {
    auto scope = time_op(timer, "embedding.bwd");
    T* dE = G("embedding");
    for (int64_t n = 0; n < N; ++n) {
      T* row = dE + int64_t(tokens[n]) * d;
      for (int64_t i = 0; i < d; ++i) row[i] += dx[size_t(n * d + i)];
    }
  }
  return loss;
}

template class PalmModel<float>;
template class PalmModel<double>;

}  // namespace palmsim
