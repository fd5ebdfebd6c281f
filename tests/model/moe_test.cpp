// Mixture-of-experts models (issue 12): parameter accounting by hand, the step plan's FLOPs
// against 6 N_active + attention, the dispatch and grouped-GEMM shapes by hand, expert memory
// split by expert parallelism, and the layouts refused rather than approximated.
#include "model/accounting.h"
#include "model/input_error.h"
#include "model/memory.h"
#include "model/step_plan.h"
#include "tests/model/layout_refusal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string_view>
#include <tuple>

namespace palmsim {
namespace {

// A sparse decoder's parameters by hand: per layer, attention (Q and O of d x heads x head_dim,
// K and V of d x kv x head_dim), two norms of d, the router d x experts, and SwiGLU experts of
// 3 x d x expert_d_ff; untied embeddings 2 x vocab x d and a final norm.
struct MoeShape {
  const char* preset;
  int64_t layers, d, heads, kv, head_dim, experts, top_k, expert_ff, vocab;
  double total_billions;  // the published total, to 0.1 B
};
void expect_parameters_by_hand(const MoeShape& x) {
  const ModelSpec m = model_preset(x.preset);
  const int64_t attention = 2 * x.d * x.heads * x.head_dim + 2 * x.d * x.kv * x.head_dim, norms = 2 * x.d,
                router = x.d * x.experts, expert = 3 * x.d * x.expert_ff, embeddings = 2 * x.vocab * x.d;
  EXPECT_EQ(parameter_count(m), x.layers * (attention + norms + router + x.experts * expert) + embeddings + x.d) << x.preset;
  EXPECT_EQ(active_parameter_count(m), x.layers * (attention + norms + router + x.top_k * expert) + embeddings + x.d)
      << x.preset;
  EXPECT_NEAR(double(parameter_count(m)) / 1e9, x.total_billions, 0.1) << x.preset;
}

TEST(Moe, GptOss120bParametersByHand) {
  // The model card's 116.8 B total; Megatron-Bridge's table derives its MFU from 5.712 B active.
  expect_parameters_by_hand({"gpt-oss-120b", 36, 2880, 64, 8, 64, 128, 4, 2880, 201088, 116.8});
  const ModelSpec m = model_preset("gpt-oss-120b");
  EXPECT_NEAR(double(active_parameter_count(m)) / 5.712e9, 1.0, 0.001);
  EXPECT_DOUBLE_EQ(model_flops_per_token(m), 6.0 * double(active_parameter_count(m)) + attention_flops_per_token(m));
}

// Qwen3-235B-A22B (Qwen3 technical report, Table 2: 235 B total, 22 B activated).
TEST(Moe, Qwen3_235bParametersByHand) {
  expect_parameters_by_hand({"qwen3-235b-a22b", 94, 4096, 64, 4, 128, 128, 8, 1536, 151936, 235.1});
  EXPECT_NEAR(double(active_parameter_count(model_preset("qwen3-235b-a22b"))) / 1e9, 22.2, 0.1);
}

// Model FLOPs per token against the published figure (issue 12). Megatron-Bridge reports gpt-oss-120b
// on 64 H100 at 158 "model TFLOP/s/GPU" and 5824 tokens/s/GPU (26.04.01), 163 at 5993 (26.02) and
// 153 at 5630 (25.11): 27.13-27.20 GFLOP/token (scenarios/published/megatron_bridge_gpt_oss_h100.csv).
// palmsim counts PaLM's 6 N_active + 12 L H Q T, 41.5 GFLOP/token. The two reconcile term by term
// with the conventions of Megatron-LM's num_floating_point_operations (megatron/training/training.py):
// causal attention counts half of 12 L H Q T; the input embedding is a lookup, no FLOPs; and the
// third matrix of a gated FFN counts only under its `swiglu` flag, which gpt-oss's gated quick-GELU
// experts do not set. What remains, 27.25 GFLOP/token, is within 0.5 % of all three published figures.
TEST(Moe, GptOss120bModelFlopsReconcileWithMegatronBridgesPublishedFigure) {
  const ModelSpec m = model_preset("gpt-oss-120b");
  const double attention = 12.0 * 36 * 64 * 64 * 4096;  // 12 L H Q T by hand: 7.25 GFLOP
  EXPECT_DOUBLE_EQ(attention_flops_per_token(m), attention);
  EXPECT_NEAR(model_flops_per_token(m) / 1e9, 41.52, 0.01);
  const double input_embedding = 6.0 * 201088 * 2880;
  const double gate_matrices = 6.0 * 36 * 4 * (2880.0 * 2880);  // one of each active expert's three
  const double megatron = model_flops_per_token(m) - attention / 2 - input_embedding - gate_matrices;
  for (const auto& [tflops, tokens_per_s] : {std::pair{158.0, 5824.0}, {163.0, 5993.0}, {153.0, 5630.0}})
    EXPECT_NEAR(megatron / (tflops * 1e12 / tokens_per_s), 1.0, 0.01) << tflops << " TFLOP/s";
}

TEST(Moe, EveryOtherLayerSparseCountsBothKinds) {
  ModelSpec m = model_preset("mixtral-8x7b");
  m.moe.layer_freq = 2;  // GLaM-style: layers 2, 4, ... are sparse
  const LayerParameters dense = layer_parameters(m);
  const MoeLayerParameters moe = moe_layer_parameters(m);
  EXPECT_EQ(m.moe_layers(), 16);
  EXPECT_EQ(parameter_count(m), 16 * dense.total() + 16 * (dense.attention + dense.norms + moe.total()) +
                                     embedding_parameters(m) + m.d_model);
}

// A small MoE model (Qwen3-30B-A3B's layers, 4 of them, tied embeddings).
ModelSpec small_moe() {
  ModelSpec m = model_preset("qwen3-30b-a3b");
  m.n_layers = 4;
  m.tied_embeddings = true;
  m.vocab = 32768;
  return m;
}

TEST(Moe, DispatchAndGroupedGemmShapesByHand) {
  const ModelSpec m = small_moe();  // 128 experts of 768, top-8, d 2048, SwiGLU
  Layout l;
  l.dp = 8, l.ep = 8, l.microbatch = 2;
  const StepPlan p = build_step_plan(m, l, 64, PlanOptions{});
  const double t = 2.0 * 4096;  // tokens of a microbatch
  int all_to_alls = 0, expert_in = 0;
  for (const Op& op : p.ops) {
    if (op.kind == OpKind::collective && op.collective == CollectiveKind::all_to_all) {
      ++all_to_alls;
      EXPECT_EQ(op.group, CommGroup::ep);
      EXPECT_DOUBLE_EQ(op.comm_bytes, t * 8 * 2048 * 2.0);  // t x top_k rows of d_model, bf16
    }
    if (std::string_view(op.name) == "moe_expert_in" && op.phase == Phase::forward) {
      ++expert_in;
      EXPECT_EQ(op.batch, 16);                  // 128 experts / ep 8 on this rank
      EXPECT_EQ(op.m, int64_t(t * 8 / 16));     // its t x top_k rows over 16 local experts
      EXPECT_EQ(op.n, 2 * 768);                 // gate and up projections
      EXPECT_EQ(op.k, 2048);
    }
  }
  EXPECT_EQ(all_to_alls, 4);  // dispatch and combine, forward and backward
  EXPECT_EQ(expert_in, 1);
}

// The distinct ranks a token's experts live on, against counting every top-k choice by hand: 4
// experts on 2 ranks ({0, 1} and {2, 3}), top-2: of the 6 pairs, {0, 1} and {2, 3} touch one rank,
// the other 4 two: 10 / 6. And against enumerating every choice for larger cases.
TEST(Moe, RanksPerTokenCountsEveryTopKChoice) {
  MoeSpec e;
  e.n_experts = 4, e.top_k = 2, e.expert_d_ff = 1;
  EXPECT_NEAR(e.ranks_per_token(2), 10.0 / 6.0, 1e-15);
  EXPECT_NEAR(e.ranks_per_token(1), 1.0, 1e-15);  // one rank holds them all
  EXPECT_NEAR(e.ranks_per_token(4), 2.0, 1e-15);  // an expert a rank: top_k ranks
  for (const auto& [experts, top_k, ranks] : {std::tuple{8, 3, 4}, std::tuple{16, 4, 8}, std::tuple{20, 4, 5}}) {
    e.n_experts = experts, e.top_k = top_k;
    double touched = 0, choices = 0;
    for (unsigned mask = 0; mask < (1u << experts); ++mask) {
      if (__builtin_popcount(mask) != top_k) continue;
      unsigned on_rank = 0;  // expert x lives on rank x / (experts / ranks)
      for (int x = 0; x < experts; ++x)
        if (mask >> x & 1u) on_rank |= 1u << (x / (experts / ranks));
      touched += __builtin_popcount(on_rank), choices += 1;
    }
    EXPECT_NEAR(e.ranks_per_token(ranks), touched / choices, 1e-12) << experts << " experts, top-" << top_k;
  }
  // gpt-oss-20b's 32 experts, top-4, on 8 ranks: 8 (1 - C(28, 4) / C(32, 4)) = 8 (1 - 20475 / 35960).
  e.n_experts = 32, e.top_k = 4;
  EXPECT_NEAR(e.ranks_per_token(8), 8.0 * (1.0 - 20475.0 / 35960.0), 1e-12);
}

// A stack that sends a token once per rank (DeepEP; PlanOptions::moe_dispatch per_rank) fills the
// all-to-all buffers with t x ranks_per_token rows instead of t x top_k; the experts compute the
// same rows. Qwen3-30B-A3B's shape on ep 8 (16 experts a rank, top-8): 8 x (1 - C(112, 8) / C(128, 8))
// = 5.3 rows a token against 8.
TEST(Moe, PerRankDispatchSendsEachTokenOncePerRank) {
  const ModelSpec m = small_moe();  // 128 experts of 768, top-8, d 2048, SwiGLU
  Layout l;
  l.dp = 8, l.ep = 8, l.microbatch = 2;
  PlanOptions per_rank;
  per_rank.moe_dispatch = TokenDispatch::per_rank;
  const StepPlan a = build_step_plan(m, l, 64, PlanOptions{}), b = build_step_plan(m, l, 64, per_rank);
  double missed = 1;
  for (int i = 0; i < 8; ++i) missed *= (112.0 - i) / (128.0 - i);
  const double rows = 8 * (1 - missed);
  EXPECT_NEAR(rows, 5.3, 0.05);
  const double t = 2.0 * 4096;
  ASSERT_EQ(a.ops.size(), b.ops.size());
  int all_to_alls = 0;
  for (size_t i = 0; i < a.ops.size(); ++i) {
    if (a.ops[i].kind == OpKind::collective && a.ops[i].collective == CollectiveKind::all_to_all) {
      ++all_to_alls;
      EXPECT_DOUBLE_EQ(a.ops[i].comm_bytes, t * 8 * 2048 * 2.0);
      EXPECT_NEAR(b.ops[i].comm_bytes, t * rows * 2048 * 2.0, 1e-6 * b.ops[i].comm_bytes);
      EXPECT_FALSE(a.ops[i].per_rank_routing.active());
      EXPECT_EQ(b.ops[i].per_rank_routing.experts, 128);  // what prices the network's share per node
      EXPECT_EQ(b.ops[i].per_rank_routing.top_k, 8);
    } else {
      EXPECT_EQ(a.ops[i].flops, b.ops[i].flops) << a.ops[i].name;
      EXPECT_EQ(a.ops[i].comm_bytes, b.ops[i].comm_bytes) << a.ops[i].name;
    }
  }
  EXPECT_EQ(all_to_alls, 4);
}

// Tensor parallelism 2 beside expert parallelism 8 (Megatron-Core, expert tensor parallelism 1):
// attention is split as in a dense model; each MoE layer routes the rank's sequence-parallel half
// of the tokens to whole experts on 8 ranks folded over tp x dp, with no tensor-parallel
// collective around it. Against tp 1, ep 8 on the same 16 ranks, by hand: the all-to-all buffers
// and expert GEMM rows halve, expert weights per rank do not, the experts' gradients are reduced
// over 16 / 8 = 2 ranks, and only the attention block's all-gather and reduce-scatter remain.
TEST(Moe, TensorParallelRanksRouteTheirSequenceShareToWholeExperts) {
  const ModelSpec m = small_moe();  // 128 experts of 768, top-8, d 2048, SwiGLU, 48 layers
  Layout l;
  l.tp = 2, l.dp = 8, l.ep = 8, l.microbatch = 2, l.sp = true;
  check_layout(l, m, 16, 64);
  const StepPlan p = build_step_plan(m, l, 64, PlanOptions{});
  const double t = 2.0 * 4096 / 2;  // this rank's sequence-parallel share of a microbatch
  int all_to_alls = 0, gathers = 0, scatters = 0, edp = 0;
  for (const Op& op : p.ops) {
    const std::string_view name(op.name);
    if (op.kind == OpKind::collective && op.collective == CollectiveKind::all_to_all) {
      ++all_to_alls;
      EXPECT_DOUBLE_EQ(op.comm_bytes, t * 8 * 2048 * 2.0);
    }
    if (name == "moe_expert_in" && op.phase == Phase::forward) {
      EXPECT_EQ(op.batch, 16);               // 128 / 8 whole experts
      EXPECT_EQ(op.m, int64_t(t * 8 / 16));  // t x top_k rows over them
      EXPECT_EQ(op.n, 2 * 768);              // not split over tp
    }
    if (name == "moe_router" && op.phase == Phase::forward) {
      EXPECT_EQ(op.m, int64_t(t));
    }
    if (name == "tp_allgather" && op.repeat == Repeat::per_layer_microbatch) gathers += op.phase == Phase::forward;
    if (name == "tp_reducescatter" && op.repeat == Repeat::per_layer_microbatch)
      scatters += op.phase == Phase::forward;
    if (name == "edp_allreduce") {
      ++edp;
      EXPECT_DOUBLE_EQ(op.comm_bytes, p.expert_params_on_device * 2.0);  // over the 2 holders
    }
  }
  EXPECT_EQ(edp, 1);
  EXPECT_EQ(all_to_alls, 4);
  EXPECT_EQ(gathers, 1);  // the attention block's, none for the MoE block
  EXPECT_EQ(scatters, 1);
  EXPECT_EQ(l.expert_replicas_per_pod(), 2);
  // Expert weights on this rank: 16 whole experts a layer, as at tp 1 with ep 8.
  Layout one = l;
  one.tp = 1, one.dp = 16, one.sp = false;
  const StepPlan q = build_step_plan(m, one, 64, PlanOptions{});
  EXPECT_DOUBLE_EQ(p.expert_params_on_device, q.expert_params_on_device);
  // The rest (attention, norms, router, embeddings) is split over tp.
  const double dense_q = q.params_on_device - q.expert_params_on_device;
  EXPECT_NEAR(p.params_on_device - p.expert_params_on_device, dense_q / 2, 1e-9 * dense_q);
}

// Shared experts beside tp 2 (Megatron-Core's SharedExpertMLP): every token of the microbatch,
// gathered from the sequence-parallel shares, through 1/2 of the shared width, reduce-scattered.
// By hand against the same layout without them: one all-gather and one reduce-scatter more a
// layer each way (the microbatch's 8192 tokens of d 2048 in bf16), the GEMMs' shapes, and their
// activations, SwiGLU's 3 tensors of 8192 x 384 in bf16.
TEST(Moe, SharedExpertsSplitOverTensorParallelRanksLikeTheDenseMlp) {
  ModelSpec m = small_moe();  // 128 experts of 768, top-8, d 2048, SwiGLU
  Layout l;
  l.tp = 2, l.dp = 8, l.ep = 8, l.microbatch = 2, l.sp = true;
  const ModelSpec plain = m;
  m.moe.shared_experts = 1;
  check_layout(l, m, 16, 64);
  const StepPlan p = build_step_plan(m, l, 64, PlanOptions{}), q = build_step_plan(plain, l, 64, PlanOptions{});
  auto count = [](const StepPlan& plan, std::string_view name, Phase phase) {
    int n = 0;
    for (const Op& op : plan.ops) n += op.name == name && op.phase == phase && op.repeat == Repeat::per_layer_microbatch;
    return n;
  };
  for (Phase phase : {Phase::forward, Phase::backward})
    for (std::string_view name : {"tp_allgather", "tp_reducescatter"})
      EXPECT_EQ(count(p, name, phase), count(q, name, phase) + 1) << name;
  for (const Op& op : p.ops) {
    if (op.kind == OpKind::collective && op.group == CommGroup::tp && op.repeat == Repeat::per_layer_microbatch) {
      EXPECT_DOUBLE_EQ(op.comm_bytes, 8192.0 * 2048 * 2);
    }
    if (op.name == std::string_view("moe_shared_in") && op.phase == Phase::forward) {
      EXPECT_EQ(op.m, 8192);
      EXPECT_EQ(op.n, 2 * 384);
      EXPECT_EQ(op.k, 2048);
    }
    if (op.name == std::string_view("moe_shared_out") && op.phase == Phase::forward) {
      EXPECT_EQ(op.n, 2048);
      EXPECT_EQ(op.k, 384);
    }
  }
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(p, Recompute::none) - activation_bytes_per_layer(q, Recompute::none),
                   3.0 * 2 * 8192 * 384);
  // Their weights split over tp like the attention's: 3 x 2048 x 768 / 2 a layer more.
  EXPECT_DOUBLE_EQ(p.params_on_device - q.params_on_device, 4.0 * 3 * 2048 * 768 / 2);
}

// A dropless router's tokens per expert are the all-to-all's split sizes and the grouped GEMMs'
// shapes, which the host needs: each MoE layer's forward synchronises once, a recomputed forward
// again; backward reuses the sizes. A capacity factor fixes every shape in advance: no sync.
TEST(Moe, DroplessForwardsSynchroniseTheHostOncePerMoeLayer) {
  ModelSpec m = small_moe();
  Layout l;
  l.dp = 8, l.ep = 8, l.microbatch = 2, l.recompute = Recompute::full;
  auto syncs = [&](Phase phase) {
    int n = 0;
    for (const Op& op : build_step_plan(m, l, 64, PlanOptions{}).ops)
      if (op.phase == phase) {
        n += op.host_syncs;
        if (op.host_syncs) {
          EXPECT_EQ(std::string_view(op.name), "moe_route");
        }
      }
    return n;
  };
  EXPECT_EQ(syncs(Phase::forward), 1);
  EXPECT_EQ(syncs(Phase::recompute), 1);
  EXPECT_EQ(syncs(Phase::backward), 0);
  m.moe.capacity_factor = 1.25;
  EXPECT_EQ(syncs(Phase::forward) + syncs(Phase::recompute), 0);
}

// fp8 expert layers (tensorwise scales, as Transformer Engine runs them): the casts of one
// gpt-oss-120b layer by hand, 4096 tokens, ep 8. Forward, the inputs of Q/K/V (d) and of the output
// projection (heads x q), and each token's 4 dispatched rows into W_in (d) and W_out (expert_d_ff),
// read bf16 and written fp8 (3 bytes), plus the layer's weights on this rank (attention, norms,
// router, 16 of 128 experts); backward, each linear's output gradient once: Q/K/V ((64 + 2 x 8) x
// 64), the output projection (d), and per dispatched row W_in's (2 x expert_d_ff) and W_out's (d).
// Rowwise scales are refused for expert layers.
TEST(Moe, Fp8ExpertLayersCastTheirDispatchedRowsByHand) {
  const ModelSpec m = model_preset("gpt-oss-120b");
  Layout l;
  l.dp = 16, l.ep = 8, l.microbatch = 1;
  PlanOptions o;
  o.fp8_linears = true;
  const StepPlan p = build_step_plan(m, l, 16, o);
  auto cast_bytes = [&](Phase phase) {
    for (const Op& op : p.ops)
      if (op.name == std::string("fp8_cast") && op.phase == phase) return op.bytes;
    return -1.0;
  };
  const double t = 4096, dense = 2 * 2880.0 * 4096 + 2 * 2880.0 * 512 + 2 * 2880 + 2880 * 128;
  const double experts = 128 * 3 * 2880.0 * 2880 / 8;
  EXPECT_NEAR(cast_bytes(Phase::forward), 3 * t * (2880 + 4096 + 4 * (2880 + 2880)) + 3 * (dense + experts), 1e3);
  EXPECT_NEAR(cast_bytes(Phase::backward), 3 * t * ((64 + 16) * 64 + 2880 + 4 * (2 * 2880 + 2880)), 1e3);
  o.fp8_rowwise = true;
  try {
    build_step_plan(m, l, 16, o);
    ADD_FAILURE() << "rowwise fp8 expert layers were priced";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("training.precision"), std::string::npos);
  }
}

