// `fit` recovers parameters it generated: runs predicted by palmsim itself under known stack
// parameters, with 1 % multiplicative noise, are fitted from the shipped defaults; the fit must
// land near the truth, and its cross-validated error must be close to the noise.
#include "sim/stack_fit.h"

#include "model/input_error.h"
#include "sim/predict.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace palmsim {
namespace {

std::vector<FitRun> synthetic_runs(const Stack& truth) {
  // The first 90 vTrain rows: their shapes and layouts (tp, pp, dp, microbatch vary).
  const std::vector<ValidationRow> rows = validate_table(read_validation_csv("scenarios/published/vtrain_a100_single_node.csv"));
  std::vector<ValidationRow> head(rows.begin(), rows.begin() + 90);
  std::vector<FitRun> runs = fit_runs("synthetic.csv", head, "megatron-deepspeed");
  std::mt19937 rng(7);
  for (FitRun& r : runs) {
    const double noise = 0.01 * (double(rng() % 2001) / 1000.0 - 1.0);  // uniform +-1 %
    r.measured_step_s = fit_predicted_step_s(r, truth) * (1.0 + noise);
  }
  return runs;
}

TEST(StackFit, RecoversKnownParametersFromNoisyRuns) {
  const Stack base = stack_preset("megatron-deepspeed");
  Stack truth = base;
  truth.host_overhead_s = 25e-6;
  truth.gemm_efficiency_scale = 0.85;
  truth.p2p_overhead_s = 150e-6;
  const std::vector<FitRun> runs = synthetic_runs(truth);
  ASSERT_EQ(runs.size(), 90u);
  FitOptions o;
  o.parameters = {"host_overhead_us", "gemm_efficiency_scale", "p2p_overhead_us"};
  o.folds = 3;
  const FitResult r = fit_stack(runs, base, o);
  EXPECT_NEAR(r.fitted.host_overhead_s, 25e-6, 2.5e-6);
  EXPECT_NEAR(r.fitted.gemm_efficiency_scale, 0.85, 0.03);
  EXPECT_NEAR(r.fitted.p2p_overhead_s, 150e-6, 60e-6);
  // Unfitted parameters stay where they were.
  EXPECT_EQ(r.fitted.kernel_floor_s, base.kernel_floor_s);
  // Judged on held-out runs, the error is about the noise; before the fit it was far larger.
  EXPECT_LT(r.all.cv_pct, 1.5);
  EXPECT_GT(r.all.before_pct, 5.0);
  EXPECT_EQ(r.fitted.band.runs, 90);
  EXPECT_LT(r.fitted.band.p05_pct, 0.0);
  EXPECT_GT(r.fitted.band.p95_pct, 0.0);
  EXPECT_EQ(r.fitted.band.min_chips, 2);
  EXPECT_EQ(r.fitted.band.max_chips, 8);
}

// A run's own stack choices (its row's stack_overrides) survive the fit, which varies only the
// cost parameters: the fit predicts the run as validate does.
TEST(StackFit, KeepsEachRunsOwnStackChoices) {
  const std::vector<ValidationRow> rows =
      validate_table(read_validation_csv("scenarios/published/torchtitan_h100.csv"));
  const std::vector<FitRun> runs = fit_runs("torchtitan_h100.csv", rows, "torchtitan-fsdp2");
  const Stack shipped = stack_preset("torchtitan-fsdp2");
  int overridden = 0;
  for (const FitRun& r : runs) {
    if (r.scenario.system.stack.fused_elementwise == shipped.fused_elementwise &&
        r.scenario.system.stack.overlap_tp_comm == shipped.overlap_tp_comm)
      continue;
    ++overridden;
    EXPECT_DOUBLE_EQ(fit_predicted_step_s(r, shipped), predict(r.scenario).step_time_s) << r.id;
  }
  EXPECT_EQ(overridden, 9);  // 2 without torch.compile, 7 with async TP (annotations)
}

// The shipped torchtitan stack is what tools/fit_stacks.sh fits: refitting it on its runs, from
// its own values, finds them again (the script reproduces the file), and its recorded
// cross-validated error is the one the fit measures.
TEST(StackFit, ShippedTorchtitanFitIsAFixedPoint) {
  const std::vector<ValidationRow> rows =
      validate_table(read_validation_csv("scenarios/published/torchtitan_h100.csv"));
  const std::vector<FitRun> runs = fit_runs("torchtitan_h100.csv", rows, "torchtitan-fsdp2");
  const Stack shipped = stack_preset("torchtitan-fsdp2");
  FitOptions o;
  o.parameters = {"gemm_efficiency_scale",       "fp8_gemm_efficiency_scale", "attention_efficiency_scale",
                  "memory_efficiency_scale",     "collective_efficiency_scale", "tp_overlap_fraction"};
  const FitResult r = fit_stack(runs, shipped, o);
  EXPECT_NEAR(r.fitted.gemm_efficiency_scale, shipped.gemm_efficiency_scale, 1e-3);
  EXPECT_NEAR(r.fitted.collective_efficiency_scale, shipped.collective_efficiency_scale, 1e-3);
  EXPECT_NEAR(r.fitted.tp_overlap_fraction, shipped.tp_overlap_fraction, 1e-3);
  EXPECT_EQ(r.fitted.host_overhead_s, shipped.host_overhead_s);  // not identifiable here: not fitted
  EXPECT_NEAR(r.all.cv_pct, shipped.band.cv_mean_abs_err_pct.at("torchtitan_h100.csv"), 0.01);
  EXPECT_LE(r.all.cv_pct, 12.0);  // issue 10's bar for this file
}

// NeMo's long-sequence file: the six runs without context parallelism publish no mesh ("the most
// performant that fits"), so search chooses it; they are validated but not fitted. The shipped
// Megatron-Core stack is the fit of the other nine with Megatron-Bridge's five dropless gpt-oss
// runs, a fixed point of refitting them, and its recorded held-out errors are the ones the fit
// measures. The dense runs cannot see the MoE layers' host synchronisation; the gpt-oss runs fix it.
TEST(StackFit, RunsWithAnUnpublishedMeshAreNotFitted) {
  const std::vector<ValidationRow> rows =
      validate_table(read_validation_csv("scenarios/published/nemo_long_sequence_h100.csv"));
  std::vector<std::string> unfitted;
  std::vector<FitRun> runs = fit_runs("nemo_long_sequence_h100.csv", rows, "megatron-core", &unfitted);
  ASSERT_EQ(runs.size(), 9u);
  ASSERT_EQ(unfitted.size(), 6u);
  for (const std::string& id : unfitted) EXPECT_NE(id.find("-nocp"), std::string::npos) << id;
  for (const FitRun& r : runs) EXPECT_EQ(r.id.find("-nocp"), std::string::npos) << r.id;
  const std::vector<FitRun> moe = fit_runs(
      "megatron_bridge_gpt_oss_h100.csv",
      validate_table(read_validation_csv("scenarios/published/megatron_bridge_gpt_oss_h100.csv")), "megatron-core",
      &unfitted);
  ASSERT_EQ(moe.size(), 5u);
  runs.insert(runs.end(), moe.begin(), moe.end());

  const Stack shipped = stack_preset("megatron-core");
  FitOptions o;
  o.parameters = {"fp8_gemm_efficiency_scale", "attention_efficiency_scale", "host_sync_us"};
  o.folds = 3;
  const FitResult r = fit_stack(runs, shipped, o);
  EXPECT_NEAR(r.fitted.fp8_gemm_efficiency_scale, shipped.fp8_gemm_efficiency_scale, 2e-3);
  EXPECT_NEAR(r.fitted.attention_efficiency_scale, shipped.attention_efficiency_scale, 2e-3);
  EXPECT_NEAR(r.fitted.host_sync_s, shipped.host_sync_s, 20e-6);
  ASSERT_EQ(r.files.size(), 2u);
  for (const FileErrors& f : r.files) {
    EXPECT_NEAR(f.cv_pct, shipped.band.cv_mean_abs_err_pct.at(f.file), 0.01) << f.file;
    EXPECT_LE(f.cv_pct, 8.0) << f.file;  // issue 12's goal for these files
  }
}

TEST(StackFit, FoldsDependOnTheIdOnly) {
  EXPECT_EQ(fold_of("vtrain-single-0001", 5), fold_of("vtrain-single-0001", 5));
  int counts[5] = {0, 0, 0, 0, 0};
  for (int i = 0; i < 1000; ++i) ++counts[fold_of("run-" + std::to_string(i), 5)];
  for (int c : counts) EXPECT_NEAR(c, 200, 50);
}

TEST(StackFit, RefusesUnknownParametersAndTooFewRuns) {
  const Stack base = stack_preset("megatron-deepspeed");
  const std::vector<FitRun> runs = synthetic_runs(base);
  FitOptions bad;
  bad.parameters = {"warp_speed"};
  EXPECT_THROW(fit_stack(runs, base, bad), InputError);
  FitOptions folds;
  folds.folds = 1;
  EXPECT_THROW(fit_stack(runs, base, folds), InputError);
  std::vector<FitRun> two(runs.begin(), runs.begin() + 2);
  EXPECT_THROW(fit_stack(two, base, FitOptions{}), InputError);
}

}  // namespace
}  // namespace palmsim
