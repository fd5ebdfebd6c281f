// The step plan's GEMM FLOPs add up to the accounting's hardware FLOPs: one independent check that
// the op list neither drops nor doubles work.
#include "model/accounting.h"
#include "model/memory.h"
#include "model/step_plan.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace palmsim {
namespace {

double plan_flops(const StepPlan& p) {
  double f = 0;
  for (const Op& op : p.ops)
    if (op.kind == OpKind::gemm || op.kind == OpKind::attention) f += op.flops * p.occurrences(op);
  return f;
}

TEST(StepPlan, FlopsOfAllChipsEqualHardwareFlopsOfTheBatch) {
  const ModelSpec m = model_preset("palm-62b");
  const int64_t batch = 64;
  const double tokens = double(batch) * m.seq_len;
  for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full, Recompute::palm}) {
    Layout l;
    l.dp = 16, l.microbatch = 2, l.recompute = r;
    const StepPlan p = build_step_plan(m, l, batch, PlanOptions{});
    // LayerNorm scales are in N but do no matrix FLOPs: 1e-5 of the total.
    EXPECT_NEAR(plan_flops(p) * l.chips() / (hardware_flops_per_token(m, r) * tokens), 1.0, 1e-5)
        << to_string(r);
  }
  // With tp = 8 each chip does 1/8 of the work, except the single K/V head's projections, which
  // every tensor-parallel rank computes in full: 7 extra copies, forward and backward (6 FLOPs per
  // parameter per token).
  Layout l;
  l.tp = 8, l.dp = 2, l.microbatch = 2;
  const StepPlan p = build_step_plan(m, l, batch, PlanOptions{});
  const double kv_params = 2.0 * m.d_model * m.head_dim * m.n_layers;
  const double expected = hardware_flops_per_token(m, Recompute::none) * tokens + 7 * 6 * kv_params * tokens;
  EXPECT_NEAR(plan_flops(p) * l.chips() / expected, 1.0, 1e-5);
}

// Parameters on the last pipeline stage's chip, by hand: its layers and the output embedding over
// tp; without stages an untied model's chip also holds the input embedding.
TEST(StepPlan, EmbeddingsOnTheDeviceFollowTyingAndStages) {
  ModelSpec m = model_preset("palm-8b");  // 32 layers, d 4096, vocab 256k
  Layout l;
  l.tp = 4, l.dp = 2;
  const double layers = double(layer_parameters(m).total()), embedding = double(m.vocab) * double(m.d_model);
  const StepPlan tied = build_step_plan(m, l, 8, PlanOptions{});
  EXPECT_DOUBLE_EQ(tied.params_on_device, (32 * layers + embedding) / 4);
  m.tied_embeddings = false;
  const StepPlan untied = build_step_plan(m, l, 8, PlanOptions{});
  EXPECT_DOUBLE_EQ(untied.params_on_device, (32 * layers + 2 * embedding) / 4);
  l.pp = 2, l.dp = 1;  // the last of two stages: 16 layers and the output embedding only
  const StepPlan staged = build_step_plan(m, l, 8, PlanOptions{});
  EXPECT_DOUBLE_EQ(staged.params_on_device, (16 * layers + embedding) / 4);
}

// palmsim's own trainers keep the whole vocabulary on every tensor-parallel rank: the logits GEMM
// spans all of it, no loss collective, the embedding is not split (by hand against the split plan).
TEST(StepPlan, AWholeVocabularyOnEveryTensorParallelRank) {
  ModelSpec m = model_preset("palm-8b");  // vocab 256k, d 4096, tied
  Layout l;
  l.tp = 4, l.dp = 2;
  PlanOptions whole;
  whole.vocab_parallel = false;
  const StepPlan split = build_step_plan(m, l, 8, PlanOptions{}), kept = build_step_plan(m, l, 8, whole);
  auto logits_n = [](const StepPlan& p) {
    for (const Op& op : p.ops)
      if (std::string(op.name) == "logits" && op.phase == Phase::forward) return op.n;
    return int64_t(0);
  };
  auto has = [](const StepPlan& p, const std::string& name) {
    for (const Op& op : p.ops)
      if (name == op.name) return true;
    return false;
  };
  EXPECT_EQ(logits_n(split), m.vocab / 4);
  EXPECT_EQ(logits_n(kept), m.vocab);
  EXPECT_TRUE(has(split, "loss_allreduce"));
  EXPECT_FALSE(has(kept, "loss_allreduce"));
  const double embedding = double(m.vocab) * double(m.d_model);
  EXPECT_DOUBLE_EQ(kept.params_on_device - split.params_on_device, embedding - embedding / 4);
  EXPECT_EQ(vocab_ranks(whole, l), 1);
  EXPECT_EQ(vocab_ranks(PlanOptions{}, l), 4);
}

