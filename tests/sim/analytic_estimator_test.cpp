// The analytic estimator on PaLM's own run (Chowdhery et al. 2022, Sec. 4 and Table 3):
// MFU 46.2 %, HFU 57.8 %, fits in 32 GiB, and two pods at 1.95x one pod's throughput.
#include "model/accounting.h"
#include "sim/predict.h"

#include <gtest/gtest.h>

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

TEST(AnalyticEstimator, PipelineBubbleOfOneF1BByHand) {
  // (pp - 1) microbatch slots out of m + pp - 1: bubble / (step - bubble - optimizer - per-step
  // comm) = (pp - 1) / m. Megatron 175B, 8 stages, 64 microbatches, no data parallelism.
  Scenario s = load_scenario("scenarios/palm-540b-h100-6144.yaml");
  s.model = model_preset("gpt3-175b");
  s.system = system_preset("a100-80g-dgx");
  s.n_chips = 64;
  s.global_batch = 64;
  s.layout = Layout{};
  s.layout.tp = 8, s.layout.pp = 8, s.layout.dp = 1, s.layout.microbatch = 1, s.layout.sp = true;
  s.layout.recompute = Recompute::selective;
  const Report r = predict(s);
  const double steady = r.step_time_s - r.breakdown.bubble_s - r.breakdown.optimizer_s;
  EXPECT_NEAR(r.breakdown.bubble_s / steady, 7.0 / 64, 1e-9);
  // Interleaving three chunks per stage cuts the bubble three-fold (more sends, same compute).
  s.layout.vpp = 3, s.layout.schedule = Schedule::interleaved;
  const Report ri = predict(s);
  EXPECT_NEAR(ri.breakdown.bubble_s / r.breakdown.bubble_s, 1.0 / 3, 0.01);
}

}  // namespace
}  // namespace palmsim
