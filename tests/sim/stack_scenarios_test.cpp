// Stacks, precision and the band as a user meets them: scenario `stack:` sections, fp8 linears at
// the fp8 peak, MaxText's minimal remat and sharded activations, the TPU v5e preset, what a stack
// cannot run, and the 90 % band drawn from a stack's held-out errors.
#include "model/accounting.h"
#include "model/input_error.h"
#include "sim/analytic_estimator.h"
#include "sim/predict.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace palmsim {
namespace {

Scenario from_yaml(const std::string& text, const std::string& path = "test.yaml") {
  return parse_scenario(YAML::Load(text), path);
}

const char* kLlama8bOnH100 =
    "model: {name: l8, n_layers: 32, d_model: 4096, n_heads: 32, n_kv_heads: 8, head_dim: 128, d_ff: 14336,"
    " ffn: swiglu, vocab: 128256, seq_len: 8192, parallel_block: false}\n"
    "system: {preset: h100-80g-dgx, chips: 8}\n"
    "layout: {tp: 1, pp: 1, dp: 8, microbatch: 1, sharding: none, recompute: full}\n";

TEST(StackScenarios, AStackIsNamedGivenByFileOrOverridden) {
  const std::string base = std::string(kLlama8bOnH100) + "training: {global_batch: 8}\n";
  EXPECT_EQ(from_yaml(base).system.stack.name, "megatron-core");  // the H100 default
  EXPECT_EQ(from_yaml(base + "stack: torchtitan-fsdp2\n").system.stack.name, "torchtitan-fsdp2");
  const Scenario o = from_yaml(base + "stack: {preset: megatron-2021, parameters: {host_overhead_us: 7}}\n");
  EXPECT_EQ(o.system.stack.name, "megatron-2021");
  EXPECT_DOUBLE_EQ(o.system.stack.host_overhead_s, 7e-6);
  EXPECT_FALSE(o.system.stack.fused_attention);  // the rest of megatron-2021 stays
  const std::string dir = testing::TempDir();
  std::ofstream(dir + "/mine.yaml") << "name: mine\nfused_attention: true\nparameters: {kernel_floor_us: 2}\n";
  const Scenario f = from_yaml(base + "stack: {file: mine.yaml}\n", dir + "/scenario.yaml");
  EXPECT_EQ(f.system.stack.name, "mine");
  EXPECT_DOUBLE_EQ(f.system.stack.kernel_floor_s, 2e-6);
  try {
    from_yaml(base + "stack: megatron-1999\n");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "stack");
  }
  EXPECT_THROW(from_yaml(base + "stack: {file: absent.yaml}\n", dir + "/s.yaml"), InputError);
}