// Uneven stages: the plan is the heaviest stage's. 118 layers (PaLM 540B) on 4 stages: 30, 30,
// 29, 29 -> 30; with 2 chunks per stage, 8 chunks of 15 or 14 -> 2 x 15 = 30; on 3 stages: 40.
TEST(StepPlan, UnevenStagesTakeTheHeaviestStage) {
  const ModelSpec m = model_preset("palm-540b");
  Layout l;
  l.tp = 12, l.pp = 4, l.dp = 1;
  EXPECT_EQ(build_step_plan(m, l, 8, PlanOptions{}).layers_per_stage, 30);
  l.vpp = 2, l.schedule = Schedule::interleaved;
  EXPECT_EQ(build_step_plan(m, l, 8, PlanOptions{}).layers_per_stage, 30);
  l.pp = 3, l.vpp = 1, l.schedule = Schedule::one_f_one_b;
  EXPECT_EQ(build_step_plan(m, l, 6, PlanOptions{}).layers_per_stage, 40);
  l.pp = 2;  // even: 59
  EXPECT_EQ(build_step_plan(m, l, 8, PlanOptions{}).layers_per_stage, 59);
}

// Context parallelism by hand: each of cp ranks holds T/cp tokens of every sequence and 1/cp of
// its causal attention; K and V of the whole sequence (this rank's K/V heads) are gathered in every
// forward and recompute, gathered again and their gradients reduce-scattered in backward.
TEST(StepPlan, ContextParallelRanksShareTokensAndGatherKeysAndValues) {
  const ModelSpec m = model_preset("palm-8b");  // 16 heads, 1 K/V head, head dim 256, seq 2048
  Layout one, four;
  one.dp = 8;
  four.dp = 2, four.cp = 4;
  const StepPlan a = build_step_plan(m, one, 8, PlanOptions{});
  const StepPlan c = build_step_plan(m, four, 8, PlanOptions{});
  EXPECT_EQ(c.tokens_per_microbatch, 2048 / 4);
  auto find = [](const StepPlan& p, const std::string& name, Phase phase) -> const Op* {
    for (const Op& op : p.ops)
      if (name == op.name && op.phase == phase) return &op;
    return nullptr;
  };
  EXPECT_DOUBLE_EQ(find(c, "attention", Phase::forward)->flops * 4, find(a, "attention", Phase::forward)->flops);
  EXPECT_EQ(find(a, "cp_kv_allgather", Phase::forward), nullptr);
  const Op* gather = find(c, "cp_kv_allgather", Phase::forward);
  ASSERT_NE(gather, nullptr);
  EXPECT_EQ(gather->group, CommGroup::cp);
  EXPECT_DOUBLE_EQ(gather->comm_bytes, 2048.0 * 2 * 1 * 256 * 2);  // K and V, bf16
  ASSERT_NE(find(c, "cp_kv_allgather", Phase::backward), nullptr);
  ASSERT_NE(find(c, "cp_dkv_reducescatter", Phase::backward), nullptr);
  EXPECT_EQ(find(c, "cp_dkv_reducescatter", Phase::forward), nullptr);
  // Activation memory follows this rank's tokens: a quarter of the layer's (full recompute keeps
  // only the layer input, t x d bf16).
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(c, Recompute::full) * 4, activation_bytes_per_layer(a, Recompute::full));
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(c, Recompute::full), 2.0 * 512 * 4096);
  // As a ring (Transformer Engine's p2p): the same bytes, beside the attention only.
  PlanOptions ring;
  ring.cp_comm = ContextComm::ring;
  const StepPlan r = build_step_plan(m, four, 8, ring);
  EXPECT_EQ(find(r, "cp_kv_allgather", Phase::forward), nullptr);
  for (const auto& [name, phase] : {std::pair{"cp_kv_ring", Phase::forward}, {"cp_kv_ring", Phase::backward},
                                    {"cp_dkv_ring", Phase::backward}}) {
    const Op* op = find(r, name, phase);
    ASSERT_NE(op, nullptr) << name;
    EXPECT_EQ(op->overlap, Overlap::with_attention);
    EXPECT_DOUBLE_EQ(op->comm_bytes, gather->comm_bytes);
  }
}

