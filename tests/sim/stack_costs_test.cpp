// The costs a software stack adds, each against a hand calculation: the per-kernel floor and host
// time, per-call framework time, Megatron's vocabulary padding, unfused gradient accumulation,
// bias passes, the vocabulary-parallel loss's all-reduces, learned position embeddings and the
// per-step overhead.
#include "model/accounting.h"
#include "sim/analytic_estimator.h"
#include "sim/predict.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

// A GPT-style model (GELU, biases, dropout, learned positions), vTrain's smallest shape.
ModelSpec gpt_small() {
  ModelSpec m;
  m.name = "gpt-small";
  m.n_layers = 12, m.d_model = 1024, m.n_heads = 16, m.n_kv_heads = 16, m.head_dim = 64, m.d_ff = 4096;
  m.ffn = Ffn::gelu;
  m.vocab = 50257, m.seq_len = 1024;
  m.parallel_block = false, m.biases = true, m.dropout = true, m.rope = false, m.tied_embeddings = true;
  return m;
}

Scenario a100_scenario(int tp, int dp, const char* stack) {
  Scenario s;
  s.model = gpt_small();
  s.system = system_preset("a100-80g-dgx");
  s.system.stack = stack_preset(stack);
  s.layout.tp = tp, s.layout.dp = dp, s.layout.microbatch = 1, s.layout.recompute = Recompute::full;
  s.n_chips = tp * dp;
  s.global_batch = 4 * dp;
  return s;
}

const Op& find_op(const StepPlan& p, const std::string& name, Phase phase) {
  for (const Op& op : p.ops)
    if (name == op.name && op.phase == phase) return op;
  throw std::runtime_error("no op " + name);
}

struct Priced {
  StepPlan plan;
  ComputeModel compute;
  CommModel comm;
  explicit Priced(const Scenario& s)
      : plan(build_step_plan(s.model, s.layout, s.global_batch, plan_options_for(s.system))),
        compute(stack_adjusted(s.system).chip),
        comm(s.system, s.layout) {}
  double seconds(const Op& op) const { return op_seconds(op, plan, compute, comm); }
};

TEST(StackCosts, ShortKernelsTakeTheHostTimeLongOnesTheirOwn) {
  Scenario s = a100_scenario(1, 1, "megatron-deepspeed");
  s.system.stack.kernel_floor_s = 4e-6;
  s.system.stack.host_overhead_s = 40e-6;
  const Priced p(s);
  // LayerNorm forward of 1024 tokens x 1024 (4 MiB) streams in ~2.6 us on an A100: host-bound.
  const Op& ln = find_op(p.plan, "ln", Phase::forward);
  EXPECT_DOUBLE_EQ(p.seconds(ln), 1.0 * 40e-6);
  // LayerNorm backward is two kernels.
  EXPECT_DOUBLE_EQ(p.seconds(find_op(p.plan, "ln", Phase::backward)), 2.0 * 40e-6);
  // The logits GEMM (1024 x 51200 x 1024, 107 GFLOP) takes far longer than 40 us: unchanged.
  const Op& logits = find_op(p.plan, "logits", Phase::forward);
  Scenario bare = s;
  bare.system.stack.kernel_floor_s = bare.system.stack.host_overhead_s = 0;
  EXPECT_DOUBLE_EQ(p.seconds(logits), Priced(bare).seconds(logits));
  EXPECT_GT(p.seconds(logits), 100e-6);
  // Where the floor exceeds the host time, the floor binds.
  s.system.stack.host_overhead_s = 0;
  s.system.stack.kernel_floor_s = 20e-6;
  EXPECT_DOUBLE_EQ(Priced(s).seconds(ln), 20e-6);
}

TEST(StackCosts, PipelineSendsPayTheFrameworkTimePerTransfer) {
  Scenario s = a100_scenario(1, 2, "megatron-deepspeed");
  s.layout.pp = 2, s.layout.dp = 1;
  s.system.stack.host_overhead_s = s.system.stack.kernel_floor_s = 0;
  const Priced bare(s);
  s.system.stack.p2p_overhead_s = 150e-6;
  const Priced with(s);
  const Op& send = find_op(with.plan, "pp_send", Phase::forward);
  EXPECT_NEAR(with.seconds(send) - bare.seconds(send), 150e-6, 1e-15);
}

