#include "model/memory.h"

#include "model/accounting.h"
#include "model/pipeline_schedule.h"

#include <algorithm>

namespace palmsim {

double activation_bytes_per_layer(const StepPlan& plan, Recompute recompute) {
  const ModelSpec& m = plan.model;
  const Layout& l = plan.layout;
  const double w = plan.options.activation_bytes;
  // This rank's tokens: with context parallelism 1/cp of each sequence (its queries); keys span s.
  const double s = double(m.seq_len), b = double(l.microbatch), d = double(m.d_model);
  const double t = double(plan.tokens_per_microbatch), rows = t / b;
  const double q = double(m.head_dim);
  const double heads = double(m.n_heads) / l.tp;
  const double kv = m.n_kv_heads >= l.tp ? double(m.n_kv_heads) / l.tp : double(m.n_kv_heads);
  const double ff = double(m.d_ff) / l.tp;
  // Tensors outside the tensor-parallel regions are replicated unless sequence parallel.
  const double outside = l.sp ? 1.0 / l.tp : 1.0;
  const double mask = m.dropout ? 1.0 : 0.0;  // one-byte dropout masks
  // A mixture-of-experts layer keeps the router's fp32 probabilities, the t x top_k dispatched
  // token rows (at the capacity factor or imbalance of the busiest rank), the rows its experts
  // received (etp times as many once expert tensor parallelism has gathered them) and the experts'
  // hidden activations for those (1/etp of the width each), and the shared experts' hidden
  // activations for every token (1/tp of their width), instead of the dense MLP's intermediates.
  const double moe_share = double(m.moe_layers()) / m.n_layers;
  double moe_bytes = 0;
  if (m.moe.sparse()) {
    const double routed_tokens = t * outside;  // with tp > 1, the rank's sequence-parallel share
    const double rows_routed = routed_tokens * m.moe.top_k * m.moe.load();
    const double gates = ffn_is_gated(m.ffn) ? 3.0 : 2.0;
    moe_bytes = 4.0 * routed_tokens * m.moe.n_experts +
                w * rows_routed * ((1.0 + l.etp) * d + gates * double(m.moe.expert_d_ff)) +
                gates * w * t * double(m.moe.shared_experts) * double(m.moe.expert_d_ff) / l.tp;
  }

  if (recompute == Recompute::full || recompute == Recompute::palm) {
    // Only the layer input is kept; PaLM keeps it sharded over the model-parallel axis.
    return w * t * d * (recompute == Recompute::palm ? 1.0 / l.tp : outside);
  }
  if (recompute == Recompute::minimal) {
    // The layer input and the outputs of the weight matmuls; the rest is rebuilt from them.
    double bytes = w * t * d * outside;                      // layer input
    bytes += w * t * (heads + 2.0 * kv) * q;                 // Q, K, V
    bytes += w * t * d * outside;                            // attention output projection
    bytes += (1.0 - moe_share) * (ffn_is_gated(m.ffn) ? 2.0 : 1.0) * w * t * ff;  // MLP input projection(s)
    bytes += moe_share * moe_bytes;                          // MoE layers keep their dispatch too
    bytes += w * t * d * outside;                            // MLP output projection
    if (plan.options.fused_attention) bytes += 4.0 * b * heads * rows;  // fp32 log-sum-exp per row
    return bytes;
  }
  const double norms = m.parallel_block ? 1.0 : 2.0;
  double bytes = norms * w * t * d * outside;       // LayerNorm inputs
  bytes += w * t * d * outside;                      // QKV input (LN output)
  bytes += w * t * (heads + kv) * q;                 // Q and K for the scores
  bytes += w * t * kv * q;                           // V
  bytes += w * t * heads * q;                        // attention output projection input
  bytes += mask * t * d * outside;                   // attention output dropout mask
  if (!m.parallel_block) bytes += w * t * d * outside;  // MLP input (shared in a parallel block)
  bytes += (1.0 - moe_share) * (ffn_is_gated(m.ffn) ? 3.0 : 2.0) * w * t * ff;  // FFN intermediates
  bytes += moe_share * moe_bytes;                    // MoE: routing, dispatched tokens, experts' hidden
  bytes += mask * t * d * outside;                   // MLP dropout mask
  if (recompute == Recompute::none) {
    const double scores = b * heads * rows * s;
    if (plan.options.fused_attention)
      bytes += 4.0 * b * heads * rows;               // fp32 log-sum-exp per row
    else
      bytes += scores * (w + (m.dropout ? w + 1.0 : 0.0));  // softmax out, dropout mask and out
  }
  return bytes;
}

MemoryBreakdown memory_per_chip(const StepPlan& plan) {
  const Layout& l = plan.layout;
  const ModelSpec& m = plan.model;
  const int dp_pod = l.replicas_per_pod();
  const double params = plan.params_on_device;
  const bool shard_state = l.sharding != Sharding::none;
  const bool shard_grads = l.sharding == Sharding::zero2 || l.sharding == Sharding::zero3 ||
                           l.sharding == Sharding::fsdp;
  const bool shard_weights = l.sharding == Sharding::zero3 || l.sharding == Sharding::fsdp;
  // Routed experts under expert parallelism are sharded over the ranks that hold the same experts.
  const double experts = plan.expert_params_on_device, dense = params - experts;
  const int edp = l.expert_replicas_per_pod();
  auto sharded = [&](bool shard) { return shard ? dense / dp_pod + experts / edp : params; };
  MemoryBreakdown mem;
  mem.gradients = sharded(shard_grads) * plan.options.grad_reduce_bytes;
  // An fp32 master weight and the optimizer's moments (model/optimizer.h).
  const double moments = optimizer_moment_bytes_per_parameter(plan.options.optimizer, m);
  if (l.sharding == Sharding::fsdp) {
    // FSDP2 under a bf16 MixedPrecisionPolicy keeps one copy of each shard, in fp32: it is the
    // optimizer's master weight, and the bf16 weights exist only as the gathered layers (working).
    mem.weights = sharded(true) * kMasterWeightBytes;
    mem.optimizer_state = sharded(true) * moments;
  } else {
    mem.weights = sharded(shard_weights) * plan.options.activation_bytes;
    mem.optimizer_state = sharded(shard_state) * (kMasterWeightBytes + moments);
  }

  // Microbatches whose activations the first stage holds at the peak.
  double in_flight = 1.0;
  const double mb = double(plan.n_microbatches);
  switch (l.schedule) {
    case Schedule::gpipe: in_flight = mb; break;
    // ZB-H1: the first stage holds what it holds under 1F1B (stage i defers i weight gradients,
    // so the later stages reach the same count, partly as the inputs their W passes keep). ZB-V
    // and ZB-H2: their played-out orders' cap (played_out_orders).
    case Schedule::one_f_one_b:
    case Schedule::zero_bubble_h1:
    case Schedule::zero_bubble_v:
    case Schedule::zero_bubble_h2: in_flight = std::min(mb, double(microbatches_in_flight(l.schedule, l.pp))); break;
    // DualPipeV: 2 pp + 1 chunks' activations on stage 0 (its 2 pp - 1 warm-up forwards of chunk 0
    // and one of chunk 1, then each overlapped pair's forward before its backward frees one; the
    // DualPipe README's table gives PP + 1 chunks for PP chunk-stages), a stage being two chunks.
    case Schedule::dualpipe_v: in_flight = std::min(mb, l.pp + 0.5); break;
    case Schedule::interleaved:
      in_flight = std::min(mb, double(l.pp)) * (1.0 + (l.pp - 1.0) / (double(l.pp) * l.vpp));
      break;
  }
  // Combined 1F1B's extra warm-up forward holds one more chunk (a stage's 1/vpp) until its pair.
  if (plan.combined_moe_passes()) in_flight = std::min(mb, in_flight + 1.0 / l.vpp);
  mem.activations = activation_bytes_per_layer(plan, l.recompute) * plan.layers_per_stage * in_flight;

  // Working set. FSDP keeps the gathered weights of the current and the prefetched layer.
  if (shard_weights && dp_pod > 1) {
    // Routed experts are gathered over edp: 1/(ep x etp) of them.
    const LayerParametersOnChip layer = layer_parameters_on_chip(m, l);
    mem.working += 2.0 * (layer.dense + layer.experts) * plan.options.activation_bytes;
  }
  // Then the larger of two peaks that never overlap: the logits of one microbatch as the loss
  // holds them (PlanOptions::loss_bytes_per_logit), freed once the output layer's backward has
  // run, and the layer being rebuilt for backward, which holds what no recompute would have kept.
  const double logits = double(plan.tokens_per_microbatch) * double(plan.vocab) / vocab_ranks(plan.options, l) *
                        plan.options.loss_bytes_per_logit;
  const double rebuilt = l.recompute != Recompute::none ? activation_bytes_per_layer(plan, Recompute::none) : 0.0;
  mem.working += std::max(logits, rebuilt);
  return mem;
}

}  // namespace palmsim