TEST(StepPlan, MicrobatchAndLayerCounts) {
  const ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = 8, l.pp = 8, l.dp = 2, l.microbatch = 1;
  const StepPlan p = build_step_plan(m, l, 64, PlanOptions{});
  EXPECT_EQ(p.n_microbatches, 32);
  EXPECT_EQ(p.layers_per_stage, 12);
  EXPECT_EQ(p.tokens_per_microbatch, 2048);
}

TEST(StepPlan, TensorParallelTrafficOfASerialBlockWithoutSp) {
  // Megatron without sequence parallelism: two all-reduces forward, two backward per layer.
  const ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = 8, l.dp = 1, l.microbatch = 1;
  const StepPlan p = build_step_plan(m, l, 1, PlanOptions{});
  int fwd = 0, bwd = 0;
  for (const Op& op : p.ops)
    if (op.kind == OpKind::collective && op.group == CommGroup::tp && op.repeat == Repeat::per_layer_microbatch) {
      EXPECT_EQ(op.collective, CollectiveKind::all_reduce);
      EXPECT_DOUBLE_EQ(op.comm_bytes, 2048.0 * 12288 * 2);
      (op.phase == Phase::forward ? fwd : bwd)++;
    }
  EXPECT_EQ(fwd, 2);
  EXPECT_EQ(bwd, 2);
}

// Llama 3 8B's shape (Meta's model card): no preset, so written here.
ModelSpec llama3_8b() {
  ModelSpec m = model_preset("llama2-70b");
  m.n_layers = 32, m.d_model = 4096, m.n_heads = 32, m.n_kv_heads = 8, m.head_dim = 128;
  m.d_ff = 14336, m.vocab = 128256, m.seq_len = 8192;
  return m;
}

// Sequence-parallel TP under fp8 linears with per-tensor scales (torchao's Float8 TP): every
// all-gather, forward and backward, moves fp8 (1 byte); reduce-scatters stay bf16 (2 bytes). Llama
// 3 8B, tp 8, microbatch 1 of 8192 tokens: an all-gather moves 8192 x 4096 x 1 bytes.
TEST(StepPlan, Fp8TensorParallelAllGathersMoveOneByte) {
  const ModelSpec m = llama3_8b();
  Layout l;
  l.tp = 8, l.dp = 1, l.sp = true, l.microbatch = 1;
  PlanOptions o;
  o.fp8_linears = true;
  o.fp8_tp_allgather = true;
  auto bytes_of = [&](const PlanOptions& options, CollectiveKind kind) {
    std::set<double> sizes;
    for (const Op& op : build_step_plan(m, l, 1, options).ops)
      if (op.kind == OpKind::collective && op.group == CommGroup::tp && op.collective == kind)
        sizes.insert(op.comm_bytes);
    return sizes;
  };
  const double t = 8192, d = 4096;
  EXPECT_EQ(bytes_of(o, CollectiveKind::all_gather), std::set<double>{t * d * 1});
  EXPECT_EQ(bytes_of(o, CollectiveKind::reduce_scatter), std::set<double>{t * d * 2});
  // Rowwise scales (no Float8 TP in torchtitan), or bf16 linears: every all-gather is bf16.
  PlanOptions rowwise = o;
  rowwise.fp8_rowwise = true;
  rowwise.fp8_tp_allgather = false;
  EXPECT_EQ(bytes_of(rowwise, CollectiveKind::all_gather), std::set<double>{t * d * 2});
  PlanOptions bf16 = o;
  bf16.fp8_linears = false;
  EXPECT_EQ(bytes_of(bf16, CollectiveKind::all_gather), std::set<double>{t * d * 2});
}

