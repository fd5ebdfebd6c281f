// Activation memory against Korthikanti et al. 2022 (Sec. 4, Table 2): bytes per layer
//   no parallelism:          s b h (34 + 5 a s / h)
//   tensor parallel t:       s b h (10 + 24 / t + 5 a s / (h t))
//   + sequence parallel:     s b h / t (34 + 5 a s / h)
//   + selective recompute:   34 s b h / t
//   full recompute:          2 s b h
#include "model/accounting.h"
#include "model/memory.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

StepPlan gpt_plan(int tp, bool sp, Recompute r, int microbatch) {
  ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = tp, l.sp = sp, l.recompute = r, l.microbatch = microbatch, l.dp = 1;
  PlanOptions o;
  return build_step_plan(m, l, microbatch, o);
}

TEST(Memory, ActivationsPerLayerMatchKorthikanti) {
  const double s = 2048, b = 2, h = 12288, a = 96;
  const double sbh = s * b * h;
  auto bytes = [&](int tp, bool sp, Recompute r) {
    const StepPlan p = gpt_plan(tp, sp, r, int(b));
    return activation_bytes_per_layer(p, r);
  };
  EXPECT_DOUBLE_EQ(bytes(1, false, Recompute::none), sbh * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(bytes(8, false, Recompute::none), sbh * (10 + 24.0 / 8 + 5 * a * s / (h * 8)));
  EXPECT_DOUBLE_EQ(bytes(8, true, Recompute::none), sbh / 8 * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(bytes(8, true, Recompute::selective), 34 * sbh / 8);
  EXPECT_DOUBLE_EQ(bytes(1, false, Recompute::full), 2 * sbh);
}

TEST(Memory, StaticMemoryOfMixedPrecisionAdamIs18BytesPerParameterOnGpus) {
  // Megatron with bf16: bf16 weights (2), fp32 gradients (4), fp32 master + two moments (12).
  StepPlan p = gpt_plan(8, true, Recompute::selective, 1);
  p.options.grad_reduce_bytes = 4;
  const MemoryBreakdown mem = memory_per_chip(p);
  EXPECT_DOUBLE_EQ(mem.weights + mem.gradients + mem.optimizer_state, 18.0 * p.params_on_device);
}

// Adafactor as Shazeer & Stern define it keeps, per weight matrix, one row sum and one column sum
// of the squared gradients and no first moment. PaLM 8B by hand (32 layers of 4096, 16 query heads
// and 1 K/V head of 256, SwiGLU of 16384, parallel blocks, tied 256K embedding):
//   attention (4096 + 4096) + 2 (4096 + 256) + (4096 + 4096) = 25088
//   SwiGLU    2 (4096 + 16384) + (16384 + 4096)               = 61440
//   LayerNorm scale (one per parallel block)                  =  4096
//   32 layers x 90624 + embedding (256000 + 4096) + final norm 4096 = 3164160.
// PaLM's own Adafactor ("without factorization", beta1 0.9) keeps Adam's two moments.
TEST(Memory, FactoredAdafactorKeepsRowAndColumnSumsOnly) {
  const ModelSpec m = model_preset("palm-8b");
  ASSERT_EQ(factored_second_moment_elements(m), 3164160);
  Layout l;
  l.dp = 1, l.microbatch = 1;
  PlanOptions o;
  auto plan_with = [&](Optimizer opt) {
    o.optimizer = opt;
    return build_step_plan(m, l, 1, o);
  };
  const StepPlan adam = plan_with(Optimizer::adam), palm = plan_with(Optimizer::adafactor_unfactored),
                 factored = plan_with(Optimizer::adafactor);
  const double n = adam.params_on_device;
  EXPECT_DOUBLE_EQ(memory_per_chip(adam).optimizer_state, 12.0 * n);
  EXPECT_DOUBLE_EQ(memory_per_chip(palm).optimizer_state, 12.0 * n);
  EXPECT_NEAR(memory_per_chip(factored).optimizer_state, 4.0 * n + 4.0 * 3164160, 1e-6 * n);
  // The update streams 30 bytes per parameter under Adam (gradient, master and two moments read;
  // master, moments and the bf16 copy written) and 18 factored (gradient twice, master, bf16 copy).
  auto update_bytes = [](const StepPlan& p) {
    for (const Op& op : p.ops)
      if (std::string(op.name) == "optimizer") return op.bytes;
    return 0.0;
  };
  EXPECT_DOUBLE_EQ(update_bytes(adam), 30.0 * n);
  EXPECT_DOUBLE_EQ(update_bytes(factored), 18.0 * n);
}

TEST(Memory, FsdpShardsEverythingOverDataParallelRanksOfAPod) {
  ModelSpec m = model_preset("palm-540b");
  Layout l;
  l.tp = 12, l.dp = 512, l.pods = 2, l.microbatch = 4, l.sp = true;
  l.sharding = Sharding::fsdp, l.recompute = Recompute::palm;
  const StepPlan p = build_step_plan(m, l, 2048, PlanOptions{});
  const MemoryBreakdown mem = memory_per_chip(p);
  // 540.35e9 parameters over 12 x 256 chips. FSDP keeps each shard once, in fp32 (4 bytes): it is
  // the master weight, so the optimizer adds only the two fp32 moments (8 bytes), and fp32
  // gradients make FSDP's static memory 16 bytes per parameter shard, not mixed precision's 18.
  const double shard = double(parameter_count(m)) / 3072;
  EXPECT_NEAR(mem.weights, shard * 4, 0.002 * mem.weights);
  EXPECT_NEAR(mem.optimizer_state, shard * 8, 0.002 * mem.optimizer_state);
  // One sharded bf16 activation per layer: 4 x 2048 tokens x 18432 / 12 x 2 bytes x 118 layers.
  EXPECT_DOUBLE_EQ(mem.activations, 4.0 * 2048 * 18432 / 12 * 2 * 118);
}

// The loss's share of the working memory, by hand: gpt-oss-120b's 201,088-entry vocabulary
// (padded to 201,088, a multiple of 128) at 4 x 4096 tokens a microbatch on one tensor-parallel
// rank is 3.29e9 logits: 26.4 GB as fp32 logits plus an fp32 gradient (8 bytes each), 19.8 GB as
// Megatron-Core holds them (bf16 logits and one fp32 copy, gradient in place: 6 bytes).
// gpt-oss-120b as Megatron-Bridge lays it out (pp 4, dp 16, ep 8, distributed optimizer), full recompute.
StepPlan gpt_oss_plan(int microbatch, PlanOptions o) {
  Layout l;
  l.tp = 1, l.pp = 4, l.dp = 16, l.ep = 8, l.microbatch = microbatch, l.sharding = Sharding::zero1;
  l.recompute = Recompute::full;
  o.vocab_multiple = 128;
  return build_step_plan(model_preset("gpt-oss-120b"), l, 512, o);
}

TEST(Memory, TheLossHoldsItsStacksBytesPerLogit) {
  PlanOptions o;
  const StepPlan torch_loss = gpt_oss_plan(4, o);
  o.loss_bytes_per_logit = 6;
  const StepPlan megatron_loss = gpt_oss_plan(4, o);
  const double logits = 4.0 * 4096 * 201088;
  const double delta = memory_per_chip(torch_loss).working -
                       memory_per_chip(megatron_loss).working;
  EXPECT_DOUBLE_EQ(delta, 2.0 * logits);
}

// The loss's logits are freed once the output layer's backward has run, before any layer is
// rebuilt for its backward: the working set is the larger of the two, not their sum. gpt-oss-120b,
// one 4096-token sequence a microbatch, full recompute, no FSDP gather: 4096 x 201,088 logits at
// 8 bytes (6.59 GB) outweigh one rebuilt layer (~0.6 GB), so the working set is the logits alone.
TEST(Memory, TheLogitsAndTheRebuiltLayerPeakAtDifferentTimes) {
  PlanOptions o;
  o.fused_attention = true;  // no score matrix: the rebuilt layer is its tensors only
  const StepPlan p = gpt_oss_plan(1, o);
  EXPECT_DOUBLE_EQ(memory_per_chip(p).working, 4096.0 * 201088 * 8);
  const double rebuilt = activation_bytes_per_layer(p, Recompute::none);
  EXPECT_GT(rebuilt, 0.3e9);
  EXPECT_LT(rebuilt, 1.0e9);
}

// Stage 0 holds its layers' activations for pp microbatches under 1F1B (and ZB-V, whose stage is
// two chunks), for pp + 1/2 under DualPipeV (2 pp + 1 chunks: the DualPipe README's PP + 1), for
// all m under GPipe: 96 layers on 4 stages, 32 microbatches of one sequence, selective recompute.
TEST(Memory, ActivationsInFlightFollowTheSchedule) {
  const ModelSpec m = model_preset("gpt3-175b");
  auto activations = [&](Schedule schedule, int vpp) {
    Layout l;
    l.tp = 8, l.sp = true, l.recompute = Recompute::selective, l.pp = 4, l.vpp = vpp, l.dp = 1, l.schedule = schedule;
    return memory_per_chip(build_step_plan(m, l, 32, PlanOptions{})).activations;
  };
  const double layer = 34.0 * 2048 * 12288 / 8, stage = 24 * layer;
  EXPECT_DOUBLE_EQ(activations(Schedule::one_f_one_b, 1), 4 * stage);
  EXPECT_DOUBLE_EQ(activations(Schedule::zero_bubble_v, 2), 4 * stage);
  EXPECT_DOUBLE_EQ(activations(Schedule::dualpipe_v, 2), 4.5 * stage);
  EXPECT_DOUBLE_EQ(activations(Schedule::gpipe, 1), 32 * stage);
}

}  // namespace
}  // namespace palmsim