// The host synchronisation of a dropless MoE layer's forward, by hand: gpt-oss-120b on 8 H100s
// (ep 8, one stage, no recompute), 2 microbatches of 4096 tokens per rank, 36 MoE layers. A layer
// forward whose device work D is shorter than the host's time H for it takes H: the step grows by
// 2 x 36 x (H - D), D summed from the plan's forward layer ops; a longer one hides H entirely; with
// a capacity factor nothing synchronises and nothing moves.
TEST(StackCosts, ADroplessMoeForwardTakesAtLeastTheHostsTime) {
  Scenario s;
  s.model = model_preset("gpt-oss-120b");
  s.system = system_preset("h100-80g-dgx");
  s.system.stack = stack_preset("megatron-core");
  s.layout.dp = 8, s.layout.ep = 8, s.layout.microbatch = 1, s.layout.sharding = Sharding::zero1;
  s.n_chips = 8;
  s.global_batch = 16;
  auto step = [&](double host_s) {
    s.system.stack.host_sync_s = host_s;
    return predict(s).step_time_s;
  };
  const Priced p(s);
  double device = 0;  // one layer's forward compute
  for (const Op& op : p.plan.ops)
    if (op.repeat == Repeat::per_layer_microbatch && op.phase == Phase::forward &&
        (op.kind == OpKind::gemm || op.kind == OpKind::attention || op.kind == OpKind::memory))
      device += p.seconds(op) * op.multiplicity;
  ASSERT_GT(device, 1e-3);
  const double host = device + 5e-3;
  const double without = step(0), with = step(host);
  EXPECT_NEAR(with - without, 2 * 36 * 5e-3, 1e-9);
  EXPECT_NEAR(predict(s).breakdown.host_sync_s, 2 * 36 * 5e-3, 1e-9);  // shown in the breakdown
  EXPECT_DOUBLE_EQ(step(0.5 * device), without);                       // hidden behind the device
  s.model.moe.capacity_factor = 1.0;
  EXPECT_DOUBLE_EQ(step(host), step(0));
}

TEST(StackCosts, TheAttentionScaleReachesOnlyFusedAttention) {
  Scenario s = a100_scenario(1, 1, "megatron-core");  // flash attention
  s.system.stack.attention_efficiency_scale = 1;
  const Priced bare(s);
  s.system.stack.attention_efficiency_scale = 0.5;
  const Priced slow(s);
  const Op& att = find_op(slow.plan, "attention", Phase::forward);
  EXPECT_NEAR(slow.seconds(att), 2.0 * bare.seconds(att), 1e-12);  // compute-bound at 1024 tokens
  const Op& qkv = find_op(slow.plan, "qkv_proj", Phase::forward);
  EXPECT_DOUBLE_EQ(slow.seconds(qkv), bare.seconds(qkv));
}

TEST(StackCosts, MegatronPadsTheVocabularyTo128TimesTp) {
  // 50257 -> next multiple of 128 * 8 = 1024: 50 * 1024 = 51200; without the rule only to tp.
  EXPECT_EQ(padded_vocab(50257, 8, 128), 51200);
  EXPECT_EQ(padded_vocab(50257, 1, 128), 50304);
  EXPECT_EQ(padded_vocab(50257, 2, 1), 50258);
  const Priced p(a100_scenario(8, 1, "megatron-deepspeed"));
  EXPECT_EQ(p.plan.vocab, 51200);
  EXPECT_EQ(find_op(p.plan, "logits", Phase::forward).n, 51200 / 8);
  // MFU still counts the model's own vocabulary.
  EXPECT_EQ(p.plan.model.vocab, 50257);
}

TEST(StackCosts, UnfusedGradientAccumulationReadsBothAndWritesTheBuffer) {
  const Scenario s = a100_scenario(2, 1, "megatron-deepspeed");  // fp16 buffer: 2 + 2 * 2 bytes
  const Priced p(s);
  const Op& acc = find_op(p.plan, "grad_accum", Phase::backward);
  EXPECT_DOUBLE_EQ(acc.bytes, double(layer_parameters(s.model).total()) / 2 * 6.0);
  EXPECT_EQ(acc.kernels, 12.0);  // 12 parameter tensors of a biased GPT layer
  // Megatron-2021 keeps an fp32 main_grad: 2 + 2 * 4 bytes.
  const Priced m21(a100_scenario(2, 1, "megatron-2021"));
  EXPECT_DOUBLE_EQ(find_op(m21.plan, "grad_accum", Phase::backward).bytes,
                   double(layer_parameters(s.model).total()) / 2 * 10.0);
  // Fused into the weight-gradient GEMM (Megatron-Core): no pass at all.
  const Priced core(a100_scenario(2, 1, "megatron-core"));
  EXPECT_THROW(find_op(core.plan, "grad_accum", Phase::backward), std::runtime_error);
}

