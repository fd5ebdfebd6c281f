#include "model/step_plan.h"

#include "model/accounting.h"
#include "model/input_error.h"
#include "model/pipeline_schedule.h"

#include <algorithm>
#include <cmath>
#include <string_view>

namespace palmsim {

const char* to_string(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::all_reduce: return "all_reduce";
    case CollectiveKind::reduce_scatter: return "reduce_scatter";
    case CollectiveKind::all_gather: return "all_gather";
    case CollectiveKind::all_to_all: return "all_to_all";
  }
  return "?";
}

const char* to_string(Phase p) {
  switch (p) {
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::recompute: return "recompute";
    case Phase::optimizer: return "optimizer";
  }
  return "?";
}

const char* phase_suffix(Phase p) {
  switch (p) {
    case Phase::forward: return "fwd";
    case Phase::backward: return "bwd";
    case Phase::recompute: return "rec";
    case Phase::optimizer: return "opt";
  }
  return "?";
}

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::gemm: return "gemm";
    case OpKind::attention: return "attention";
    case OpKind::memory: return "memory";
    case OpKind::collective: return "collective";
    case OpKind::p2p: return "p2p";
  }
  return "?";
}

const char* to_string(CommGroup g) {
  switch (g) {
    case CommGroup::tp: return "tp";
    case CommGroup::pp: return "pp";
    case CommGroup::dp: return "dp";
    case CommGroup::cp: return "cp";
    case CommGroup::ep: return "ep";
    case CommGroup::etp: return "etp";
    case CommGroup::edp: return "edp";
    case CommGroup::cross_pod: return "cross_pod";
  }
  return "?";
}

double StepPlan::occurrences(const Op& op) const {
  switch (op.repeat) {
    case Repeat::per_layer_microbatch:
      return op.multiplicity * layers_per_stage * double(n_microbatches);
    case Repeat::per_microbatch: return op.multiplicity * double(n_microbatches);
    case Repeat::per_step: return op.multiplicity;
  }
  return 0.0;
}

namespace {

// Builds the op list. Shapes are per tensor-parallel shard: heads, KV heads (replicated when there
// are fewer KV heads than tp ranks, as with PaLM's single K/V head) and d_ff are split tp ways.
class PlanBuilder {
 public:
  PlanBuilder(StepPlan& plan) : p_(plan), m_(plan.model), l_(plan.layout), o_(plan.options) {
    t_ = double(plan.tokens_per_microbatch);
    heads_ = m_.n_heads / l_.tp;
    kv_ = m_.n_kv_heads >= l_.tp ? m_.n_kv_heads / l_.tp : m_.n_kv_heads;
    ff_ = m_.d_ff / l_.tp;
    sp_div_ = l_.sp ? l_.tp : 1;
    w_ = o_.activation_bytes;
    moe_share_ = double(m_.moe_layers()) / m_.n_layers;
    dense_share_ = 1.0 - moe_share_;
    const LayerParametersOnChip per_layer = layer_parameters_on_chip(m_, l_);
    layer_params_ = per_layer.dense;
    expert_layer_params_ = per_layer.experts;
  }

  void build() {
    layer(Phase::forward, 1.0, true);
    layer_backward();
    recompute();
    stage_ends();
    pipeline_sends();
    data_parallel();
    optimizer();
  }

 private:
  Op& add(const char* name, Phase phase, OpKind kind, Repeat repeat, double multiplicity = 1.0) {
    Op op;
    op.name = name;
    op.phase = phase;
    op.kind = kind;
    op.repeat = repeat;
    op.multiplicity = multiplicity;
    p_.ops.push_back(op);
    return p_.ops.back();
  }

  Op& gemm(const char* name, Phase phase, int64_t m, int64_t n, int64_t k, double mult) {
    Op& op = add(name, phase, OpKind::gemm, Repeat::per_layer_microbatch, mult);
    op.m = m, op.n = n, op.k = k;
    op.flops = 2.0 * double(m) * double(n) * double(k);
    op.bytes = w_ * (double(m) * k + double(k) * n + double(m) * n);
    return op;
  }

  // Forward GEMM and, in backward, its two gradient GEMMs (input grad and weight grad).
  void linear(const char* name, Phase phase, int64_t n_out, int64_t k_in, double mult, int64_t rows = 0) {
    const int64_t tokens = rows > 0 ? rows : p_.tokens_per_microbatch;
    if (phase == Phase::backward) {
      gemm(name, phase, tokens, k_in, n_out, mult);   // dX = dY W^T
      gemm(name, phase, k_in, n_out, tokens, mult).weight_gradient = true;  // dW = X^T dY
    } else {
      gemm(name, phase, tokens, n_out, k_in, mult);
    }
  }

  void memory(const char* name, Phase phase, double bytes, double mult, double kernels = 1) {
    Op& op = add(name, phase, OpKind::memory, Repeat::per_layer_microbatch, mult);
    const Unfused u = o_.fused_elementwise ? Unfused{} : unfused_cost(name);
    op.bytes = bytes * u.bytes;
    op.kernels = kernels * u.kernels;
  }

  // Eager (unfused) element-wise ops run as several kernels, each reading and writing its tensor:
  // a norm as square, mean, rsqrt-scale and weight (~4 passes), RoPE as rotate-half, two
  // multiplies and an add (~4), SwiGLU as SiLU then multiply (5 tensor passes instead of 3), in
  // the dense MLP and the experts alike.
  struct Unfused {
    double bytes = 1, kernels = 1;
  };
  Unfused unfused_cost(std::string_view name) const {
    if (name == "ln" || name == "rope") return {4.0, 4.0};
    const bool activation = name == "mlp_act" || name == "moe_expert_act" || name == "moe_shared_act";
    if (activation && ffn_is_gated(m_.ffn)) return {5.0 / 3.0, 2.0};
    return {};
  }