TEST(Moe, ExpertParallelismSplitsExpertWeightsAndState) {
  const ModelSpec m = small_moe();
  Layout one, eight;
  one.dp = eight.dp = 8;
  one.sharding = eight.sharding = Sharding::zero1;
  eight.ep = 8;
  const StepPlan a = build_step_plan(m, one, 64, PlanOptions{});
  const StepPlan b = build_step_plan(m, eight, 64, PlanOptions{});
  const double experts = double(m.n_layers) * double(moe_layer_parameters(m).experts);
  EXPECT_NEAR(a.params_on_device - b.params_on_device, experts * 7.0 / 8.0, 1.0);
  EXPECT_NEAR(b.expert_params_on_device, experts / 8.0, 1.0);
  // ZeRO-1 shards the optimizer state of dense weights 8 ways; the experts have one replica each.
  const MemoryBreakdown mb = memory_per_chip(b);
  EXPECT_NEAR(mb.optimizer_state, ((b.params_on_device - experts / 8.0) / 8.0 + experts / 8.0) * 12.0, 16.0);
}

TEST(Moe, LayoutsItDoesNotModelAreRefusedNamingTheField) {
  const ModelSpec m = small_moe();
  auto field_of = [&](const Layout& l, const ModelSpec& model) {
    const std::string field = field_of_error(l, model, l.chips(), 64);
    return field.empty() ? std::string("legal") : field;
  };
  Layout l;
  l.dp = 8;
  l.ep = 3;
  EXPECT_EQ(field_of(l, m), "layout.ep");  // does not divide dp
  l.ep = 8;
  EXPECT_EQ(field_of(l, m), "legal");
  l.tp = 2, l.dp = 4, l.ep = 4;
  EXPECT_EQ(field_of(l, m), "layout.sp");  // tp > 1: the MoE layers route sequence-parallel shares
  l.sp = true;
  EXPECT_EQ(field_of(l, m), "legal");
  l.ep = 8;  // folds over tp x dp: 8 of them
  EXPECT_EQ(field_of(l, m), "legal");
  l.ep = 16;
  EXPECT_EQ(field_of(l, m), "layout.ep");
  l.ep = 1;
  EXPECT_EQ(field_of(l, m), "layout.ep");  // whole experts on every rank: not modelled
  l.ep = 4;
  ModelSpec shared = m;
  shared.moe.shared_experts = 1;
  EXPECT_EQ(field_of(l, shared), "legal");  // a tensor-parallel MLP of their own
  ModelSpec parallel = m;
  parallel.parallel_block = true;
  EXPECT_EQ(field_of(l, parallel), "layout.tp");
  Layout dense;
  dense.dp = 8, dense.ep = 2;
  EXPECT_EQ(field_of(dense, model_preset("palm-8b")), "layout.ep");
}

}  // namespace
}  // namespace palmsim
