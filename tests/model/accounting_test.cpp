// Parameter counts and FLOPs per token against PaLM's published figures (Table 1 sizes at the
// printed precision; Table 22 TFLOPs per token without / with rematerialization, within 1 %).
#include "model/accounting.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

TEST(Accounting, PalmParameterCountsMatchTable1) {
  // At the printed precision (half a unit of the last digit). Table 1 counts weight matrices and
  // the embedding; the LayerNorm scales add 2.2 M to 540B, too few to matter to FLOPs.
  EXPECT_NEAR(weight_matrix_parameters(model_preset("palm-8b")) / 1e9, 8.63, 0.005);
  EXPECT_NEAR(weight_matrix_parameters(model_preset("palm-62b")) / 1e9, 62.50, 0.005);
  EXPECT_NEAR(weight_matrix_parameters(model_preset("palm-540b")) / 1e9, 540.35, 0.005);
  const ModelSpec m = model_preset("palm-540b");
  EXPECT_EQ(parameter_count(m) - weight_matrix_parameters(m), 119LL * 18432);
}

TEST(Accounting, Palm540bLayerParametersByHand) {
  // q and o: 18432 x 48*256 each; k and v: 18432 x 256 each (one K/V head); SwiGLU: 3 x 18432 x
  // 73728; one LayerNorm scale of 18432 (parallel block, no biases).
  const LayerParameters p = layer_parameters(model_preset("palm-540b"));
  EXPECT_EQ(p.attention, 2LL * 18432 * 12288 + 2LL * 18432 * 256);
  EXPECT_EQ(p.mlp, 3LL * 18432 * 73728);
  EXPECT_EQ(p.norms, 18432);
}

TEST(Accounting, Gpt3ParameterCountIsAbout175B) {
  // GPT-3 175B (Brown et al. 2020, Table 2.1): 174.6 B with learned positions; palmsim leaves the
  // 25 M position parameters out.
  EXPECT_NEAR(parameter_count(model_preset("gpt3-175b")) / 1e9, 174.6, 0.1);
}

TEST(Accounting, FlopsPerTokenMatchPalmTable22) {
  struct Row { const char* model; double without, with; Recompute remat; };
  // 8B and 62B rematerialized attention only; 540B used PaLM's scheme.
  for (const Row& r : {Row{"palm-8b", 0.0550e12, 0.0561e12, Recompute::selective},
                       Row{"palm-62b", 0.388e12, 0.392e12, Recompute::selective},
                       Row{"palm-540b", 3.28e12, 4.10e12, Recompute::palm}}) {
    const ModelSpec m = model_preset(r.model);
    EXPECT_NEAR(model_flops_per_token(m) / r.without, 1.0, 0.01) << r.model;
    EXPECT_NEAR(hardware_flops_per_token(m, r.remat) / r.with, 1.0, 0.01) << r.model;
  }
}

TEST(Accounting, Palm540bMfuFromPublishedThroughput) {
  // PaLM Table 3: 238.3K tokens/s on 6144 TPU v4 (275 TFLOP/s) is 46.2 % MFU and 57.8 % HFU.
  const ModelSpec m = model_preset("palm-540b");
  const double peak = 6144 * 275e12;
  EXPECT_NEAR(238.3e3 * model_flops_per_token(m) / peak, 0.462, 0.002);
  EXPECT_NEAR(238.3e3 * hardware_flops_per_token(m, Recompute::palm) / peak, 0.578, 0.002);
}

TEST(Accounting, FullRecomputeAddsOneForwardOfTheLayers) {
  const ModelSpec m = model_preset("megatron-22b");
  const double layers = double(m.n_layers) * double(layer_parameters(m).total());
  EXPECT_DOUBLE_EQ(recompute_flops_per_token(m, Recompute::full),
                   2.0 * layers + attention_flops_per_token(m) / 3.0);
}

}  // namespace
}  // namespace palmsim
