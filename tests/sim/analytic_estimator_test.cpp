// The analytic estimator on PaLM's own run (Chowdhery et al. 2022, Sec. 4 and Table 3):
// MFU 46.2 %, HFU 57.8 %, fits in 32 GiB, and two pods at 1.95x one pod's throughput.
#include "hwmodels/comm_model.h"
#include "hwmodels/compute_model.h"
#include "hwmodels/system.h"
#include "model/accounting.h"
#include "model/input_error.h"
#include "sim/layout_search.h"
#include "sim/predict.h"
#include "sim/scenario.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>

namespace palmsim {
namespace {

TEST(AnalyticEstimator, Palm540bOnTwoPodsMatchesThePublishedRun) {
  const Report r = predict(load_scenario("scenarios/palm-540b-tpuv4-6144.yaml"));
  EXPECT_NEAR(r.mfu, 0.462, 0.03);
  EXPECT_NEAR(r.hfu, 0.578, 0.04);
  EXPECT_TRUE(r.fits_in_memory);
  EXPECT_LT(r.memory.total(), 32.0 * (1 << 30));
  // HFU / MFU is fixed by the FLOP accounting: 4.10 / 3.28.
  EXPECT_NEAR(r.hfu / r.mfu, hardware_flops_per_token(model_preset("palm-540b"), Recompute::palm) /
                                 model_flops_per_token(model_preset("palm-540b")), 1e-12);
}

// Context parallelism's K/V as a ring hides only behind the attention beside it: Llama 2 70B at
// 8K tokens, tp 8 x cp 8 over 8 nodes, where the K/V traffic outgrows the attention. Gathered
// beside the whole layer's compute the same traffic hides entirely, so the ring's step is longer by
// what each phase's transfers take beyond its attention, by hand from the per-op seconds:
// (kv.fwd - attn.fwd) + (kv.rec - attn.rec) + (kv.bwd + dkv.bwd - attn.bwd) = 1.27 s. (The
// gathers' slowing of the compute beside them is the next test's; off here.)
TEST(AnalyticEstimator, ContextParallelRingHidesOnlyBehindTheAttention) {
  auto llama = [](const char* cp_comm) {
    return parse_scenario(YAML::Load(std::string(R"(
model: {preset: llama2-70b, seq_len: 8192}
system: {preset: h100-80g-dgx, chips: 64, chip: {overlap_compute_slowdown: 0}}
layout: {tp: 8, pp: 1, dp: 1, cp: 8, microbatch: 1, recompute: full}
training: {global_batch: 32, optimizer: adam, precision: bf16}
stack: {preset: megatron-core, cp_comm: )") + cp_comm + "}\n"), "test");
  };
  EstimateOptions per_op;
  per_op.per_op = true;
  const Report ring = predict(llama("ring"), per_op), gathered = predict(llama("all_gather"), per_op);
  const auto& s = ring.per_op_s;
  const double exposed = (s.at("cp_kv_ring.fwd") - s.at("attention.fwd")) +
                         (s.at("cp_kv_ring.rec") - s.at("attention.rec")) +
                         (s.at("cp_kv_ring.bwd") + s.at("cp_dkv_ring.bwd") - s.at("attention.bwd"));
  EXPECT_GT(exposed, 1.0);
  EXPECT_NEAR(ring.step_time_s - gathered.step_time_s, exposed, 1e-3 * exposed);
  EXPECT_NEAR(ring.breakdown.exposed_comm_s - gathered.breakdown.exposed_comm_s, exposed, 1e-3 * exposed);
  EXPECT_DOUBLE_EQ(s.at("cp_kv_ring.fwd"), gathered.per_op_s.at("cp_kv_allgather.fwd"));  // the same bytes
}

// Collectives on the side stream slow the compute they overlap by the chip's
// overlap_compute_slowdown (H100: 18.9 %, hardware.md): Llama 2 70B under FSDP on 64 H100s, four
// 4K-token sequences a microbatch, where every layer's gathers and reduce-scatter take less than
// its compute, so the step grows by 0.189 x their per-step seconds (by hand from the per-op
// figures) and nothing else moves: exposed communication is the same, and so is the recompute.
TEST(AnalyticEstimator, SideStreamCollectivesSlowTheComputeBesideThem) {
  auto llama = [](double slowdown) {
    return parse_scenario(YAML::Load(R"(
model: {preset: llama2-70b, seq_len: 4096}
system: {preset: h100-80g-dgx, chips: 64, chip: {overlap_compute_slowdown: )" + std::to_string(slowdown) + R"(}}
stack: torchtitan-fsdp2
layout: {tp: 1, pp: 1, dp: 64, microbatch: 4, sharding: fsdp, recompute: full}
training: {global_batch: 256, optimizer: adam, precision: bf16}
)"), "test");
  };
  EXPECT_DOUBLE_EQ(system_preset("h100-80g-dgx").chip.overlap_compute_slowdown, 0.189);
  const Report slowed = predict(llama(0.189), {.per_op = true}), alone = predict(llama(0), {.per_op = true});
  const auto& s = alone.per_op_s;
  const double side = s.at("fsdp_allgather.fwd") + s.at("fsdp_allgather.bwd") + s.at("fsdp_reducescatter.bwd");
  EXPECT_GT(side, 1.0);
  EXPECT_LT(s.at("fsdp_allgather.fwd"), s.at("mlp_in_proj.fwd"));  // each pass's side traffic hides
  EXPECT_NEAR(slowed.step_time_s - alone.step_time_s, 0.189 * side, 1e-9 * side);
  EXPECT_NEAR(slowed.breakdown.compute_s - alone.breakdown.compute_s, 0.189 * side, 1e-9 * side);
  EXPECT_NEAR(slowed.breakdown.beside_collectives_s, 0.189 * side, 1e-9 * side);  // shown as such
  EXPECT_EQ(alone.breakdown.beside_collectives_s, 0.0);
  EXPECT_DOUBLE_EQ(slowed.breakdown.exposed_comm_s, alone.breakdown.exposed_comm_s);
  EXPECT_DOUBLE_EQ(slowed.breakdown.recompute_s, alone.breakdown.recompute_s);
}

// Four thread ranks (pp 2 x dp 2) on one machine: with a core each the step is the pipeline's;
// on two cores they take turns, and the step lasts at least all four ranks' compute over the two
// cores, by hand from the breakdown and the per-op seconds: each rank computes its stage's share,
// the stage without the loss less the logits and loss (half the ranks).
const char* kThreadRanks = R"(
model: {name: tiny, n_layers: 4, d_model: 256, n_heads: 4, n_kv_heads: 1, head_dim: 64, d_ff: 1024, ffn: swiglu,
        vocab: 4096, seq_len: 128, parallel_block: true}
system: {preset: local-cpu, chip: {peak_tflops: 0.2, hbm_gb: 64, hbm_gb_per_s: 20}, chips: 4}
layout: {pp: 2, dp: 2, microbatch: 2}
training: {global_batch: 16, optimizer: adafactor-unfactored}
)";

TEST(AnalyticEstimator, ThreadRanksOnFewerCoresTakeTurns) {
  Scenario s = parse_scenario(YAML::Load(kThreadRanks), "test");
  const Report alone = predict(s, {.per_op = true});
  s.system.shared_cores = 4;  // a core a rank: nothing changes
  EXPECT_DOUBLE_EQ(predict(s).step_time_s, alone.step_time_s);
  s.system.shared_cores = 2;
  const Report shared = predict(s);
  std::set<std::string> loss_ops;  // the per-microbatch compute (logits, loss) of the stage that has it
  const StepPlan plan = build_step_plan(s.model, s.layout, s.global_batch, plan_options_for(s));
  for (const Op& op : plan.ops)
    if (op.repeat == Repeat::per_microbatch && op.kind != OpKind::collective && op.kind != OpKind::p2p)
      loss_ops.insert(std::string(op.name) + "." + phase_suffix(op.phase));
  double loss_stage_only = 0;
  for (const std::string& key : loss_ops) loss_stage_only += alone.per_op_s.at(key);
  EXPECT_GT(loss_stage_only, 0.0);
  const Breakdown& b = alone.breakdown;
  const double per_rank = b.compute_s + b.recompute_s + b.optimizer_s - loss_stage_only / 2;
  EXPECT_GT(per_rank * 4 / 2, alone.step_time_s);  // the cores bound it here
  EXPECT_NEAR(shared.step_time_s, per_rank * 4 / 2, 1e-9);
  EXPECT_NEAR(shared.breakdown.compute_s - b.compute_s, shared.step_time_s - alone.step_time_s, 1e-9);
  EXPECT_NEAR(shared.breakdown.core_wait_s, shared.step_time_s - alone.step_time_s, 1e-9);  // shown as such
  EXPECT_EQ(b.core_wait_s, 0.0);
}

TEST(AnalyticEstimator, TwoPodsOverOnePodThroughput) {
  const Report two = predict(load_scenario("scenarios/palm-540b-tpuv4-6144.yaml"));
  const Report one = predict(load_scenario("scenarios/palm-540b-tpuv4-3072.yaml"));
  const double ratio = two.tokens_per_s / one.tokens_per_s;
  EXPECT_GE(ratio, 1.85);
  EXPECT_LE(ratio, 2.0);
  // The whole difference is the cross-pod transfer over the data-center network.
  EXPECT_NEAR(two.step_time_s - one.step_time_s,
              two.breakdown.exposed_comm_s - one.breakdown.exposed_comm_s, 1e-9);
}

TEST(AnalyticEstimator, BreakdownAddsUpToTheStep) {
  for (const char* f : {"scenarios/palm-540b-tpuv4-6144.yaml", "scenarios/palm-540b-h100-6144.yaml",
                        "scenarios/palm-62b-tpuv4.yaml", "scenarios/palm-8b-tpuv4.yaml"}) {
    const Report r = predict(load_scenario(f), {.per_op = true});
    EXPECT_NEAR(r.breakdown.total(), r.step_time_s, 1e-9) << f;
    EXPECT_GT(r.breakdown.compute_s, 0.0) << f;
    EXPECT_GT(r.mfu, 0.05) << f;
    EXPECT_LT(r.mfu, 0.9) << f;
    EXPECT_FALSE(r.per_op_s.empty()) << f;
  }
}

// 1F1B by hand from the per-op seconds. The last stage's steady state is m slots of its layers,
// sends, logits and loss; the fill and drain pass the first microbatch's forward and the last one's
// backward through the pp - 1 stages before it: their layers and sends only (a stage that runs ahead
// with buffered sends), or a whole slot of the last stage's (a stack whose stages it paces). Megatron
// 175B, 8 stages, 64 microbatches, no data parallelism, tied embeddings (their gradient summed between
// the first and last stage once a step).
TEST(AnalyticEstimator, PipelineBubbleOfOneF1BByHand) {
  Scenario s = load_scenario("scenarios/palm-540b-h100-6144.yaml");
  s.model = model_preset("gpt3-175b");
  s.system = system_preset("a100-80g-dgx");
  s.n_chips = 64;
  s.global_batch = 64;
  s.layout = Layout{};
  s.layout.tp = 8, s.layout.pp = 8, s.layout.dp = 1, s.layout.microbatch = 1, s.layout.sp = true;
  s.layout.recompute = Recompute::selective;
  ASSERT_TRUE(s.model.tied_embeddings);
  for (bool paced : {false, true}) {
    s.system.stack.pipeline_paced_by_last_stage = paced;
    const Report r = predict(s, {.per_op = true});
    double stage_end = 0, per_step = 0;  // per step: the last stage's logits and loss; the once-a-step ops
    for (const auto& [name, seconds] : r.per_op_s) {
      if (name.starts_with("(")) continue;  // the stack's floors, already inside each op's seconds
      if (name.starts_with("final_ln.") || name.starts_with("logits.") || name.starts_with("loss.") ||
          name.starts_with("loss_allreduce."))
        stage_end += seconds;
      if (name.ends_with(".opt") || name == "embedding_allreduce.bwd") per_step += seconds;
    }
    ASSERT_GT(r.per_op_s.count("embedding_allreduce.bwd"), 0u);
    const double slot = (r.step_time_s - r.breakdown.bubble_s - per_step) / 64;  // the steady state's
    const double fill = paced ? slot : slot - stage_end / 64;
    EXPECT_NEAR(r.breakdown.bubble_s, 7 * fill, 1e-9 * r.step_time_s) << "paced " << paced;
  }
  // Interleaving three chunks per stage cuts the bubble three-fold (more sends, same compute).
  s.system.stack.pipeline_paced_by_last_stage = false;
  const Report r = predict(s);
  s.layout.vpp = 3, s.layout.schedule = Schedule::interleaved;
  const Report ri = predict(s);
  EXPECT_NEAR(ri.breakdown.bubble_s / r.breakdown.bubble_s, 1.0 / 3, 0.01);
}

// ZB-H1 by hand: the same 175B pipeline, its fill and drain shortened by twice the weight
// gradients of a stage's 12 layers, (pp - 1)(F + B - W) against (pp - 1)(F + B + W). W of one layer
// on a tensor-parallel rank of 8: dW = X^T dY of Megatron's four linear layers (d 12288, 96 heads
// of 128 over 8 ranks, FFN 4d, 2048 tokens), priced at the chip's GEMM efficiency for that shape.
TEST(AnalyticEstimator, ZeroBubbleH1BubbleByHand) {
  Scenario s = load_scenario("scenarios/palm-540b-h100-6144.yaml");
  s.model = model_preset("gpt3-175b");
  s.system = system_preset("a100-80g-dgx");
  s.system.stack.schedules.clear();  // a stack that runs any schedule
  s.n_chips = 64;
  s.global_batch = 64;
  s.layout = Layout{};
  s.layout.tp = 8, s.layout.pp = 8, s.layout.dp = 1, s.layout.microbatch = 1, s.layout.sp = true;
  s.layout.recompute = Recompute::selective;
  const Report one_f_one_b = predict(s);
  s.layout.schedule = Schedule::zero_bubble_h1;
  const Report zb = predict(s);
  const ComputeModel compute(stack_adjusted(s.system).chip);
  const double w = compute.gemm_seconds(12288, 3 * 1536, 2048) + compute.gemm_seconds(1536, 12288, 2048) +
                   compute.gemm_seconds(12288, 6144, 2048) + compute.gemm_seconds(6144, 12288, 2048);
  EXPECT_NEAR(one_f_one_b.breakdown.bubble_s - zb.breakdown.bubble_s, 7 * 2 * 12 * w, 1e-9 * zb.step_time_s);
  // Only the bubble moves: the same work, communication and memory.
  EXPECT_NEAR(one_f_one_b.step_time_s - zb.step_time_s, one_f_one_b.breakdown.bubble_s - zb.breakdown.bubble_s,
              1e-9 * zb.step_time_s);
  EXPECT_DOUBLE_EQ(one_f_one_b.memory.total(), zb.memory.total());
  EXPECT_GT(zb.breakdown.bubble_s, 0.0);
}

// Expert parallelism on a TPU slice: the dispatch all-to-all is bisection-bound over the
// segments ep takes of the data-parallel axes, by hand from those segments, per layer and
// microbatch: max over axes of n L stride / (8 on a ring, 4 on a line) / B, plus a link latency per
// hop of each axis's diameter.
TEST(AnalyticEstimator, ExpertAllToAllOnATorusByHand) {
  Scenario s = parse_scenario(YAML::Load(R"(
model: qwen3-30b-a3b
system: {preset: tpu-v4-pod, chips: 256}
layout: {tp: 1, pp: 1, dp: 256, ep: 16, microbatch: 1, sharding: fsdp, recompute: full}
training: {global_batch: 256, optimizer: adam}
)"), "test");
  for (int ep : {4, 16, 64}) {
    s.layout.ep = ep;
    EstimateOptions o;
    o.per_op = true;
    const Report r = predict(s, o);
    const CommModel comm(s.system, s.layout);
    TorusSegments segs, rest;
    ASSERT_TRUE(comm.torus().split_expert_groups(ep, segs, rest));
    const TorusFabric& f = s.system.torus;
    const double bw = f.link_bytes_per_s * f.collective_efficiency * s.system.stack.collective_efficiency_scale;
    const double n = 4096.0 * s.model.moe.top_k * s.model.d_model * 2;  // tokens x top-k x d, bf16
    double slowest = 0, hops = 0;
    for (const TorusSegment& g : segs) {
      slowest = std::max(slowest, n * g.length * g.stride / ((g.wraps ? 8.0 : 4.0) * bw));
      hops += g.wraps ? g.length / 2.0 : g.length - 1.0;
    }
    const double per_call = slowest + hops * f.link_latency_s;
    const double layers = s.model.n_layers;  // every layer is a MoE layer; one microbatch
    EXPECT_NEAR(r.per_op_s.at("moe_dispatch.fwd"), per_call * layers, 1e-9 * per_call * layers) << "ep " << ep;
    // The breakdown's all-to-all share: dispatch and combine in forward, recompute and backward,
    // all blocking, nothing else.
    double all_to_all = 0;
    for (const auto& [name, seconds] : r.per_op_s)
      if (name.starts_with("moe_dispatch.") || name.starts_with("moe_combine.")) all_to_all += seconds;
    EXPECT_NEAR(r.breakdown.all_to_all_s, all_to_all, 1e-9 * all_to_all) << "ep " << ep;
    EXPECT_NEAR(all_to_all, 6 * per_call * layers, 1e-9 * all_to_all) << "ep " << ep;
    EXPECT_LT(r.breakdown.all_to_all_s, r.breakdown.exposed_comm_s);
  }
}

// Switch-style routing (Fedus et al. 2021): top-1, a capacity factor of 1.25, experts in every
// other layer. With ep 64 each rank holds one expert whose buffer is padded to 1.25 x its fair
// share of a rank's 2048 routed tokens, ceil(2048 x 1 x 1.25 / 1) = 2560 rows, whatever the router
// does; the shapes are fixed, so nothing synchronises with the host.
TEST(Moe, SwitchStyleCapacityPadsEachExpertsBufferByHand) {
  const Scenario s = load_scenario("scenarios/switch-style-64e-tpuv4-512.yaml");
  const StepPlan p = build_step_plan(s.model, s.layout, s.global_batch, PlanOptions{});
  int expert_in = 0, syncs = 0;
  for (const Op& op : p.ops) {
    syncs += op.host_syncs;
    if (std::string_view(op.name) == "moe_expert_in" && op.phase == Phase::forward) {
      ++expert_in;
      EXPECT_EQ(op.batch, 1);
      EXPECT_EQ(op.m, 2560);
      EXPECT_EQ(op.n, 2 * 10240);  // gated GELU: gate and up
      EXPECT_DOUBLE_EQ(op.multiplicity, 0.5);  // every other layer
    }
  }
  EXPECT_EQ(expert_in, 1);
  EXPECT_EQ(syncs, 0);
}

}  // namespace
}  // namespace palmsim

namespace palmsim {
namespace {

Scenario combined_scenario(const std::string& layout, bool overlap) {
  return parse_scenario(YAML::Load("model: qwen3-30b-a3b\n"
                                   "system: {preset: h100-80g-dgx, chips: 16}\n"
                                   "stack: {preset: megatron-core, overlap_moe_a2a: " +
                                   std::string(overlap ? "true" : "false") + "}\nlayout: " + layout +
                                   "\ntraining: {global_batch: 64, optimizer: adam, precision: bf16}\n"),
                        "combined.yaml");
}

// Megatron-Core's combined 1F1B without a pipeline: Qwen3-30B-A3B, ep 16 over both nodes, 4
// microbatches. Each of the 3 pairs (F(i + 1) with B(i)) lasts, by hand from the chunk's pass
// times, as long as both passes less what the other's compute hides of each one's all-to-alls
// and waits for the host (a and b; all but the backward's last layer's), or the longer pass:
// max(F, B, F - a + B - b + b / layers). Here the forward is host-bound (10 ms a dropless MoE
// layer against 2-3 ms of device work), so the pair lasts the forward and hides the whole
// backward. Compute and the other collectives do not move; no bubble. The extra warm-up forward
// holds a second microbatch's activations.
TEST(AnalyticEstimator, CombinedOneFOneBHidesWhatEachPairCan) {
  const std::string layout = "{tp: 1, pp: 1, dp: 16, ep: 16, microbatch: 1, sharding: zero1, recompute: selective}";
  const Report plain = predict(combined_scenario(layout, false)), paired = predict(combined_scenario(layout, true));
  const PassSeconds& p = paired.pipeline_passes;
  ASSERT_TRUE(p.combined_moe);
  // One stage holds the loss: its passes carry the logits and loss too.
  const double F = p.forward + p.loss_forward, B = p.backward + p.loss_backward, a = p.forward_comm, b = p.backward_comm;
  EXPECT_GT(p.forward_host, 0.0);
  EXPECT_DOUBLE_EQ(p.backward_host, 0.0);
  const double pair = std::max({F, B, F - a + B - b + b / p.layers});
  EXPECT_DOUBLE_EQ(pair, F);  // host-bound
  EXPECT_NEAR(plain.step_time_s - paired.step_time_s, 3.0 * (F + B - pair), 1e-9);
  EXPECT_NEAR(paired.breakdown.bubble_s, 0.0, 1e-9);
  // The backward's compute fills the forward's waits for the host first, then its all-to-alls.
  const double idle = pair - (F - a) - (B - b);
  const double hidden_host = p.forward_host - std::min(idle, p.forward_host);
  EXPECT_NEAR(plain.breakdown.host_sync_s - paired.breakdown.host_sync_s, 3.0 * hidden_host, 1e-9);
  EXPECT_NEAR(plain.breakdown.compute_s - paired.breakdown.compute_s, 3.0 * hidden_host, 1e-9);
  EXPECT_NEAR(plain.breakdown.all_to_all_s - paired.breakdown.all_to_all_s, 3.0 * (F + B - pair - hidden_host), 1e-9);
  EXPECT_NEAR(paired.memory.activations, 2.0 * plain.memory.activations, 1e-6 * plain.memory.activations);
  EXPECT_FALSE(plain.pipeline_passes.combined_moe);
  // Without the host's waits (a token-drop run has none) and with ep 8 inside a node, the pairs
  // are compute-bound and hide both passes' all-to-alls but the backward's last layer's:
  // 3 (a + b - b / layers).
  const std::string node = "{tp: 1, pp: 1, dp: 16, ep: 8, microbatch: 1, sharding: zero1, recompute: selective}";
  Scenario s = combined_scenario(node, true), t = combined_scenario(node, false);
  s.model.moe.capacity_factor = t.model.moe.capacity_factor = 1.0;
  const Report drop = predict(s), drop_plain = predict(t);
  const PassSeconds& q = drop.pipeline_passes;
  ASSERT_DOUBLE_EQ(q.forward_host, 0.0);
  const double Fq = q.forward + q.loss_forward, Bq = q.backward + q.loss_backward;
  ASSERT_GT(Fq - q.forward_comm + Bq - q.backward_comm + q.backward_comm / q.layers, std::max(Fq, Bq));
  EXPECT_NEAR(drop_plain.step_time_s - drop.step_time_s, 3.0 * (q.forward_comm + q.backward_comm - q.backward_comm / q.layers),
              1e-9);
  EXPECT_NEAR(drop_plain.breakdown.all_to_all_s, 4.0 * (q.forward_comm + q.backward_comm), 1e-9);
}

// What Megatron-Core refuses beside --overlap-moe-expert-parallel-comm is refused, naming the
// field; search never proposes it; without expert all-to-alls the flag changes nothing.
TEST(AnalyticEstimator, CombinedOneFOneBRunsWhereMegatronRunsIt) {
  auto field_of = [](const std::string& layout) {
    try {
      predict(combined_scenario(layout, true));
    } catch (const InputError& e) {
      return e.field();
    }
    return std::string();
  };
  EXPECT_EQ(field_of("{pp: 2, dp: 8, ep: 8, microbatch: 1}"), "layout.schedule");  // 1F1B over a pipeline
  EXPECT_EQ(field_of("{pp: 2, vpp: 2, dp: 8, ep: 8, microbatch: 1}"), "");          // interleaved
  EXPECT_EQ(field_of("{dp: 16, ep: 8, microbatch: 1, recompute: full}"), "layout.recompute");
  EXPECT_EQ(field_of("{dp: 16, ep: 1, microbatch: 1, recompute: full}"), "");  // no all-to-all to hide
  Scenario s = combined_scenario("{dp: 16, ep: 8, microbatch: 1}", true);
  LayoutConstraints fixed;
  fixed.pp = 2, fixed.ep = 8, fixed.tp = 1, fixed.cp = 1;
  const SearchResult r = search_layouts(s, 50, fixed);
  ASSERT_FALSE(r.top.empty());
  for (const Report& rep : r.top) {
    EXPECT_EQ(rep.layout.schedule, Schedule::interleaved);
    EXPECT_NE(rep.layout.recompute, Recompute::full);
  }
}

// The pipeline's message between two stages is one chunk's send, however many chunks a stage has
// (the plan lists vpp of them a microbatch, each the same tensor).
TEST(AnalyticEstimator, APipelineMessageIsOneChunksSend) {
  const Report one = predict(combined_scenario("{pp: 2, vpp: 1, dp: 8, ep: 8, microbatch: 1}", false));
  const Report four = predict(combined_scenario("{pp: 2, vpp: 4, dp: 8, ep: 8, microbatch: 1}", false));
  EXPECT_GT(one.pipeline_passes.message, 0.0);
  EXPECT_DOUBLE_EQ(four.pipeline_passes.message, one.pipeline_passes.message);
}

}  // namespace
}  // namespace palmsim

namespace palmsim {
namespace {

// A pipeline split that counts the loss as a layer (Megatron-Core's account_for_*_in_pipeline_split,
// layout.account_ends): 30 layers + embedding + loss on 4 stages, 8 each, so the last stage holds
// 7 layers and the loss where the even split gives it 8 and the loss. By hand from the pass
// times: its logits and loss lose a layer's forward and a layer's backward (PaLM 8B's 256K
// vocabulary outweighs a layer), and the step 8 microbatches' worth of both; nothing else moves.
TEST(AnalyticEstimator, ASplitCountingTheLossTakesALayerOffItsStage) {
  auto scenario = [](bool account) {
    return parse_scenario(YAML::Load(std::string("model: {preset: palm-8b, n_layers: 30}\n"
                                                 "system: {preset: h100-80g-dgx, chips: 16}\n"
                                                 "stack: megatron-core\n"
                                                 "layout: {tp: 1, pp: 4, dp: 4, microbatch: 1, sharding: zero1, account_ends: ") +
                                     (account ? "true" : "false") + "}\ntraining: {global_batch: 32}\n"),
                          "split.yaml");
  };
  const Report even = predict(scenario(false)), accounted = predict(scenario(true));
  const PassSeconds &e = even.pipeline_passes, &a = accounted.pipeline_passes;
  ASSERT_DOUBLE_EQ(e.layers, a.layers);  // 8 a stage either way: the heaviest stages are unchanged
  const double layer_f = (e.forward - e.forward_comm) / e.layers, layer_b = (e.backward - e.backward_comm) / e.layers;
  ASSERT_GT(e.loss_forward, layer_f);
  EXPECT_NEAR(e.loss_forward - a.loss_forward, layer_f, 1e-12);
  EXPECT_NEAR(e.loss_backward - a.loss_backward, layer_b, 1e-12);
  EXPECT_NEAR(even.step_time_s - accounted.step_time_s, 8.0 * (layer_f + layer_b), 1e-9);
  EXPECT_NEAR(even.breakdown.exposed_comm_s, accounted.breakdown.exposed_comm_s, 1e-12);
  // Without a pipeline there is nothing to split; a split that does not divide is refused.
  Scenario one = scenario(true);
  Layout flat = one.layout;
  flat.pp = 1, flat.dp = 16;
  EXPECT_DOUBLE_EQ(predict(one, flat).step_time_s, predict(scenario(false), flat).step_time_s);
  Layout uneven = one.layout;
  uneven.pp = 8, uneven.dp = 2;  // 32 over 8 stages: fine; 6 chunks would not be
  EXPECT_NO_THROW(predict(one, uneven));
  try {
    Layout six = one.layout;
    six.pp = 2, six.vpp = 3, six.dp = 8, six.schedule = Schedule::interleaved;  // 32 over 6 chunks
    check_layout(six, one.model, 16, 32);
    ADD_FAILURE() << "an uneven split that counts the ends was accepted";
  } catch (const InputError& err) {
    EXPECT_EQ(err.field(), "layout.account_ends");
  }
}

}  // namespace
}  // namespace palmsim
