// The drift method's arithmetic against hand calculation (hwmodels/machine_drift.h).
#include "hwmodels/machine_drift.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace palmsim {
namespace {

TEST(MachineDrift, SpeedIsTheMediansAndTheirSpread) {
  const MachineSpeed s = machine_speed_of({{100, 10}, {80, 12}, {120, 11}}, 2, 1, 1 << 20);
  EXPECT_EQ(s.samples, 3);
  EXPECT_EQ(s.threads, 2);
  EXPECT_DOUBLE_EQ(s.gemm_flops_per_s, 100);
  EXPECT_DOUBLE_EQ(s.memory_bytes_per_s, 11);
  EXPECT_DOUBLE_EQ(s.gemm_spread, 0.4);       // (120 - 80) / 100
  EXPECT_DOUBLE_EQ(s.memory_spread, 2.0 / 11);
  EXPECT_FALSE(machine_speed_of({}, 2, 1, 1 << 20).measured());
}

TEST(MachineDrift, CorrectionMovesEachPartByItsOwnDrift) {
  const MachineSpeed then = machine_speed_of({{100e9, 50e9}}, 2, 1, 1 << 20);
  const MachineSpeed now = machine_speed_of({{125e9, 40e9}}, 2, 1, 1 << 20);
  const Drift d = drift_since(then, now);
  EXPECT_DOUBLE_EQ(d.compute, 1.25);
  EXPECT_DOUBLE_EQ(d.memory, 0.8);
  // 0.5 s of GEMMs on a machine 25 % faster take 0.4 s; 0.2 s of streaming 20 % slower, 0.25 s.
  EXPECT_DOUBLE_EQ(drift_corrected_seconds(0.5, 0.2, d), 0.65);
  EXPECT_DOUBLE_EQ(drift_corrected_seconds(0.5, 0.2, Drift{}), 0.7);
  EXPECT_THROW(drift_since(MachineSpeed{}, now), std::invalid_argument);
}

}  // namespace
}  // namespace palmsim
