// The machine's drift since calibration and the prediction moved to the present speed, by hand;
// a real reference measurement is positive and repeatable to within this machine's noise.
#include "kernels/calibrate/machine_reference.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

TEST(MachineReference, DriftIsSpeedNowOverSpeedThen) {
  const MachineReference then{100e9, 20e9}, now{80e9, 25e9};
  const Drift d = drift_since(then, now);
  EXPECT_DOUBLE_EQ(d.compute, 0.8);   // GEMMs 20 % slower now
  EXPECT_DOUBLE_EQ(d.memory, 1.25);   // streaming 25 % faster
  // An unmeasured side (older calibration files) means no drift.
  EXPECT_DOUBLE_EQ(drift_since({0, 20e9}, now).compute, 1.0);
}

TEST(MachineReference, CorrectionScalesComputeAndMemorySeparately) {
  // 0.6 s of compute-bound and 0.4 s of memory-bound predicted work in a 1.1 s step: with GEMMs at
  // 0.8x and memory at 1.25x the speed of calibration, 0.6/0.8 + 0.4/1.25 = 1.07 s of work, and the
  // step scales by 1.07 / 1.0.
  const double corrected = drift_corrected_step_s(1.1, 0.6, 0.4, Drift{0.8, 1.25});
  EXPECT_NEAR(corrected, 1.1 * (0.6 / 0.8 + 0.4 / 1.25), 1e-12);
  EXPECT_DOUBLE_EQ(drift_corrected_step_s(1.1, 0.6, 0.4, Drift{}), 1.1);
  EXPECT_DOUBLE_EQ(drift_corrected_step_s(1.1, 0.0, 0.0, Drift{0.5, 0.5}), 1.1);
}

TEST(MachineReference, MediansAreTakenPerField) {
  const MachineReference m = median_reference({{1, 30}, {3, 10}, {2, 20}});
  EXPECT_DOUBLE_EQ(m.gemm_flops_per_s, 2);
  EXPECT_DOUBLE_EQ(m.memory_bytes_per_s, 20);
}

TEST(MachineReference, AMeasurementIsPositive) {
  const MachineReference r = measure_reference(3);
  EXPECT_GT(r.gemm_flops_per_s, 1e8);
  EXPECT_GT(r.memory_bytes_per_s, 1e8);
}

}  // namespace
}  // namespace palmsim