  // Kernels of the element-wise work after a block's two branches (attention, MLP): fused, one
  // bias+dropout+add per branch (one for both in a parallel block); unfused, bias add, dropout
  // and residual add each their own kernel.
  double residual_kernels(Phase phase) const {
    const double branches = 2.0;
    if (o_.fused_elementwise) return m_.parallel_block ? 1.0 : branches;
    if (phase == Phase::backward) return branches * (m_.dropout ? 1.0 : 0.0) + 1.0;
    return branches * ((m_.biases ? 1.0 : 0.0) + (m_.dropout ? 1.0 : 0.0) + 1.0);
  }
  // Activation (and, with biases, the MLP bias before it): one fused kernel, or two.
  double activation_kernels() const { return o_.fused_elementwise || !m_.biases ? 1.0 : 2.0; }

  void tp_collective(const char* name, Phase phase, CollectiveKind kind, double mult) {
    if (l_.tp == 1 || mult == 0) return;
    Op& op = add(name, phase, OpKind::collective, Repeat::per_layer_microbatch, mult);
    op.collective = kind;
    op.group = CommGroup::tp;
    const bool fp8 = kind == CollectiveKind::all_gather && o_.fp8_linears && o_.fp8_tp_allgather;
    op.comm_bytes = t_ * double(m_.d_model) * (fp8 ? 1.0 : w_);
    if (o_.overlap_tp_comm) op.overlap = Overlap::with_layer_compute;
  }

  // Of the layers, those whose MLP is a tensor-parallel region: all of them, but MoE layers with
  // tp > 1, which route their sequence-parallel tokens as they are (moe_mlp), gather nothing.
  double mlp_tp_share() const { return l_.tp > 1 ? dense_share_ : 1.0; }

  // The collective that enters a tensor-parallel region (f in Megatron: all-gather with sequence
  // parallelism, nothing without) and the one that leaves it (g: reduce-scatter or all-reduce).
  void enter_tp(Phase phase, double mult) {
    if (l_.sp) tp_collective("tp_allgather", phase, CollectiveKind::all_gather, mult);
  }
  void leave_tp(Phase phase, double mult) {
    if (l_.sp)
      tp_collective("tp_reducescatter", phase, CollectiveKind::reduce_scatter, mult);
    else
      tp_collective("tp_allreduce", phase, CollectiveKind::all_reduce, mult);
  }

  // Per token of a microbatch, in an MoE layer: the elements its linears cast to fp8 on this rank,
  // inputs forward or output gradients backward. The experts' rows are the rank's
  // sequence-parallel tokens' top_k dispatched copies (times the capacity factor or the
  // imbalance, as their GEMMs are priced); the shared experts see every token, 1/tp of their
  // width; the router stays in bf16/fp32.
  double moe_fp8_cast(bool output_grads) const {
    const MoeSpec& e = m_.moe;
    const double d = double(m_.d_model), gates = ffn_is_gated(m_.ffn) ? 2.0 : 1.0;
    const double rows = e.top_k * e.load() / sp_div_;
    // W_in reads d and writes gates x width; W_out reads width and writes d. Expert tensor
    // parallelism gathers etp times the rows, each 1/etp of the width: the d-wide tensors grow.
    auto mlp = [&](double width, double gathered) {
      return output_grads ? gates * width + gathered * d : gathered * d + width;
    };
    const double shared = double(e.shared_experts) * double(e.expert_d_ff) / l_.tp;
    return rows * mlp(double(e.expert_d_ff), l_.etp) + (shared > 0 ? mlp(shared, 1.0) : 0.0);
  }

