// GEMM efficiency from shape: tile padding, wave quantization, short reduction dims.
#include "hwmodels/compute_model.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

TEST(ComputeModel, LargeSquareGemmApproachesTheMeasuredBest) {
  const ComputeModel c(chip_preset("a100-80g"));
  // 8192^3 on 108 SMs: 4096 tiles of 128x128 in 38 waves (4104 slots) and k/(k+32).
  const double expected = 0.87 * (4096.0 / (38 * 108)) * 8192.0 / (8192 + 32);
  EXPECT_NEAR(c.gemm_efficiency(8192, 8192, 8192), expected, 1e-12);
}

TEST(ComputeModel, PaddingToTheTileCostsWhatItPads) {
  const ComputeModel c(chip_preset("tpu-v4"));
  // n = 129 pads to 256 on 128-wide MXUs: efficiency halves (almost).
  EXPECT_NEAR(c.gemm_efficiency(4096, 129, 4096) / c.gemm_efficiency(4096, 128, 4096), 129.0 / 256, 1e-12);
}

TEST(ComputeModel, SkinnyGemmsAreMemoryBound) {
  const ComputeModel c(chip_preset("h100-80g"));
  // m = 1 (a GEMV): 2*1*8192*8192 FLOPs but 2*8192*8192 bytes of weights to stream.
  const double t = c.gemm_seconds(1, 8192, 8192);
  EXPECT_NEAR(t, c.memory_seconds(2.0 * (8192.0 + 8192.0 * 8192 + 8192)), 1e-15);
}

TEST(ComputeModel, CalibrationTableReplacesTheShapeModel) {
  Calibration cal;
  cal.gemm = {{1024, 1024, 1024, 1, 0.5}, {8192, 8192, 8192, 1, 0.75}};
  const ComputeModel c(chip_preset("a100-80g"), &cal);
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(7000, 9000, 8000), 0.75);  // nearest in log space
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(900, 1100, 1000), 0.5);
}

}  // namespace
}  // namespace palmsim
