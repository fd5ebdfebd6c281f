#include "kernels/calibrate/step_op_benchmarks.h"

#include "kernels/adafactor.h"
#include "kernels/context_parallel.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/microbench.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/moe_mlp.h"
#include "kernels/palm_choices.h"
#include "kernels/palm_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace palmsim {

namespace {

std::vector<float> filled(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937 rng{static_cast<uint32_t>(seed)};
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// A mixture of experts' memory-bound ops (route, permute, expert activation, unpermute) as the
// trainer runs them: one MoE layer forward and backward on this rank's N tokens, timed per op over
// `reps` calls (means). All experts are local: under expert parallelism a rank still routes its N
// tokens and, balanced, its experts compute N x top_k rows, so these ops keep their sizes.
void time_moe_ops(const ModelSpec& m, int64_t N, int reps, std::map<std::string, double>& t) {
  const int64_t d = m.d_model, f = m.moe.expert_d_ff, E = m.moe.n_experts;
  const MoeShape shape{N, d, m.moe.n_experts, m.moe.top_k, f, m.moe.capacity_factor};
  const float scale = 1.0f / std::sqrt(float(d));
  std::vector<float> router = filled(size_t(d * E), 11, scale), router_grad(router.size(), 0.0f);
  std::vector<std::vector<float>> w_in, w_out, g_in, g_out;
  for (int64_t e = 0; e < E; ++e) {
    w_in.push_back(filled(size_t(d * 2 * f), 12 + uint64_t(e), scale));
    w_out.push_back(filled(size_t(f * d), 1000 + uint64_t(e), 1.0f / std::sqrt(float(f))));
    g_in.emplace_back(w_in.back().size(), 0.0f);
    g_out.emplace_back(w_out.back().size(), 0.0f);
  }
  MoeWeights<float> w;
  MoeGrads<float> g;
  w.router = router.data(), g.router = router_grad.data();
  for (int64_t e = 0; e < E; ++e) {
    w.w_in.push_back(w_in[size_t(e)].data()), w.w_out.push_back(w_out[size_t(e)].data());
    g.w_in.push_back(g_in[size_t(e)].data()), g.w_out.push_back(g_out[size_t(e)].data());
  }
  const std::vector<float> h = filled(size_t(N * d), 13), dy = filled(size_t(N * d), 14, 1e-3f);
  std::vector<float> y(h.size()), dh(h.size());
  MoeActivations<float> acts;
  MoeScratch<float> scratch;
  OpTimer timer;
  for (int r = 0; r <= reps; ++r) {  // r = 0 warms up, untimed
    OpTimer* on = r > 0 ? &timer : nullptr;
    moe_forward(shape, w, h.data(), y.data(), false, acts, scratch, nullptr, on);
    moe_backward(shape, w, h.data(), dy.data(), dh.data(), g, acts, scratch, 1.0, nullptr, on);
  }
  for (const auto& [op, seconds] : timer.seconds()) t[op] = seconds / reps;
  // The shared experts' activation: the SwiGLU kernel the trainer calls, at their width.
  const int64_t shared = int64_t(m.moe.shared_experts) * f;
  if (shared == 0) return;
  const std::vector<float> u = filled(size_t(N * 2 * shared), 15), dm = filled(size_t(N * shared), 16);
  std::vector<float> hidden(dm.size()), du(u.size());
  t["moe_shared_act.fwd"] = mean_seconds_of(reps, [&] { cpu::swiglu_forward(u.data(), hidden.data(), N, shared); });
  t["moe_shared_act.bwd"] = mean_seconds_of(reps, [&] { cpu::swiglu_backward(u.data(), dm.data(), du.data(), N, shared); });
}

// One rank's shapes, as PalmModel shards them: heads and d_ff split, K/V heads split when there
// are at least tp of them (else every rank keeps them all), the vocabulary whole; under context
// parallelism rank 0's rows of each sequence. The residual-stream buffers are shared by the norm,
// residual and embedding timings, as the trainer's are.
struct RankOps {
  RankOps(const ModelSpec& model, const Layout& layout, int repetitions)
      : m(model), cp(layout.cp), reps(repetitions), mb(layout.microbatch), S(m.seq_len), R(S / cp), N(mb * R),
        d(m.d_model), q(m.head_dim), V(m.vocab), f(m.d_ff / layout.tp), heads(m.n_heads / layout.tp),
        kv(m.n_kv_heads >= layout.tp ? m.n_kv_heads / layout.tp : m.n_kv_heads), ld((heads + 2 * kv) * q),
        positions(cp > 1 ? context_positions(S, cp, 0) : std::vector<int32_t>{}),
        pos(cp > 1 ? positions.data() : nullptr), x(filled(size_t(N * d), 1)), dy(filled(size_t(N * d), 2)),
        y(size_t(N * d)), dx(size_t(N * d)) {}

  void norms() {
    const auto g = filled(size_t(d), 3);
    std::vector<float> mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N)), dg(static_cast<size_t>(d));
    t["ln.fwd"] = mean_seconds_of(reps, [&] { cpu::layernorm_forward(x.data(), g.data(), y.data(), mean.data(), rstd.data(), N, d); });
    t["ln.bwd"] = mean_seconds_of(reps, [&] {
      cpu::layernorm_backward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dg.data(), N, d);
    });
    t["final_ln.fwd"] = t["ln.fwd"];
    t["final_ln.bwd"] = t["ln.bwd"];
  }

  // RoPE and attention; under context parallelism this rank's rows against the whole sequences'
  // gathered K/V, as the trainer runs them.
  void attention() {
    auto qkv = filled(size_t(N * ld), 4, 0.5f);
    if (m.rope) {
      t["rope.fwd"] = mean_seconds_of(reps, [&] {
        cpu::rope_forward(qkv.data(), N, ld, heads, q, R, pos);
        cpu::rope_forward(qkv.data() + heads * q, N, ld, kv, q, R, pos);
      });
      t["rope.bwd"] = mean_seconds_of(reps, [&] {
        cpu::rope_backward(qkv.data(), N, ld, heads, q, R, pos);
        cpu::rope_backward(qkv.data() + heads * q, N, ld, kv, q, R, pos);
      });
    }
    const cpu::AttentionShape shape{mb, S, heads, kv, q};
    std::vector<float> o(static_cast<size_t>(N * heads * q)), lse(static_cast<size_t>(mb * heads * R)), dqkv(qkv.size());
    auto d_o = filled(o.size(), 5);
    if (cp == 1) {
      t["attention.fwd"] = mean_seconds_of(reps, [&] { cpu::attention_forward(shape, qkv.data(), o.data(), lse.data()); });
      t["attention.bwd"] = mean_seconds_of(reps, [&] {
        cpu::attention_backward(shape, qkv.data(), o.data(), lse.data(), d_o.data(), dqkv.data());
      });
      return;
    }
    const cpu::QueryRows rows{R, pos};
    const int64_t kvq = 2 * kv * q;
    auto gathered = filled(size_t(mb * S * kvq), 17, 0.5f);
    std::vector<float> dkv(gathered.size());
    t["attention.fwd"] = mean_seconds_of(reps, [&] {
      cpu::attention_rows_forward(shape, rows, qkv.data(), ld, gathered.data(), kvq, o.data(), lse.data());
    });
    t["attention.bwd"] = mean_seconds_of(reps, [&] {
      cpu::attention_rows_backward(shape, rows, qkv.data(), ld, gathered.data(), kvq, o.data(), lse.data(), d_o.data(),
                                   dqkv.data(), dkv.data());
    });
  }

  // SwiGLU, and the residual: forward adds the branch sum into x, backward copies the gradient.
  void elementwise() {
    auto u = filled(size_t(N * 2 * f), 6), dh = filled(size_t(N * f), 7);
    std::vector<float> h(static_cast<size_t>(N * f)), du(u.size());
    t["mlp_act.fwd"] = mean_seconds_of(reps, [&] { cpu::swiglu_forward(u.data(), h.data(), N, f); });
    t["mlp_act.bwd"] = mean_seconds_of(reps, [&] { cpu::swiglu_backward(u.data(), dh.data(), du.data(), N, f); });
    t["residual.fwd"] = mean_seconds_of(reps, [&] {
      for (size_t i = 0; i < y.size(); ++i) x[i] += y[i];
    });
    t["residual.bwd"] = mean_seconds_of(reps, [&] { dx.assign(dy.begin(), dy.end()); });
  }

  void loss_and_embedding() {
    auto logits = filled(size_t(N * V), 8);
    std::vector<int32_t> targets(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) targets[size_t(i)] = int32_t((i * 7919) % V);
    std::vector<float> log_z(static_cast<size_t>(N)), dlogits(logits.size());
    t["loss.fwd"] = mean_seconds_of(reps, [&] {
      cpu::cross_entropy_forward(logits.data(), targets.data(), log_z.data(), N, V, palm_choices::kZLossWeight);
    });
    t["loss.bwd"] = mean_seconds_of(reps, [&] {
      cpu::cross_entropy_backward(logits.data(), targets.data(), log_z.data(), dlogits.data(), N, V, palm_choices::kZLossWeight);
    });
    auto table = filled(size_t(V * d), 9);
    t["embedding.fwd"] = mean_seconds_of(reps, [&] {
      for (int64_t n = 0; n < N; ++n) std::copy_n(table.data() + int64_t(targets[size_t(n)]) * d, d, x.data() + n * d);
    });
    t["embedding.bwd"] = mean_seconds_of(reps, [&] {
      for (int64_t n = 0; n < N; ++n) {
        float* row = table.data() + int64_t(targets[size_t(n)]) * d;
        for (int64_t i = 0; i < d; ++i) row[i] += dx[size_t(n * d + i)];
      }
    });
  }

  // The optimizer and the global norm over every parameter of this rank (its experts included).
  void optimizer(const Layout& layout) {
    PalmModel<float> model(m, layout.tp, 0, true, layout.ep, 0);
    model.init(1);
    std::vector<float> grads = filled(model.parameter_count(), 10, 1e-3f);
    Adafactor<float> adafactor(OptimizerConfig{}, 0, model.parameter_count());
    std::vector<double> rms(model.tensors().size(), 0.1);
    int64_t step = 1;
    // As the trainer's step does: clear the gradients, stage the reduced ones, update.
    std::vector<float> cleared(grads.size()), staged(grads.size());
    t["optimizer.opt"] = mean_seconds_of(reps, [&] {
      std::fill(cleared.begin(), cleared.end(), 0.0f);
      staged.assign(grads.begin(), grads.end());
      adafactor.update(model.params().data(), grads.data(), model.tensors(), rms, step++, 1.0);
    });
    t["grad_norm.opt"] = mean_seconds_of(reps, [&] {
      auto a = sum_of_squares_per_tensor(grads.data(), 0, model.parameter_count(), model.tensors());
      auto b = sum_of_squares_per_tensor(model.params().data(), 0, model.parameter_count(), model.tensors());
      rms[0] = a[0] + b[0];
    });
  }

  const ModelSpec& m;
  const int cp, reps;
  const int64_t mb, S, R, N, d, q, V, f, heads, kv, ld;
  const std::vector<int32_t> positions;
  const int32_t* pos;
  std::vector<float> x, dy, y, dx;
  std::map<std::string, double> t;
};

}  // namespace

std::map<std::string, double> time_step_ops(const ModelSpec& m, const Layout& layout, int reps) {
  RankOps ops(m, layout, reps);
  ops.norms();
  ops.attention();
  ops.elementwise();
  ops.loss_and_embedding();
  ops.optimizer(layout);
  if (m.moe.sparse()) time_moe_ops(m, ops.N, reps, ops.t);
  return ops.t;
}

}  // namespace palmsim