  // A mixture-of-experts MLP (GShard/Switch dispatch, Megatron-Core's token dispatcher): the router
  // scores every expert, tokens are permuted into expert order and sent to the experts' ranks by an
  // all-to-all over the expert-parallel group, each rank runs its local experts as one grouped GEMM
  // per projection, and a second all-to-all brings the results back to be unpermuted and summed
  // with the router's weights. Backward runs the same in reverse (two all-to-alls more). Each rank
  // sends t x top_k token rows (fewer where the stack sends a token once per rank: moe_dispatch);
  // its local experts compute t x top_k, times the capacity factor
  // (padded buffers) or the imbalance of a dropless router on the busiest rank. With tp > 1 the
  // layer routes the rank's own sequence-parallel share of the tokens, and the expert-parallel
  // group folds over the tp x cp x dp ranks. Expert tensor parallelism (etp > 1) splits each
  // expert's hidden width over etp ranks: after the dispatch they all-gather the rows their
  // experts received, each computes all of them at 1/etp of the width, and a reduce-scatter
  // returns each rank's rows summed before the combine (Megatron-Core's all-to-all token
  // dispatcher: gather_from_sequence_parallel_region and reduce_scatter_to_sequence_parallel_region
  // over the expert tensor-parallel group); backward gathers the output gradients and
  // reduce-scatters the input gradients.
  void moe_mlp(Phase phase, double mult) {
    const MoeSpec& e = m_.moe;
    const bool bwd = phase == Phase::backward;
    const double t = t_ / sp_div_;  // the sequence-parallel share (tp > 1 requires sp: check_layout)
    const double d = double(m_.d_model), routed = t * e.top_k;
    const int gates = ffn_is_gated(m_.ffn) ? 2 : 1;
    const int local = e.n_experts / l_.ep;
    // Rows a local expert computes: what this rank received, gathered over the etp ranks.
    const int64_t per_expert = int64_t(std::ceil(routed * e.load() / local)) * l_.etp;
    const int64_t eff = e.expert_d_ff / l_.etp;
    // This rank's send buffer: a row per chosen expert, or per rank that holds one of them
    // (PlanOptions::moe_dispatch); the combine sends as many back.
    const double rows_sent = o_.moe_dispatch == TokenDispatch::per_rank ? t * e.ranks_per_token(l_.ep) : routed;
    auto all_to_all = [&](const char* name) {
      if (l_.ep == 1) return;
      Op& op = add(name, phase, OpKind::collective, Repeat::per_layer_microbatch, mult);
      op.collective = CollectiveKind::all_to_all;
      op.group = CommGroup::ep;
      op.comm_bytes = rows_sent * d * w_;
      if (o_.moe_dispatch == TokenDispatch::per_rank) op.per_rank_routing = {e.n_experts, e.top_k};
    };
    auto expert_tensor_parallel = [&](const char* name, CollectiveKind kind) {
      if (l_.etp == 1) return;
      Op& op = add(name, phase, OpKind::collective, Repeat::per_layer_microbatch, mult);
      op.collective = kind;
      op.group = CommGroup::etp;
      op.comm_bytes = double(per_expert) * local * d * w_;  // the gathered rows, as tp_collective counts
    };
    // Grouped GEMMs of the local experts (batch = experts on this rank), and their gradients.
    auto experts = [&](const char* name, int64_t n_out, int64_t k_in) {
      auto grouped = [&](int64_t m, int64_t n, int64_t k) -> Op& {
        Op& op = add(name, phase, OpKind::gemm, Repeat::per_layer_microbatch, mult);
        op.m = m, op.n = n, op.k = k, op.batch = local;
        op.flops = 2.0 * double(m) * double(n) * double(k) * local;
        op.bytes = w_ * local * (double(m) * k + double(k) * n + double(m) * n);
        return op;
      };
      if (bwd) {
        grouped(per_expert, k_in, n_out);
        grouped(k_in, n_out, per_expert).weight_gradient = true;
      } else {
        grouped(per_expert, n_out, k_in);
      }
    };
    const double grad = bwd ? 2.0 : 1.0;  // memory-bound backward ops move about twice the bytes
    auto route = [&] {  // router GEMM(s), then softmax, top-k and the load-balancing loss in fp32
      linear("moe_router", phase, e.n_experts, m_.d_model, mult, int64_t(t));
      memory("moe_route", phase, grad * t * e.n_experts * 4.0 * 3.0, mult, bwd ? 3.0 : 4.0);
      // Dropless, the tokens each expert receives are known only on the device, and the host needs
      // them: they are the all-to-all's split sizes and the grouped GEMMs' shapes (Megatron-Core's
      // all-to-all dispatcher copies them to the host and waits). Each forward, recomputed ones
      // included, synchronises once; a capacity factor fixes every shape in advance.
      if (!bwd && e.capacity_factor == 0) p_.ops.back().host_syncs = 1;
    };
    auto dispatch = [&] {
      memory("moe_permute", phase, grad * 2.0 * routed * d * w_, mult, 2.0);
      all_to_all("moe_dispatch");
    };
    auto combine = [&] {
      all_to_all("moe_combine");
      memory("moe_unpermute", phase, grad * (2.0 * routed + t) * d * w_, mult, 2.0);
    };
    // Shared experts: an MLP every token uses, tensor-parallel like the dense layers' (Megatron-Core's
    // SharedExpertMLP: the sequence-parallel tokens gathered, the width split tp ways, the output
    // reduce-scattered; backward gathers the output gradients and reduce-scatters the input's).
    auto shared = [&](bool reverse) {
      if (e.shared_experts == 0) return;
      const int64_t sff = int64_t(e.shared_experts) * e.expert_d_ff / l_.tp;
      enter_tp(phase, mult);
      if (!reverse) linear("moe_shared_in", phase, int64_t(gates) * sff, m_.d_model, mult);
      else linear("moe_shared_out", phase, m_.d_model, sff, mult);
      memory("moe_shared_act", phase, grad * (gates + 1.0) * t_ * sff * w_, mult, activation_kernels());
      if (!reverse) linear("moe_shared_out", phase, m_.d_model, sff, mult);
      else linear("moe_shared_in", phase, int64_t(gates) * sff, m_.d_model, mult);
      leave_tp(phase, mult);
    };
    const double act_bytes = grad * (gates + 1.0) * double(per_expert) * local * double(eff) * w_;
    if (!bwd) {
      route();
      dispatch();
      expert_tensor_parallel("moe_etp_allgather", CollectiveKind::all_gather);
      experts("moe_expert_in", int64_t(gates) * eff, m_.d_model);
      memory("moe_expert_act", phase, act_bytes, mult, activation_kernels());
      experts("moe_expert_out", m_.d_model, eff);
      expert_tensor_parallel("moe_etp_reducescatter", CollectiveKind::reduce_scatter);
      combine();
      shared(false);
    } else {  // reverse order: the combine's gradient is dispatched first
      shared(true);
      memory("moe_unpermute", phase, grad * (2.0 * routed + t) * d * w_, mult, 2.0);
      all_to_all("moe_combine");
      expert_tensor_parallel("moe_etp_allgather", CollectiveKind::all_gather);
      experts("moe_expert_out", m_.d_model, eff);
      memory("moe_expert_act", phase, act_bytes, mult, activation_kernels());
      experts("moe_expert_in", int64_t(gates) * eff, m_.d_model);
      expert_tensor_parallel("moe_etp_reducescatter", CollectiveKind::reduce_scatter);
      all_to_all("moe_dispatch");
      memory("moe_permute", phase, grad * 2.0 * routed * d * w_, mult, 2.0);
      route();
    }
  }

  // This rank's share: its T/cp queries (two balanced chunks under context parallelism) against
  // the whole sequence's keys.
  double attention_flops() const {
    return 4.0 * double(p_.layout.microbatch) * heads_ * double(m_.seq_len) * m_.seq_len * m_.head_dim / l_.cp;
  }