TEST(StackScenarios, WhatAStackCannotRunIsAnErrorNamingTheLayoutField) {
  const std::string yaml = std::string(kLlama8bOnH100) + "training: {global_batch: 8}\n";
  std::string fsdp = yaml;
  fsdp.replace(fsdp.find("sharding: none"), 14, "sharding: fsdp");
  try {
    from_yaml(fsdp);  // Megatron-Core shards the optimizer, not the parameters
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "layout.sharding");
    EXPECT_NE(std::string(e.what()).find("none, zero1"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(from_yaml(fsdp + "stack: torchtitan-fsdp2\n"));
}

TEST(StackScenarios, Fp8LinearsRunAtTheFp8PeakAndMfuStaysOnBf16) {
  const Scenario bf16 = from_yaml(std::string(kLlama8bOnH100) + "training: {global_batch: 8, precision: bf16}\n");
  const Scenario fp8 = from_yaml(std::string(kLlama8bOnH100) + "training: {global_batch: 8, precision: fp8}\n");
  // Hand: an fp8 GEMM of 8192 x 4096 x 14336 at 1979 TF and the bf16 shape efficiency times the
  // stack's fp8 scale.
  const ComputeModel compute(stack_adjusted(fp8.system).chip);
  const double flops = 2.0 * 8192 * 4096 * 14336;
  const double fp8_scale = fp8.system.stack.fp8_gemm_efficiency_scale;
  EXPECT_NEAR(compute.fp8_gemm_seconds(8192, 4096, 14336),
              flops / (1979e12 * compute.gemm_efficiency(8192, 4096, 14336) * fp8_scale), 1e-12);
  const Report a = predict(bf16, {.per_op = true}), b = predict(fp8, {.per_op = true});
  EXPECT_LT(b.step_time_s, a.step_time_s);
  EXPECT_GT(b.step_time_s, 0.5 * a.step_time_s);  // attention, logits, casts stay
  EXPECT_GT(b.per_op_s.at("fp8_cast.fwd"), 0.0);
  EXPECT_EQ(a.per_op_s.count("fp8_cast.fwd"), 0u);
  // Attention and logits are not fp8: unchanged.
  EXPECT_DOUBLE_EQ(a.per_op_s.at("logits.fwd"), b.per_op_s.at("logits.fwd"));
  EXPECT_DOUBLE_EQ(a.per_op_s.at("attention.fwd"), b.per_op_s.at("attention.fwd"));
  // MFU: the same model FLOPs over the bf16 peak.
  EXPECT_NEAR(b.mfu / a.mfu, a.step_time_s / b.step_time_s, 1e-9);
}

TEST(StackScenarios, Fp8NeedsFp8UnitsAndAStackThatUsesThem) {
  std::string a100 = std::string(kLlama8bOnH100) + "training: {global_batch: 8, precision: fp8}\n";
  a100.replace(a100.find("h100-80g-dgx"), 12, "a100-80g-dgx");
  try {
    from_yaml(a100);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "training.precision");
    EXPECT_NE(std::string(e.what()).find("a100-80g has none"), std::string::npos) << e.what();
  }
  const std::string old = std::string(kLlama8bOnH100) + "training: {global_batch: 8, precision: fp8}\n" +
                          "stack: megatron-2021\n";
  EXPECT_THROW(from_yaml(old), InputError);
}

TEST(StackScenarios, MinimalRematKeepsTheLayerInputAndTheMatmulOutputs) {
  ModelSpec m = model_preset("palm-8b");
  Layout l;
  l.tp = 4, l.dp = 1, l.microbatch = 2, l.sp = true, l.recompute = Recompute::minimal;
  PlanOptions o;
  o.fused_attention = true;
  const StepPlan p = build_step_plan(m, l, 2, o);
  const double t = 2.0 * m.seq_len, d = m.d_model, q = m.head_dim, w = 2;
  const double heads = m.n_heads / 4.0, kv = m.n_kv_heads;  // one K/V head, replicated over tp
  const double hand = w * t * d / 4 + w * t * (heads + 2 * kv) * q + w * t * d / 4 +
                      2.0 * w * t * (m.d_ff / 4.0) + w * t * d / 4 + 4.0 * 2 * heads * m.seq_len;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(p, Recompute::minimal), hand);
  // Recompute: attention and the element-wise ops again, no weight GEMM.
  bool attention = false;
  for (const Op& op : p.ops)
    if (op.phase == Phase::recompute) {
      EXPECT_NE(op.kind, OpKind::gemm) << op.name;
      attention = attention || op.kind == OpKind::attention;
    }
  EXPECT_TRUE(attention);
  EXPECT_DOUBLE_EQ(hardware_flops_per_token(m, Recompute::minimal), hardware_flops_per_token(m, Recompute::selective));
}

TEST(StackScenarios, MaxTextShardsActivationsAsSequenceParallelism) {
  ModelSpec m = model_preset("palm-8b");
  Layout l;
  l.tp = 4, l.dp = 1, l.microbatch = 1, l.sp = false;
  PlanOptions o;
  o.shard_activations_over_tp = true;
  EXPECT_TRUE(build_step_plan(m, l, 1, o).layout.sp);
  o.shard_activations_over_tp = false;
  EXPECT_FALSE(build_step_plan(m, l, 1, o).layout.sp);
}