TEST(StackCosts, BiasesCostGradientReductionsAndUnfusedPasses) {
  Scenario s = a100_scenario(1, 1, "nemo-automodel");  // unfused element-wise ops
  const Priced p(s);
  const double t = 1024, d = 1024, ff = 4096, w = 2;
  // Bias gradients: output gradients of QKV (3d), out (d), MLP in (ff) and out (d) summed over tokens.
  EXPECT_DOUBLE_EQ(find_op(p.plan, "bias_grad", Phase::backward).bytes, w * t * (3 * d + 2 * d + ff));
  // Unfused bias adds of out, MLP-in and MLP-out: read and write each output.
  EXPECT_DOUBLE_EQ(find_op(p.plan, "bias_add", Phase::forward).bytes, 2 * w * t * (2 * d + ff));
  // Unfused residual: bias, dropout, add per branch = 6 kernels; fused (Megatron): 2.
  EXPECT_EQ(find_op(p.plan, "residual", Phase::forward).kernels, 6.0);
  const Priced fused(a100_scenario(1, 1, "megatron-deepspeed"));
  EXPECT_EQ(find_op(fused.plan, "residual", Phase::forward).kernels, 2.0);
  EXPECT_THROW(find_op(fused.plan, "bias_add", Phase::forward), std::runtime_error);
}

TEST(StackCosts, VocabParallelLossAllReducesThreeScalarsPerToken) {
  const Priced p(a100_scenario(4, 1, "megatron-deepspeed"));
  const Op& op = find_op(p.plan, "loss_allreduce", Phase::forward);
  EXPECT_EQ(op.multiplicity, 3.0);
  EXPECT_EQ(op.repeat, Repeat::per_microbatch);
  EXPECT_DOUBLE_EQ(op.comm_bytes, 1024.0 * 4.0);  // fp32 per token
  const Priced one(a100_scenario(1, 1, "megatron-deepspeed"));
  EXPECT_THROW(find_op(one.plan, "loss_allreduce", Phase::forward), std::runtime_error);
}

TEST(StackCosts, LearnedPositionsAddALookupAndADropout) {
  const Priced p(a100_scenario(1, 1, "megatron-deepspeed"));
  const Op& e = find_op(p.plan, "embedding", Phase::forward);
  EXPECT_EQ(e.kernels, 3.0);  // token lookup, position add, dropout
  // Token read + write (2 t d w), position read + add (1.5x that), dropout read + write (1x).
  EXPECT_DOUBLE_EQ(e.bytes, 2.0 * 1024 * 1024 * 2 * 3.5);
}

TEST(StackCosts, TheFp8ScaleSlowsOnlyFp8Gemms) {
  System h100 = system_preset("h100-80g-dgx");
  h100.stack.fp8_gemm_efficiency_scale = 0.5;
  const ComputeModel scaled(stack_adjusted(h100).chip), plain(system_preset("h100-80g-dgx").chip);
  // Compute-bound shape: half the efficiency, twice the time; bf16 GEMMs untouched.
  EXPECT_NEAR(scaled.fp8_gemm_seconds(8192, 8192, 8192), 2.0 * plain.fp8_gemm_seconds(8192, 8192, 8192), 1e-12);
  EXPECT_DOUBLE_EQ(scaled.gemm_seconds(8192, 8192, 8192), plain.gemm_seconds(8192, 8192, 8192));
}

TEST(StackCosts, RowwiseFp8ScalesOnlyRowwiseRuns) {
  System h100 = system_preset("h100-80g-dgx");
  h100.stack.fp8_gemm_efficiency_scale = 0.8;
  h100.stack.fp8_rowwise_gemm_efficiency_scale = 0.5;
  const double per_tensor = stack_adjusted(h100).chip.fp8_relative_efficiency;
  h100.stack.fp8_rowwise = true;
  EXPECT_DOUBLE_EQ(stack_adjusted(h100).chip.fp8_relative_efficiency, 0.5 * per_tensor);
  EXPECT_DOUBLE_EQ(per_tensor, system_preset("h100-80g-dgx").chip.fp8_relative_efficiency * 0.8);
}

// The stack's fp8 all-gather choice reaches the plan only with per-tensor scales: torchtitan
// applies torchao's Float8 TP for tensorwise Float8 and plain bf16 TP for rowwise.
TEST(StackCosts, Fp8TensorParallelAllGatherFollowsTheScaling) {
  System h100 = system_preset("h100-80g-dgx");
  h100.stack = stack_preset("torchtitan-fsdp2");
  ASSERT_TRUE(h100.stack.fp8_tp_allgather);
  EXPECT_TRUE(plan_options_for(h100).fp8_tp_allgather);
  EXPECT_FALSE(plan_options_for(h100).fp8_rowwise);
  h100.stack.fp8_rowwise = true;
  EXPECT_FALSE(plan_options_for(h100).fp8_tp_allgather);
  EXPECT_TRUE(plan_options_for(h100).fp8_rowwise);
  EXPECT_FALSE(stack_preset("megatron-core").fp8_tp_allgather);
}