  double attention_bytes() const {
    const double qkvo = t_ * (2.0 * heads_ + 2.0 * kv_) * m_.head_dim * w_;
    if (o_.fused_attention) return qkvo;
    // Materialized scores: write QK^T, softmax read + write, read for PV; dropout reads, writes and
    // stores a one-byte mask.
    const double scores = double(l_.microbatch) * heads_ * double(m_.seq_len) * m_.seq_len / l_.cp;
    return qkvo + scores * (4.0 * w_ + (m_.dropout ? 2.0 * w_ + 1.0 : 0.0));
  }

  void attention(Phase phase, double mult) {
    Op& op = add("attention", phase, OpKind::attention, Repeat::per_layer_microbatch, mult);
    const double fwd_flops = attention_flops();
    // A fused kernel skips the masked half of causal attention but recomputes scores in backward.
    const double causal = o_.fused_attention ? 0.5 : 1.0;
    const double factor = phase == Phase::backward ? (o_.fused_attention ? 2.5 : 2.0) : 1.0;
    op.flops = fwd_flops * causal * factor;
    op.bytes = attention_bytes() * (phase == Phase::backward ? 2.0 : 1.0);
    op.batch = int64_t(l_.microbatch) * heads_;
    op.m = m_.seq_len / l_.cp, op.n = m_.seq_len, op.k = m_.head_dim;
    // Fused: one kernel forward; backward a preprocessing pass, the main kernel and the dQ
    // conversion. Materialized: Q/K/V layout copies, scores GEMM, scale-mask-softmax, dropout,
    // context GEMM and the output permute forward; about twice that backward.
    const double materialized = 6.0 + (m_.dropout ? 1.0 : 0.0);
    if (o_.fused_attention) op.kernels = phase == Phase::backward ? 3.0 : 1.0;
    else op.kernels = phase == Phase::backward ? 2.0 * materialized - 2.0 : materialized;
    if (l_.cp > 1) context_parallel_kv(phase);
  }

  // Context parallelism: each rank's attention needs every rank's K and V, all-gathered beside the
  // layer's compute or passed round a ring beside the attention on the blocks already in hand
  // (PlanOptions::cp_comm); backward gathers them again and reduce-scatters their gradients (the
  // ring: K/V and dK/dV round again). Either moves the same bytes as a ring all-gather and
  // reduce-scatter: the whole sequence's K/V of this rank's heads.
  void context_parallel_kv(Phase phase) {
    const double kv_bytes = t_ * l_.cp * 2.0 * kv_ * double(m_.head_dim) * w_;
    const bool ring = o_.cp_comm == ContextComm::ring;
    auto collective = [&](const char* name, CollectiveKind kind) {
      Op& op = add(name, phase, OpKind::collective, Repeat::per_layer_microbatch);
      op.collective = kind;
      op.group = CommGroup::cp;
      op.comm_bytes = kv_bytes;
      op.overlap = ring ? Overlap::with_attention : Overlap::with_layer_compute;
    };
    collective(ring ? "cp_kv_ring" : "cp_kv_allgather", CollectiveKind::all_gather);
    if (phase == Phase::backward)
      collective(ring ? "cp_dkv_ring" : "cp_dkv_reducescatter", CollectiveKind::reduce_scatter);
  }

  // One layer's forward ops. `gemm_share` scales the non-attention work (PaLM recomputes 75 %).
  void layer(Phase phase, double gemm_share, bool with_leave) {
    const double d = double(m_.d_model), q = double(m_.head_dim);
    const double norms = m_.parallel_block ? 1.0 : 2.0;
    const double act_tokens = t_ / sp_div_;
    memory("ln", phase, 2.0 * act_tokens * d * w_, norms * gemm_share);
    enter_tp(phase, 1.0);
    linear("qkv_proj", phase, int64_t((heads_ + 2 * kv_) * q), m_.d_model, gemm_share);
    if (m_.rope) memory("rope", phase, 2.0 * t_ * (heads_ + kv_) * q * w_, gemm_share, 2.0);
    attention(phase, 1.0);
    linear("attn_out_proj", phase, m_.d_model, int64_t(heads_ * q), gemm_share);
    if (!m_.parallel_block) {  // the MLP of a serial block needs the attention branch's output
      leave_tp(phase, 1.0);
      enter_tp(phase, mlp_tp_share());
    }
    const int gates = ffn_is_gated(m_.ffn) ? 2 : 1;
    if (dense_share_ > 0) {
      linear("mlp_in_proj", phase, int64_t(gates) * ff_, m_.d_model, gemm_share * dense_share_);
      memory("mlp_act", phase, (gates + 1.0) * t_ * ff_ * w_, gemm_share * dense_share_, activation_kernels());
      linear("mlp_out_proj", phase, m_.d_model, ff_, gemm_share * dense_share_);
    }
    if (moe_share_ > 0) moe_mlp(phase, gemm_share * moe_share_);
    if (with_leave) leave_tp(phase, mlp_tp_share());
    if (o_.fp8_linears) {
      // Casts to fp8 (read bf16, write fp8, amax) of the linears' inputs: QKV and output
      // projection, then the dense MLP's two or, in MoE layers, the experts' (their dispatched
      // rows) and the shared experts'; weights are cast once per microbatch too.
      double inputs = d + heads_ * q + dense_share_ * (d + ff_) + moe_share_ * moe_fp8_cast(false);
      if (o_.fp8_rowwise) inputs = 2.0 * ((3.0 + gates) * d + heads_ * q + ff_);
      memory("fp8_cast", phase, 3.0 * t_ * inputs + 3.0 * (layer_params_ + expert_layer_params_), gemm_share, 8.0);
    }
    // Residual adds (parallel block: x + attn + mlp at once), dropout where the model has it.
    const double adds = m_.parallel_block ? 4.0 : 6.0;
    const double dropout = m_.dropout ? 2.0 * (2.0 * w_ + 1.0) : 0.0;
    memory("residual", phase, act_tokens * d * (adds * w_ + dropout), gemm_share, residual_kernels(phase));
    if (m_.biases && !o_.fused_elementwise) {
      // Unfused biases: the QKV bias rides in its GEMM (addmm); the output, MLP-in and MLP-out
      // biases are element-wise passes over their outputs, read and written.
      memory("bias_add", phase, 2.0 * w_ * t_ * (2.0 * d + double(gates) * ff_), gemm_share, 3.0);
    }
  }

