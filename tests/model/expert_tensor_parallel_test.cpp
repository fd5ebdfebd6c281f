// Expert tensor parallelism (issue 12): the MoE layers fold a stage's ranks into etp x ep x edp,
// etp fastest (Megatron-Core's parallel folding); each expert's hidden width is split over etp
// ranks, which all-gather the rows routed to them and reduce-scatter the outputs. The groups, the
// plan's shapes and bytes, the weights and activations per chip by hand, and what is refused.
#include "model/accounting.h"
#include "model/input_error.h"
#include "model/memory.h"
#include "model/rank_order.h"
#include "model/step_plan.h"
#include "tests/model/layout_refusal.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace palmsim {
namespace {

ModelSpec small_moe() {  // 128 experts of 768, top-8, d 2048, SwiGLU, 4 layers
  ModelSpec m = model_preset("qwen3-30b-a3b");
  m.n_layers = 4;
  m.tied_embeddings = true;
  m.vocab = 32768;
  return m;
}

// tp 2 x dp 8 (16 ranks a stage), experts on ep 4 groups of etp 2.
Layout folded(int ep, int etp) {
  Layout l;
  l.tp = 2, l.dp = 8, l.ep = ep, l.etp = etp, l.microbatch = 2, l.sp = true;
  return l;
}

std::vector<int> members(CommGroup g, const Layout& l, int rank) {
  std::vector<int> out;
  const RankGroup r = megatron_group(g, l);
  for (int m = 0; m < r.size; ++m) out.push_back(group_peer(rank, r, m));
  return out;
}

// By hand for rank 5 of 16: etp neighbours {4, 5}; the ep group takes every other rank of its
// eight (stride etp); the ranks 8 apart hold the same expert shards. Every rank is one distinct
// (etp, ep, edp) coordinate: the three groups tile the stage.
TEST(ExpertTensorParallel, GroupsFoldEtpFastestThenEpThenEdp) {
  const Layout l = folded(4, 2);
  EXPECT_EQ(members(CommGroup::etp, l, 5), (std::vector<int>{4, 5}));
  EXPECT_EQ(members(CommGroup::ep, l, 5), (std::vector<int>{1, 3, 5, 7}));
  EXPECT_EQ(members(CommGroup::edp, l, 5), (std::vector<int>{5, 13}));
  EXPECT_EQ(l.expert_ranks(), 8);
  EXPECT_EQ(l.expert_replicas_per_pod(), 2);
  std::set<std::tuple<int, int, int>> coords;
  for (int rank = 0; rank < 16; ++rank)
    coords.insert({group_member(rank, megatron_group(CommGroup::etp, l)), group_member(rank, megatron_group(CommGroup::ep, l)),
                   group_member(rank, megatron_group(CommGroup::edp, l))});
  EXPECT_EQ(coords.size(), 16u);
  // etp 1 is the order palmsim had before: ep neighbours adjacent.
  EXPECT_EQ(members(CommGroup::ep, folded(8, 1), 5), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// tp 2, ep 4, etp 2, 2 sequences of 4096 a microbatch: this rank routes its sequence-parallel
// 4096 tokens, 32768 rows; its 32 experts receive 1024 rows each, 2048 once gathered over etp,
// and compute them at 768 / 2 = 384 of the hidden width. Against etp 1 on the same ranks, by hand:
// the all-to-all is unchanged, the gather and reduce-scatter carry the 2048 x 32 rows of d 2048,
// the expert GEMMs have twice the rows and half the width (the same FLOPs), and each rank holds
// half the expert weights.
TEST(ExpertTensorParallel, GathersTheRoutedRowsAndSplitsTheExpertWidth) {
  const ModelSpec m = small_moe();
  const Layout l = folded(4, 2);
  check_layout(l, m, 16, 64);
  const StepPlan p = build_step_plan(m, l, 64, PlanOptions{});
  const StepPlan whole = build_step_plan(m, folded(4, 1), 64, PlanOptions{});
  const double bf16 = 2.0;
  std::vector<std::string> forward;
  int gathers = 0, scatters = 0;
  for (const Op& op : p.ops) {
    const std::string_view name(op.name);
    if (op.repeat == Repeat::per_layer_microbatch && op.phase == Phase::forward && name.rfind("moe_", 0) == 0)
      forward.emplace_back(name);
    if (op.kind == OpKind::collective && op.collective == CollectiveKind::all_to_all) {
      EXPECT_DOUBLE_EQ(op.comm_bytes, 4096.0 * 8 * 2048 * bf16);
    }
    if (name == "moe_etp_allgather" || name == "moe_etp_reducescatter") {
      EXPECT_EQ(op.group, CommGroup::etp);
      EXPECT_DOUBLE_EQ(op.comm_bytes, 2048.0 * 32 * 2048 * bf16);
      gathers += op.collective == CollectiveKind::all_gather;
      scatters += op.collective == CollectiveKind::reduce_scatter;
    }
    if (name == "moe_expert_in" && op.phase == Phase::forward) {
      EXPECT_EQ(op.batch, 32);
      EXPECT_EQ(op.m, 2048);
      EXPECT_EQ(op.n, 2 * 384);
      EXPECT_EQ(op.k, 2048);
    }
    if (name == "moe_expert_out" && op.phase == Phase::forward) {
      EXPECT_EQ(op.m, 2048);
      EXPECT_EQ(op.n, 2048);
      EXPECT_EQ(op.k, 384);
    }
  }
  EXPECT_EQ(gathers, 2);  // forward's rows, backward's output gradients
  EXPECT_EQ(scatters, 2);  // forward's outputs, backward's input gradients
  EXPECT_EQ(forward, (std::vector<std::string>{"moe_router", "moe_route", "moe_permute", "moe_dispatch",
                                               "moe_etp_allgather", "moe_expert_in", "moe_expert_act",
                                               "moe_expert_out", "moe_etp_reducescatter", "moe_combine",
                                               "moe_unpermute"}));
  auto expert_flops = [](const StepPlan& plan) {
    double f = 0;
    for (const Op& op : plan.ops)
      if (std::string_view(op.name).rfind("moe_expert_", 0) == 0 && op.kind == OpKind::gemm) f += op.flops;
    return f;
  };
  EXPECT_DOUBLE_EQ(expert_flops(p), expert_flops(whole));
  const double experts = 4.0 * mean_expert_parameters(m);
  EXPECT_DOUBLE_EQ(whole.expert_params_on_device, experts / 4);
  EXPECT_DOUBLE_EQ(p.expert_params_on_device, experts / 8);
  // The rest (attention, norms, router, embeddings) is split over tp alike.
  EXPECT_DOUBLE_EQ(p.params_on_device - p.expert_params_on_device,
                   whole.params_on_device - whole.expert_params_on_device);
  // Expert gradients are reduced over the 16 / (4 x 2) = 2 ranks holding the same shards.
  for (const Op& op : p.ops)
    if (std::string_view(op.name) == "edp_allreduce") {
      EXPECT_EQ(op.group, CommGroup::edp);
      EXPECT_DOUBLE_EQ(op.comm_bytes, p.expert_params_on_device * bf16);
    }
}

// Megatron-LM's classic split (ep 1, etp = tp, its default when --expert-tensor-parallel-size is
// unset): every rank holds all 128 experts at half their width and exchanges no all-to-all; the
// gather brings the tensor-parallel pair's 2 x 32768 rows to each rank.
TEST(ExpertTensorParallel, EpOneWithEtpEqualToTpSplitsEveryExpertLikeTheDenseMlp) {
  const ModelSpec m = small_moe();
  const Layout l = folded(1, 2);
  check_layout(l, m, 16, 64);
  const StepPlan p = build_step_plan(m, l, 64, PlanOptions{});
  int gathers = 0;
  for (const Op& op : p.ops) {
    EXPECT_NE(op.collective, CollectiveKind::all_to_all) << op.name;
    if (std::string_view(op.name) == "moe_etp_allgather" && op.phase == Phase::forward) {
      ++gathers;
      EXPECT_DOUBLE_EQ(op.comm_bytes, 2.0 * 32768 * 2048 * 2.0);
    }
    if (std::string_view(op.name) == "moe_expert_in" && op.phase == Phase::forward) {
      EXPECT_EQ(op.batch, 128);
      EXPECT_EQ(op.m, 512);  // 32768 rows over 128 experts, gathered twice
    }
  }
  EXPECT_EQ(gathers, 1);
  EXPECT_DOUBLE_EQ(p.expert_params_on_device, 4.0 * mean_expert_parameters(m) / 2);
}

// What etp changes in the memory per chip, by hand: expert weights (and their gradients and
// optimizer state, one replica pair) halve; each MoE layer keeps the gathered rows for backward,
// 4096 x 8 rows of d 2048 more in bf16, while the hidden activations are the same bytes.
TEST(ExpertTensorParallel, MemoryHoldsHalfTheExpertsAndTheGatheredRows) {
  const ModelSpec m = small_moe();
  const StepPlan split = build_step_plan(m, folded(4, 2), 64, PlanOptions{});
  const StepPlan whole = build_step_plan(m, folded(4, 1), 64, PlanOptions{});
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(split, Recompute::none) - activation_bytes_per_layer(whole, Recompute::none),
                   2.0 * 4096 * 8 * 2048);
  const MemoryBreakdown a = memory_per_chip(split), b = memory_per_chip(whole);
  const double bytes_per_weight = 2.0;
  EXPECT_NEAR(b.weights - a.weights, bytes_per_weight * 4.0 * mean_expert_parameters(m) / 8, 1.0);
}

TEST(ExpertTensorParallel, LayoutsItDoesNotModelAreRefusedNamingTheField) {
  const ModelSpec m = small_moe();
  auto field_of = [&](const Layout& l, const ModelSpec& model) {
    const std::string field = field_of_error(l, model, l.chips(), 64);
    return field.empty() ? std::string("legal") : field;
  };
  Layout l = folded(4, 0);
  EXPECT_EQ(field_of(l, m), "layout.etp");
  l.etp = 4;
  EXPECT_EQ(field_of(l, m), "legal");  // 4 x 4 of 16
  l.ep = 8;
  EXPECT_EQ(field_of(l, m), "layout.etp");  // 8 x 4 ranks of 16
  l.ep = 1, l.etp = 1;
  EXPECT_EQ(field_of(l, m), "layout.ep");  // tp 2 beside whole experts on every rank
  Layout odd;
  odd.dp = 10, odd.ep = 2, odd.etp = 5;  // 10 ranks fold into 5 x 2, but 5 does not divide 768
  EXPECT_EQ(field_of(odd, m), "layout.etp");
  Layout dense;
  dense.tp = 2, dense.dp = 4, dense.etp = 2;
  EXPECT_EQ(field_of(dense, model_preset("palm-8b")), "layout.etp");
  // DeepEP's per-rank dispatch hands tokens to whole experts.
  PlanOptions deepep;
  deepep.moe_dispatch = TokenDispatch::per_rank;
  try {
    build_step_plan(m, folded(4, 2), 64, deepep);
    ADD_FAILURE() << "a per-rank dispatch with etp 2 was priced";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("layout.etp", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace palmsim
