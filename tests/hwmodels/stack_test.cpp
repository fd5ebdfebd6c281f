// Software stacks as data: every shipped file parses, names itself, stays inside the parameter
// bounds; bad fields name themselves; what `fit -o` writes reads back to the same stack.
#include "hwmodels/stack.h"
#include "hwmodels/system.h"
#include "model/input_error.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

TEST(Stack, ShippedStacksParseWithinTheirBounds) {
  const std::vector<std::string> names = stack_preset_names();
  for (const char* expected : {"megatron-2021", "megatron-deepspeed", "megatron-core", "torchtitan-fsdp2",
                               "nemo-automodel", "xla-tpu", "palmsim-cpu", "palmsim-cuda"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  for (const std::string& n : names) {
    const Stack s = stack_preset(n);
    EXPECT_EQ(s.name, n);
    for (const StackParameter& p : stack_parameters()) {
      EXPECT_GE(s.*(p.field) / p.scale, p.lo) << n << " " << p.key;
      EXPECT_LE(s.*(p.field) / p.scale, p.hi) << n << " " << p.key;
    }
  }
}

TEST(Stack, SystemsCarryTheStackTheirRunsUsed) {
  EXPECT_EQ(system_preset("tpu-v4-pod").stack.name, "xla-tpu");
  EXPECT_EQ(system_preset("a100-80g-dgx").stack.name, "megatron-2021");
  EXPECT_EQ(system_preset("h100-80g-dgx").stack.name, "megatron-core");
  EXPECT_EQ(system_preset("local-cpu").stack.name, "palmsim-cpu");
  EXPECT_EQ(system_preset("local-cpu").stack.activation_bytes, 4);
  // Compiled XLA: no per-kernel cost at all.
  const Stack xla = stack_preset("xla-tpu");
  EXPECT_EQ(xla.kernel_floor_s, 0.0);
  EXPECT_EQ(xla.host_overhead_s, 0.0);
}

TEST(Stack, ParametersReadInTheirUnitsAndWriteBack) {
  const YAML::Node n = YAML::Load(
      "{name: mine, fused_attention: true, vocab_multiple: 64, grad_reduce_bytes: 4, loss_bytes_per_logit: 6,"
      " schedules: [1f1b, zb-h1], moe_dispatch: per_rank,"
      " parameters: {kernel_floor_us: 3, host_overhead_us: 12.5, fp8_gemm_efficiency_scale: 0.7}}");
  const Stack s = parse_stack(n, "stack");
  EXPECT_DOUBLE_EQ(s.kernel_floor_s, 3e-6);
  EXPECT_DOUBLE_EQ(s.host_overhead_s, 12.5e-6);
  EXPECT_DOUBLE_EQ(s.fp8_gemm_efficiency_scale, 0.7);
  EXPECT_EQ(s.vocab_multiple, 64);
  EXPECT_EQ(s.loss_bytes_per_logit, 6);
  EXPECT_EQ(stack_preset("torchtitan-fsdp2").loss_bytes_per_logit, 8);  // the default: fp32 logits and gradient
  EXPECT_EQ(stack_preset("megatron-core").loss_bytes_per_logit, 6);     // one fp32 copy, gradient in place
  EXPECT_EQ(system_preset("local-cpu").stack.loss_bytes_per_logit, 4);  // palmsim's CPU trainer: in place
  const Stack again = parse_stack(YAML::Load(stack_yaml(s)), "again");
  EXPECT_EQ(again.name, "mine");
  EXPECT_TRUE(again.fused_attention);
  EXPECT_DOUBLE_EQ(again.host_overhead_s, s.host_overhead_s);
  EXPECT_EQ(again.grad_reduce_bytes, 4);
  EXPECT_EQ(again.loss_bytes_per_logit, 6);
  EXPECT_EQ(again.moe_dispatch, TokenDispatch::per_rank);
  EXPECT_EQ(stack_preset("megatron-core").moe_dispatch, TokenDispatch::per_expert);  // its all-to-all dispatcher
  EXPECT_EQ(stack_preset("nemo-automodel").moe_dispatch, TokenDispatch::per_rank);   // DeepEP
  EXPECT_EQ(again.schedules, (std::vector<Schedule>{Schedule::one_f_one_b, Schedule::zero_bubble_h1}));
  EXPECT_FALSE(again.supports(Schedule::gpipe));
}

TEST(Stack, BadFieldsNameThemselves) {
  auto field_of = [](const char* text) {
    try {
      parse_stack(YAML::Load(text), "stack");
    } catch (const InputError& e) {
      return e.field();
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(field_of("{name: x, parameters: {host_overhead_us: 1000}}"), "stack.parameters.host_overhead_us");
  EXPECT_EQ(field_of("{name: x, parameters: {launch_us: 1}}"), "stack.parameters.launch_us");
  EXPECT_EQ(field_of("{name: x, grad_reduce_bytes: 3}"), "stack.grad_reduce_bytes");
  EXPECT_EQ(field_of("{name: x, loss_bytes_per_logit: -2}"), "stack.loss_bytes_per_logit");
  EXPECT_EQ(field_of("{name: x, colour: red}"), "stack.colour");
  EXPECT_EQ(field_of("{name: x, schedules: [1f1b, dualpipe]}"), "stack.schedules");
  EXPECT_EQ(field_of("{name: x, moe_dispatch: per_token}"), "stack.moe_dispatch");
  EXPECT_EQ(field_of("{fused_attention: true}"), "stack.name");
  EXPECT_EQ(field_of("{name: x, fit: {band_p05_pct: 5, band_p95_pct: 1}}"), "stack.fit.band_p05_pct");
  EXPECT_THROW(stack_preset("megatron-1999"), InputError);
}

TEST(Stack, ScalesReachTheHardwareFiguresOnce) {
  System s = system_preset("a100-80g-dgx");
  s.stack.gemm_efficiency_scale = 0.9;
  s.stack.collective_efficiency_scale = 0.5;
  const System adjusted = stack_adjusted(s);
  EXPECT_DOUBLE_EQ(adjusted.chip.gemm_max_efficiency, 0.87 * 0.9);
  EXPECT_DOUBLE_EQ(adjusted.fat_tree.nvlink_efficiency, 235.0 / 300 * 0.5);
  EXPECT_DOUBLE_EQ(adjusted.fat_tree.nic_efficiency, 24.0 / 25 * 0.5);
  EXPECT_DOUBLE_EQ(s.chip.gemm_max_efficiency, 0.87);  // the hardware itself is unchanged
}

}  // namespace
}  // namespace palmsim