  void layer_backward() {
    const Phase b = Phase::backward;
    const double d = double(m_.d_model), q = double(m_.head_dim);
    const double act_tokens = t_ / sp_div_;
    const int gates = ffn_is_gated(m_.ffn) ? 2 : 1;
    const double adds = m_.parallel_block ? 4.0 : 6.0;
    const double dropout = m_.dropout ? 2.0 * (2.0 * w_ + 1.0) : 0.0;
    // Reverse order; memory-bound backward ops move about twice their forward bytes.
    memory("residual", b, act_tokens * d * (adds * w_ + dropout), 1.0, residual_kernels(b));
    if (o_.fp8_linears) {
      // The output gradients of the linears cast to fp8 for the input- and weight-gradient GEMMs.
      const double grads = (heads_ + 2.0 * kv_) * q + d + dense_share_ * (d + double(gates) * ff_) +
                           moe_share_ * moe_fp8_cast(true);
      memory("fp8_cast", b, (o_.fp8_rowwise ? 2.0 : 1.0) * 3.0 * t_ * grads, 1.0, 4.0);
    }
    enter_tp(b, mlp_tp_share());  // all-gather of the output gradient with sequence parallelism
    if (dense_share_ > 0) {
      linear("mlp_out_proj", b, m_.d_model, ff_, dense_share_);
      memory("mlp_act", b, 2.0 * (gates + 1.0) * t_ * ff_ * w_, dense_share_, activation_kernels());
      linear("mlp_in_proj", b, int64_t(gates) * ff_, m_.d_model, dense_share_);
    }
    if (moe_share_ > 0) moe_mlp(b, moe_share_);
    if (!m_.parallel_block) {
      leave_tp(b, mlp_tp_share());
      enter_tp(b, 1.0);
    }
    linear("attn_out_proj", b, m_.d_model, int64_t(heads_ * q), 1.0);
    attention(b, 1.0);
    if (m_.rope) memory("rope", b, 2.0 * t_ * (heads_ + kv_) * q * w_, 1.0, 2.0);
    // Replicated K/V heads (multi-query attention, n_kv_heads < tp): each rank's query heads give a
    // partial dK and dV. Nothing is reduced here: the K/V projection is linear, so the partial
    // input gradients sum in the layer's dh all-reduce, and the partial weight gradients once per
    // step (tp_kv_grad_allreduce), as the trainer does.
    linear("qkv_proj", b, int64_t((heads_ + 2 * kv_) * q), m_.d_model, 1.0);
    leave_tp(b, 1.0);
    // LayerNorm backward: the input gradient and the gamma/beta reduction, two kernels.
    memory("ln", b, 2.0 * 2.0 * act_tokens * d * w_, m_.parallel_block ? 1.0 : 2.0, 2.0);
    if (m_.biases) {
      // Bias gradients: each linear's output gradient summed over tokens (QKV, out, MLP in, out).
      const double outputs = (heads_ + 2.0 * kv_) * q + 2.0 * d + double(gates) * ff_;
      memory("bias_grad", b, w_ * t_ * outputs, 1.0, 4.0);
    }
    if (!o_.grad_accumulation_fusion) {
      // Each weight gradient lands in a half-precision tensor and is added into the gradient
      // buffer (Megatron's fp32 main_grad, DeepSpeed's fp16 .grad): read both, write the buffer;
      // one kernel per parameter tensor, every microbatch.
      const double tensors = m_.biases ? 12.0 : 7.0;
      const double bytes = w_ + 2.0 * o_.grad_reduce_bytes;
      memory("grad_accum", b, (layer_params_ + expert_layer_params_) * bytes, 1.0, tensors);
    }
  }

  // Minimal remat: attention and every element-wise op of the forward pass run again; the weight
  // matmuls' outputs were kept.
  void recompute_elementwise() {
    const Phase r = Phase::recompute;
    const double d = double(m_.d_model), q = double(m_.head_dim);
    const double act_tokens = t_ / sp_div_;
    const int gates = ffn_is_gated(m_.ffn) ? 2 : 1;
    memory("ln", r, 2.0 * act_tokens * d * w_, m_.parallel_block ? 1.0 : 2.0);
    if (m_.rope) memory("rope", r, 2.0 * t_ * (heads_ + kv_) * q * w_, 1.0, 2.0);
    attention(r, 1.0);
    memory("mlp_act", r, (gates + 1.0) * t_ * ff_ * w_, 1.0, activation_kernels());
    const double adds = m_.parallel_block ? 4.0 : 6.0;
    const double dropout = m_.dropout ? 2.0 * (2.0 * w_ + 1.0) : 0.0;
    memory("residual", r, act_tokens * d * (adds * w_ + dropout), 1.0, residual_kernels(r));
  }

  void recompute() {
    switch (l_.recompute) {
      case Recompute::none: return;
      case Recompute::selective: attention(Phase::recompute, 1.0); return;
      case Recompute::minimal: recompute_elementwise(); return;
      // Megatron checkpoints the whole layer function, so its replay repeats every collective.
      case Recompute::full: layer(Phase::recompute, 1.0, true); return;
      // PaLM rebuilds what backward needs from the kept input; the layer's output is the next
      // layer's kept input, so the leaving collective is not repeated.
      case Recompute::palm: layer(Phase::recompute, 0.75, false); return;
    }
  }