// Overlapped tensor-parallel collectives: the hidden share runs beside the layer's compute (longer
// here in each phase), the rest stays exposed. By hand, over L layers x M microbatches: the step
// grows by the exposed share of every layer's TP traffic, less the first collective of each pass,
// which cannot hide (half the per-layer hidden traffic, as for FSDP's first gather).
TEST(StackCosts, AsyncTpHidesItsShareOfTheTensorParallelTraffic) {
  Scenario s = a100_scenario(2, 4, "megatron-core");
  s.system.stack.overlap_tp_comm = true;
  const Priced p(s);
  double tp_fwd = 0, tp_bwd = 0, fwd = 0, bwd = 0;  // per layer and microbatch
  for (const Op& op : p.plan.ops) {
    if (op.repeat != Repeat::per_layer_microbatch) continue;
    const bool tp = op.kind == OpKind::collective && op.group == CommGroup::tp;
    (op.phase == Phase::forward ? (tp ? tp_fwd : fwd) : (tp ? tp_bwd : bwd)) += p.seconds(op) * op.multiplicity;
  }
  ASSERT_GT(tp_fwd, 0.0);
  ASSERT_GT(fwd, tp_fwd);  // all of it could hide
  ASSERT_GT(bwd, tp_bwd);
  const double tp = tp_fwd + tp_bwd;
  const double lm = double(p.plan.layers_per_stage) * double(p.plan.n_microbatches);
  s.system.stack.tp_overlap_fraction = 1.0;
  const double all_hidden = predict(s).step_time_s;
  s.system.stack.tp_overlap_fraction = 0.25;
  EXPECT_NEAR(predict(s).step_time_s - all_hidden, 0.75 * tp * (lm - 0.5), 1e-9 * all_hidden);
  s.system.stack.overlap_tp_comm = false;  // plain TP: all of it on the critical path
  EXPECT_NEAR(predict(s).step_time_s - all_hidden, tp * (lm - 0.5), 1e-9 * all_hidden);
}

TEST(StackCosts, PerOpShowsWhatTheStackAdds) {
  const Report r = predict(a100_scenario(8, 1, "megatron-deepspeed"), {.per_op = true});
  ASSERT_TRUE(r.per_op_s.count("(stack overhead).fwd"));
  EXPECT_GT(r.per_op_s.at("(stack overhead).fwd"), 0.0);
  // XLA on TPU adds nothing.
  const Report palm = predict(load_scenario("scenarios/palm-540b-tpuv4-6144.yaml"), {.per_op = true});
  EXPECT_FALSE(palm.per_op_s.count("(stack overhead).fwd"));
}

}  // namespace
}  // namespace palmsim

namespace palmsim {
namespace {

TEST(StackCostsEager, UnfusedNormsRopeAndSwigluMoveMoreBytesInMoreKernels) {
  // Llama-style layer (RMSNorm, RoPE, SwiGLU) under an eager stack and a compiled one.
  const ModelSpec m = model_preset("palm-8b");
  Layout l;
  l.tp = 1, l.dp = 1, l.microbatch = 1;
  PlanOptions fused, eager;
  eager.fused_elementwise = false;
  const StepPlan a = build_step_plan(m, l, 1, fused), b = build_step_plan(m, l, 1, eager);
  auto op = [](const StepPlan& p, const char* name) -> const Op& {
    for (const Op& o : p.ops)
      if (std::string(o.name) == name && o.phase == Phase::forward) return o;
    throw std::runtime_error(name);
  };
  // Norm: square, mean, rsqrt-scale, weight: 4 passes where a fused kernel makes one.
  EXPECT_DOUBLE_EQ(op(b, "ln").bytes, 4.0 * op(a, "ln").bytes);
  EXPECT_EQ(op(b, "ln").kernels, 4.0);
  EXPECT_DOUBLE_EQ(op(b, "rope").bytes, 4.0 * op(a, "rope").bytes);
  // SwiGLU: SiLU (read, write) then multiply (read 2, write 1) = 5 tensors against 3.
  EXPECT_DOUBLE_EQ(op(b, "mlp_act").bytes, 5.0 / 3.0 * op(a, "mlp_act").bytes);
  EXPECT_EQ(op(b, "mlp_act").kernels, 2.0);
  // GEMMs are the same either way.
  EXPECT_DOUBLE_EQ(op(b, "qkv_proj").flops, op(a, "qkv_proj").flops);
}

}  // namespace
}  // namespace palmsim