TEST(StackScenarios, TpuV5ePresetHasTheDatasheetFigures) {
  const System s = system_preset("tpu-v5e-pod");
  EXPECT_DOUBLE_EQ(s.chip.peak_flops, 197e12);
  EXPECT_DOUBLE_EQ(s.chip.hbm_bytes, 16e9);
  EXPECT_DOUBLE_EQ(s.chip.hbm_bytes_per_s, 819e9);
  EXPECT_EQ(s.torus.torus_dims, 2);
  EXPECT_EQ(s.max_chips_per_pod, 256);
  EXPECT_DOUBLE_EQ(s.torus.link_bytes_per_s, 50e9);
  EXPECT_EQ(s.torus.chips_per_host, 8);
  EXPECT_DOUBLE_EQ(s.torus.dcn_bytes_per_s_per_host, 25e9);  // 2 x 100 Gb/s
  // v5p: 50 Gb/s per chip, 4 chips per host.
  EXPECT_DOUBLE_EQ(system_preset("tpu-v5p-pod").torus.dcn_bytes_per_s_per_host, 25e9);
}

TEST(StackScenarios, TheBandInvertsTheHeldOutErrors) {
  Report r;
  r.step_time_s = 10.0;
  r.n_chips = 64;
  Stack s = stack_preset("megatron-deepspeed");
  s.band = StackBand{};
  s.band.runs = 100, s.band.p05_pct = -10, s.band.p95_pct = 20;
  s.band.min_chips = 2, s.band.max_chips = 8, s.band.min_params = 1e8, s.band.max_params = 2e9;
  attach_band(r, s, 1e9);
  // measured = predicted / (1 + e): e = +20 % -> 8.333 s, e = -10 % -> 11.111 s.
  EXPECT_NEAR(r.band_low_s, 10.0 / 1.2, 1e-12);
  EXPECT_NEAR(r.band_high_s, 10.0 / 0.9, 1e-12);
  EXPECT_NE(r.outside_validated.find("64 chips"), std::string::npos) << r.outside_validated;
  r.n_chips = 8;
  attach_band(r, s, 1e9);
  EXPECT_TRUE(r.outside_validated.empty());
  s.band.systems = {"a100-80g-dgx"};
  r.system = "h100-80g-dgx";
  attach_band(r, s, 1e9);
  EXPECT_NE(r.outside_validated.find("system h100-80g-dgx"), std::string::npos) << r.outside_validated;
  r.system = "a100-80g-dgx";
  attach_band(r, s, 1e9);
  EXPECT_TRUE(r.outside_validated.empty());
  s.band.runs = 4;  // too few for a 90 % band
  attach_band(r, s, 1e9);
  EXPECT_FALSE(r.has_band());
}

}  // namespace
}  // namespace palmsim

namespace palmsim {
namespace {

TEST(StackScenarios, ASystemComesFromAFileAndTakesPerFieldOverrides) {
  const std::string dir = testing::TempDir();
  std::ofstream(dir + "/pod.yaml") << "name: my-pod\nchip: tpu-v4\nstack: xla-tpu\nmax_chips_per_pod: 4096\n"
                                      "torus: {dims: 3, max_axis: 16, link_gb_per_s: 45, link_latency_us: 1,"
                                      " dcn_gbit_per_s_per_host: 53, dcn_latency_us: 10}\n";
  const std::string rest = "layout: {tp: 4, dp: 64, microbatch: 4, sp: true, sharding: fsdp, recompute: selective}\n"
                           "training: {global_batch: 256}\n";
  const Scenario from_file =
      parse_scenario(YAML::Load("model: palm-8b\nsystem: {file: pod.yaml, chips: 256}\n" + rest), dir + "/s.yaml");
  const Scenario preset = load_scenario("scenarios/palm-8b-tpuv4.yaml");
  EXPECT_EQ(from_file.system.name, "my-pod");
  // The same figures as the preset: the same prediction.
  EXPECT_DOUBLE_EQ(predict(from_file).step_time_s, predict(preset).step_time_s);
  const Scenario small = parse_scenario(
      YAML::Load("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256, chip: {hbm_gib: 8}}\n" + rest), "s.yaml");
  EXPECT_DOUBLE_EQ(small.system.chip.hbm_bytes, 8.0 * 1024 * 1024 * 1024);
  EXPECT_FALSE(predict(small).fits_in_memory);
  try {
    parse_scenario(YAML::Load("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256, chip: {hbm_gib: -8}}\n" + rest),
                   "s.yaml");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "system.chip.hbm_gib");
  }
}

}  // namespace
}  // namespace palmsim