  // Embedding on the first stage, final LayerNorm, logits and loss on the last; per microbatch.
  // Without a pipeline, and in ZB-V's V, one stage runs both ends.
  void stage_ends() {
    const double d = double(m_.d_model), vocab_shard = double(p_.vocab) / vocab_ranks(p_.options, l_);
    const auto per_mb = Repeat::per_microbatch;
    if (ends_share_a_stage(l_.schedule, l_.pp, l_.vpp)) {
      // Token lookup; GPT models add learned position embeddings and dropout (read, write each).
      const bool positions = !m_.rope;
      Op& fwd = add("embedding", Phase::forward, OpKind::memory, per_mb);
      fwd.bytes = 2.0 * t_ * d * w_ * (1.0 + (positions ? 1.5 : 0.0) + (m_.dropout ? 1.0 : 0.0));
      fwd.kernels = 1.0 + (positions ? 1.0 : 0.0) + (m_.dropout ? 1.0 : 0.0);
      // Backward: the gradient scattered into an fp32 table (sort, count, accumulate).
      Op& bwd = add("embedding", Phase::backward, OpKind::memory, per_mb);
      bwd.bytes = 2.0 * t_ * d * 4.0 * (positions ? 2.0 : 1.0);
      bwd.kernels = positions ? 6.0 : 4.0;
    }
    add("final_ln", Phase::forward, OpKind::memory, per_mb).bytes = 2.0 * t_ * d * w_;
    for (Phase phase : {Phase::forward, Phase::backward}) {
      const int gemms = phase == Phase::forward ? 1 : 2;
      for (int g = 0; g < gemms; ++g) {
        Op& op = add("logits", phase, OpKind::gemm, per_mb);
        if (g == 0) op.m = p_.tokens_per_microbatch, op.n = int64_t(vocab_shard), op.k = m_.d_model;
        if (phase == Phase::backward && g == 0)
          op.m = p_.tokens_per_microbatch, op.n = m_.d_model, op.k = int64_t(vocab_shard);
        if (g == 1) op.m = m_.d_model, op.n = int64_t(vocab_shard), op.k = p_.tokens_per_microbatch;
        op.weight_gradient = g == 1;
        op.flops = 2.0 * t_ * d * vocab_shard;
        op.bytes = w_ * (double(op.m) * op.k + double(op.k) * op.n + double(op.m) * op.n);
      }
      // Softmax cross-entropy (+ z-loss) in fp32 over the vocabulary shard: read logits, write
      // probabilities, read them back for the gradient. Vocabulary-parallel forward: max,
      // subtract, exp, sum, target gather, log (Megatron's cross_entropy: ~8 kernels).
      Op& loss = add("loss", phase, OpKind::memory, per_mb);
      loss.bytes = t_ * vocab_shard * (w_ + 8.0);
      loss.kernels = phase == Phase::forward ? 8.0 : 4.0;
    }
    if (vocab_ranks(p_.options, l_) > 1) {
      // The vocabulary-parallel loss all-reduces, over tp, the row max, the target logit and the
      // sum of exponentials: three small fp32 collectives per microbatch.
      Op& op = add("loss_allreduce", Phase::forward, OpKind::collective, per_mb, 3.0);
      op.collective = CollectiveKind::all_reduce;
      op.group = CommGroup::tp;
      op.comm_bytes = t_ * 4.0;
    }
    Op& final_ln_bwd = add("final_ln", Phase::backward, OpKind::memory, per_mb);
    final_ln_bwd.bytes = 4.0 * t_ * d * w_;
    final_ln_bwd.kernels = 2.0;
    if (l_.recompute == Recompute::palm) {
      // PaLM's 75 % of the non-attention forward FLOPs counts the whole model, logits included.
      Op& op = add("logits", Phase::recompute, OpKind::gemm, per_mb, 0.75);
      op.m = p_.tokens_per_microbatch, op.n = int64_t(vocab_shard), op.k = m_.d_model;
      op.flops = 2.0 * t_ * d * vocab_shard;
      op.bytes = w_ * (double(op.m) * op.k + double(op.k) * op.n + double(op.m) * op.n);
    }
  }

  void pipeline_sends() {
    if (l_.pp == 1) return;
    // Activations leave the stage once per model chunk per microbatch; with sequence parallelism
    // (or Megatron's scatter/gather optimisation) each tensor-parallel rank sends its 1/tp share.
    const double message = t_ * m_.d_model * w_ / l_.tp;
    // A V's stage 0 sends one message a direction per microbatch: chunk 0's activation, chunk 1's
    // gradient (the other two ends of its chunks are the pipeline's).
    const double messages = v_shaped(l_.schedule) ? 1.0 : double(l_.vpp);
    for (Phase phase : {Phase::forward, Phase::backward}) {
      Op& op = add("pp_send", phase, OpKind::p2p, Repeat::per_microbatch, messages);
      op.group = CommGroup::pp;
      op.comm_bytes = message;
    }
    if (!m_.tied_embeddings || ends_share_a_stage(l_.schedule, l_.pp, l_.vpp)) return;
    // A tied embedding lives on the first stage (lookups) and the last (logits): each holds part
    // of its gradient, summed between the two once per step after backward (Megatron-LM's
    // embedding group). Priced as an all-reduce over the pipeline group: exact for pp 2; beyond,
    // the ring over pp ranks charges up to twice the two ranks' exchange, on one matrix a step.
    Op& op = add("embedding_allreduce", Phase::backward, OpKind::collective, Repeat::per_step);
    op.collective = CollectiveKind::all_reduce;
    op.group = CommGroup::pp;
    op.comm_bytes = double(p_.vocab) / vocab_ranks(p_.options, l_) * m_.d_model * o_.grad_reduce_bytes;
  }