// The fp8 casts of one layer, by hand (Llama 3 8B, tp 8, 8192 tokens, sp off). Per-tensor scales:
// forward, the inputs of the attention block (shared by Q, K, V), of the output projection, of the
// MLP (shared by gate and up) and of the down projection, d + heads q + d + ff elements per token,
// read bf16 and written fp8 (3 bytes), plus the layer's weights; backward, each linear's output
// gradient once. Rowwise scales: each of the seven linears casts its own input, in two orientations
// (rows for its forward GEMM, columns for its weight gradient), and each output gradient twice.
TEST(StepPlan, Fp8CastTrafficByHand) {
  const ModelSpec m = llama3_8b();
  Layout l;
  l.tp = 8, l.dp = 1, l.sp = false, l.microbatch = 1;
  PlanOptions o;
  o.fp8_linears = true;
  auto cast_bytes = [&](const PlanOptions& options, Phase phase) {
    const StepPlan p = build_step_plan(m, l, 1, options);
    for (const Op& op : p.ops)
      if (op.name == std::string("fp8_cast") && op.phase == phase) return op.bytes;
    return -1.0;
  };
  const double t = 8192, d = 4096, hq = 32.0 / 8 * 128, kvq = 8.0 / 8 * 128, ff = 14336.0 / 8;
  const double weights = 3.0 * double(layer_parameters(m).total()) / 8;
  EXPECT_NEAR(cast_bytes(o, Phase::forward), 3 * t * (2 * d + hq + ff) + weights, 1e3);
  const double grads = hq + 2 * kvq + 2 * d + 2 * ff;
  EXPECT_NEAR(cast_bytes(o, Phase::backward), 3 * t * grads, 1e3);
  o.fp8_rowwise = true;
  EXPECT_NEAR(cast_bytes(o, Phase::forward), 3 * t * 2 * (5 * d + hq + ff) + weights, 1e3);
  EXPECT_NEAR(cast_bytes(o, Phase::backward), 2 * 3 * t * grads, 1e3);
}

// A small tied mixture-of-experts model: matrix FLOPs over all chips are 6 N_active + attention.
TEST(StepPlan, MoeFlopsOfAllChipsEqualActiveHardwareFlops) {
  ModelSpec m = model_preset("qwen3-30b-a3b");
  m.n_layers = 4, m.tied_embeddings = true, m.vocab = 32768;
  const int64_t batch = 64;
  for (int ep : {1, 8})
    for (Recompute r : {Recompute::none, Recompute::full}) {
      Layout l;
      l.dp = 8, l.ep = ep, l.microbatch = 2, l.recompute = r;
      const StepPlan p = build_step_plan(m, l, batch, PlanOptions{});
      const double tokens = double(batch) * m.seq_len;
      // LayerNorm scales are in N but do no matrix FLOPs (6 per parameter per token, 2 more
      // when full recompute runs the forward again).
      const double norms = double(m.n_layers * layer_parameters(m).norms + m.d_model);
      const double expected = hardware_flops_per_token(m, r) - (r == Recompute::full ? 6.0 * norms + 2.0 * (norms - m.d_model) : 6.0 * norms);
      EXPECT_NEAR(plan_flops(p) * l.chips() / (expected * tokens), 1.0, 1e-9) << "ep " << ep << " " << to_string(r);
    }
}


}  // namespace
}  // namespace palmsim