  void data_parallel() {
    const bool sharded_weights = l_.sharding == Sharding::zero3 || l_.sharding == Sharding::fsdp;
    const int dp_pod = l_.replicas_per_pod();
    const double layer_params = layer_params_;
    const double grad_bytes = (p_.params_on_device - p_.expert_params_on_device) * o_.grad_reduce_bytes;
    expert_data_parallel(sharded_weights);
    if (dp_pod > 1 && sharded_weights) {
      // Layer by layer: gather weights before forward and backward (the gathered copy serves the
      // recompute that immediately precedes backward), reduce-scatter gradients after backward.
      for (Phase phase : {Phase::forward, Phase::backward}) {
        Op& op = add("fsdp_allgather", phase, OpKind::collective, Repeat::per_layer_microbatch);
        op.collective = CollectiveKind::all_gather;
        op.group = CommGroup::dp;
        op.comm_bytes = layer_params * w_;
        op.overlap = Overlap::with_layer_compute;
      }
      Op& rs = add("fsdp_reducescatter", Phase::backward, OpKind::collective, Repeat::per_layer_microbatch);
      rs.collective = CollectiveKind::reduce_scatter;
      rs.group = CommGroup::dp;
      rs.comm_bytes = layer_params * o_.grad_reduce_bytes;
      rs.overlap = Overlap::with_layer_compute;
    } else if (dp_pod > 1) {
      Op& op = add(l_.sharding == Sharding::none && l_.pods == 1 ? "dp_allreduce" : "dp_reducescatter",
                   Phase::backward, OpKind::collective, Repeat::per_step);
      op.collective = l_.sharding == Sharding::none && l_.pods == 1 ? CollectiveKind::all_reduce
                                                                    : CollectiveKind::reduce_scatter;
      op.group = CommGroup::dp;
      op.comm_bytes = grad_bytes;
      op.overlap = o_.overlap_grad_reduce ? Overlap::with_backward : Overlap::blocking;
    }
    if (m_.n_kv_heads < l_.tp) {
      // The replicated K/V projection weights get their gradients summed over the tensor-parallel
      // group once per step, like Megatron's sequence-parallel LayerNorm weights.
      Op& op = add("tp_kv_grad_allreduce", Phase::backward, OpKind::collective, Repeat::per_step);
      op.collective = CollectiveKind::all_reduce;
      op.group = CommGroup::tp;
      op.comm_bytes = double(p_.layers_per_stage) * 2.0 * m_.d_model * kv_ * m_.head_dim * o_.grad_reduce_bytes;
    }
    if (l_.pods > 1) {
      // PaLM's two-stage transfer: gradients reduced inside each pod first, then each chip's shard
      // all-reduced with its peer in the other pods over the data-center network, after backward.
      Op& op = add("crosspod_allreduce", Phase::backward, OpKind::collective, Repeat::per_step);
      op.collective = CollectiveKind::all_reduce;
      op.group = CommGroup::cross_pod;
      op.comm_bytes = grad_bytes / dp_pod;
    }
    const bool gather_after_update =
        dp_pod > 1 && (l_.sharding == Sharding::zero1 || l_.sharding == Sharding::zero2 ||
                       (l_.sharding == Sharding::none && l_.pods > 1));
    if (gather_after_update) {
      // Each rank updated its shard (or, without sharding across pods, reduced only its shard):
      // all-gather the updated bf16 weights.
      Op& op = add("dp_allgather", Phase::optimizer, OpKind::collective, Repeat::per_step);
      op.collective = CollectiveKind::all_gather;
      op.group = CommGroup::dp;
      op.comm_bytes = (p_.params_on_device - p_.expert_params_on_device) * w_;
    }
  }

  // Expert parallelism: the routed experts' gradients are reduced (and FSDP-sharded, and gathered
  // after a sharded update) over the ranks that hold the same expert shards, the
  // tp x dp x cp / (ep x etp) of edp.
  void expert_data_parallel(bool sharded_weights) {
    const int edp = l_.expert_replicas_per_pod();
    if (l_.expert_ranks() == 1 || edp == 1) return;
    auto collective = [&](const char* name, Phase phase, CollectiveKind kind, Repeat repeat, double bytes, Overlap overlap) {
      Op& op = add(name, phase, OpKind::collective, repeat);
      op.collective = kind;
      op.group = CommGroup::edp;
      op.comm_bytes = bytes;
      op.overlap = overlap;
    };
    if (sharded_weights) {
      for (Phase phase : {Phase::forward, Phase::backward})
        collective("fsdp_expert_allgather", phase, CollectiveKind::all_gather, Repeat::per_layer_microbatch,
                   expert_layer_params_ * w_, Overlap::with_layer_compute);
      collective("fsdp_expert_reducescatter", Phase::backward, CollectiveKind::reduce_scatter,
                 Repeat::per_layer_microbatch, expert_layer_params_ * o_.grad_reduce_bytes, Overlap::with_layer_compute);
      return;
    }
    const bool reduce = l_.sharding == Sharding::none;
    collective(reduce ? "edp_allreduce" : "edp_reducescatter", Phase::backward,
               reduce ? CollectiveKind::all_reduce : CollectiveKind::reduce_scatter, Repeat::per_step,
               p_.expert_params_on_device * o_.grad_reduce_bytes,
               o_.overlap_grad_reduce ? Overlap::with_backward : Overlap::blocking);
    if (!reduce)
      collective("edp_allgather", Phase::optimizer, CollectiveKind::all_gather, Repeat::per_step,
                 p_.expert_params_on_device * w_, Overlap::blocking);
  }

  void optimizer() {
    const bool sharded_state = l_.sharding != Sharding::none;
    const double experts = p_.expert_params_on_device;
    const double params = (p_.params_on_device - experts) / (sharded_state ? l_.replicas_per_pod() : 1) +
                          experts / (sharded_state ? l_.expert_replicas_per_pod() : 1);
    // Global gradient norm reads every fp32 gradient once; the update's traffic is the optimizer's.
    add("grad_norm", Phase::optimizer, OpKind::memory, Repeat::per_step).bytes = params * 4.0;
    add("optimizer", Phase::optimizer, OpKind::memory, Repeat::per_step).bytes =
        params * optimizer_step_bytes_per_parameter(o_.optimizer);
  }

  StepPlan& p_;
  const ModelSpec& m_;
  const Layout& l_;
  const PlanOptions& o_;
  double t_ = 0, w_ = 2;
  double moe_share_ = 0, dense_share_ = 1;           // layers whose MLP is the mixture, or dense
  double layer_params_ = 0, expert_layer_params_ = 0;  // per layer on this chip (see constructor)
  int heads_ = 1, kv_ = 1;
  int64_t ff_ = 1;
  int sp_div_ = 1;
};

}  // namespace

int vocab_ranks(const PlanOptions& options, const Layout& layout) { return options.vocab_parallel ? layout.tp : 1; }

int64_t padded_vocab(int64_t vocab, int tp, int multiple) {
  const int64_t unit = int64_t(tp) * std::max(1, multiple);
  return (vocab + unit - 1) / unit * unit;
}

LayerParametersOnChip layer_parameters_on_chip(const ModelSpec& m, const Layout& l) {
  const double experts = l.expert_ranks() > 1 ? mean_expert_parameters(m) : 0.0;
  return {(mean_layer_parameters(m) - experts) / l.tp, experts / l.expert_ranks()};
}

StepPlan build_step_plan(const ModelSpec& model, const Layout& layout, int64_t global_batch,
                         const PlanOptions& options) {
  StepPlan plan;
  plan.model = model;
  plan.layout = layout;
  // A stack that shards every activation over the tensor-parallel group runs the layout as
  // sequence parallelism does (all-gather in, reduce-scatter out, 1/tp of each activation).
  if (options.shard_activations_over_tp && layout.tp > 1) plan.layout.sp = true;
  plan.options = options;
  plan.global_batch = global_batch;
  plan.n_microbatches = microbatches(layout, global_batch);
  // Layers of the heaviest stage: with uneven stages (n_layers not a multiple of pp * vpp) some
  // chunks hold one layer more, and the pipeline runs at the pace of the stage that has them.
  // A split that counts the embedding and the loss as layers (Layout::account_ends) gives each
  // chunk (n_layers + 2) / chunks; the loss's chunk holds one layer fewer, which the estimator and
  // the simulator take off its logits and loss (loss_beyond_a_layer).
  const int64_t chunks = int64_t(layout.pp) * layout.vpp;
  plan.layers_per_stage = layout.splits_ends() ? int((model.n_layers + 2) / chunks) * layout.vpp
                                              : int((model.n_layers + chunks - 1) / chunks) * layout.vpp;
  plan.tokens_per_microbatch = int64_t(layout.microbatch) * model.seq_len / layout.cp;  // this rank's
  plan.vocab = padded_vocab(model.vocab, vocab_ranks(options, layout), options.vocab_multiple);
  // Embedding parameters live on the first and last stages; the last stage (this device) holds
  // the output embedding, sharded over the vocabulary. Without pipeline stages that device is also
  // the first one: an untied model holds its input embedding too (a tied one shares the matrix).
  const double embedding_matrices =
      ends_share_a_stage(layout.schedule, layout.pp, layout.vpp) && !model.tied_embeddings ? 2.0 : 1.0;
  const LayerParametersOnChip per_layer = layer_parameters_on_chip(model, layout);
  plan.expert_params_on_device = double(plan.layers_per_stage) * per_layer.experts;
  plan.params_on_device =
      double(plan.layers_per_stage) * per_layer.dense +
      embedding_matrices * double(plan.vocab) * double(model.d_model) / vocab_ranks(options, layout) +
      plan.expert_params_on_device;
  if (pairs_moe_passes(model, layout, options) && !combined_1f1b_runs(layout)) {
    if (layout.recompute == Recompute::full)
      throw InputError("layout.recompute", "full recompute cannot run beside the stack's overlap_moe_a2a (Megatron-Core's "
                                           "combined 1F1B); use selective or none");
    throw InputError("layout.schedule", "the stack's overlap_moe_a2a (Megatron-Core's combined 1F1B) runs without a pipeline "
                                        "or with virtual stages (interleaved, vpp > 1), not " +
                                            std::string(to_string(layout.schedule)) + " over pp " + std::to_string(layout.pp));
  }
  // DeepEP's dispatch hands a rank's tokens to whole experts: Megatron-Core's flex dispatcher
  // with expert tensor parallelism is not modelled.
  if (layout.etp > 1 && options.moe_dispatch == TokenDispatch::per_rank)
    throw InputError("layout.etp", "expert tensor parallelism with the stack's per_rank token dispatch (DeepEP) is not "
                                   "modelled; use etp 1 or a per_expert stack");
  // Rowwise-scaled fp8 (torchtitan's) casts are counted for dense layers only.
  if (model.moe.sparse() && options.fp8_linears && options.fp8_rowwise)
    throw InputError("training.precision", "fp8 with rowwise scaling is not modelled for expert layers; use tensorwise fp8 or bf16");
  plan.ops.reserve(64);
  PlanBuilder(plan).build();
  for (const Op& op : plan.ops)
    if (op.repeat == Repeat::per_layer_microbatch) plan.host_syncs_per_layer[size_t(op.phase)] += op.host_syncs * op.multiplicity;
  return plan;
}

}  // namespace palmsim
