// Calibration files: round trip, measured per-op rates and collective times, bad content.
#include "hwmodels/calibration.h"
#include "hwmodels/comm_model.h"
#include "hwmodels/compute_model.h"
#include "model/input_error.h"

#include <gtest/gtest.h>

#include <fstream>

namespace palmsim {
namespace {

Calibration sample() {
  Calibration c;
  c.device = "test cpu";
  c.date = "2026-11-22";
  c.peak_flops = 100e9;
  c.memory_bytes_per_s = 10e9;
  c.memory_bytes = 16e9;
  c.gemm = {{256, 256, 256, 1, 0.4}, {2048, 2048, 2048, 1, 0.9}};
  c.memory_op_bytes_per_s = {{"ln.fwd", 2e9}};
  // 2 ranks: 10 us + bytes / 5 GB/s, measured at 1 kB and 1 MB and 100 MB.
  for (double b : {1e3, 1e6, 1e8}) c.collectives.push_back({"all_reduce", 2, b, 10e-6 + b / 5e9});
  c.reference = machine_speed_of({{90e9, 9e9}, {110e9, 11e9}, {100e9, 10e9}}, 2, 1, 1 << 20);
  return c;
}

TEST(Calibration, RoundTripThroughAFile) {
  const std::string path = testing::TempDir() + "/cal.json";
  save_calibration(sample(), path);
  const Calibration c = load_calibration(path);
  EXPECT_EQ(c.device, "test cpu");
  EXPECT_EQ(c.gemm.size(), 2u);
  EXPECT_DOUBLE_EQ(c.memory_op_bytes_per_s.at("ln.fwd"), 2e9);
  EXPECT_EQ(c.collectives.size(), 3u);
  EXPECT_DOUBLE_EQ(c.memory_bytes, 16e9);
  EXPECT_DOUBLE_EQ(c.reference.gemm_flops_per_s, 100e9);
  EXPECT_DOUBLE_EQ(c.reference.memory_bytes_per_s, 10e9);
  EXPECT_EQ(c.reference.samples, 3);
  EXPECT_EQ(c.reference.threads, 2);
  EXPECT_DOUBLE_EQ(c.reference.memory_probe_bytes, 1 << 20);
  EXPECT_DOUBLE_EQ(c.reference.gemm_spread, 0.2);
}

TEST(Calibration, CollectiveTimesAreAffineBetweenSamples) {
  const Calibration c = sample();
  EXPECT_NEAR(c.collective_seconds("all_reduce", 2, 5e6), 10e-6 + 5e6 / 5e9, 1e-12);
  EXPECT_NEAR(c.collective_seconds("all_reduce", 2, 1e9), 10e-6 + 1e9 / 5e9, 1e-9);  // extrapolated
  EXPECT_LT(c.collective_seconds("all_gather", 2, 1e6), 0.0);  // not measured
  EXPECT_LT(c.collective_seconds("all_reduce", 4, 1e6), 0.0);
}

TEST(Calibration, MeasuredRatesDriveTheModels) {
  const Calibration c = sample();
  System s = system_preset("local-cpu");
  s.chip.peak_flops = c.peak_flops;
  s.chip.hbm_bytes_per_s = c.memory_bytes_per_s;
  const ComputeModel compute(s.chip, &c);
  const std::string ln = "ln.fwd", rope = "rope.fwd";
  EXPECT_DOUBLE_EQ(compute.memory_seconds(1e9, &ln), 0.5);         // its own measured rate
  EXPECT_DOUBLE_EQ(compute.memory_seconds(1e9, &rope), 0.1);       // the streaming fallback
  EXPECT_DOUBLE_EQ(compute.gemm_efficiency(2048, 2048, 2048), 0.9);
  Layout l;
  l.dp = 2;
  const CommModel comm(s, l, &c);
  EXPECT_NEAR(comm.collective_seconds(CommGroup::dp, CollectiveKind::all_reduce, 1e6), 10e-6 + 1e6 / 5e9, 1e-12);
}

TEST(Calibration, BadFilesNameTheProblem) {
  const std::string path = testing::TempDir() + "/bad_cal.json";
  std::ofstream(path) << "{\"device\": \"x\"";
  EXPECT_THROW(load_calibration(path), InputError);
  std::ofstream(path) << "{\"device\": \"x\", \"date\": \"d\", \"gemm\": [{\"m\": 0, \"n\": 1, \"k\": 1, \"efficiency\": 0.5}]}";
  EXPECT_THROW(load_calibration(path), InputError);
  EXPECT_THROW(load_calibration(testing::TempDir() + "/no_such.json"), InputError);
  std::ofstream(path) << "{\"device\": \"x\", \"date\": \"d\", \"reference\": {\"gemm_flops_per_s\": 1e9, "
                         "\"memory_bytes_per_s\": 0, \"samples\": 3, \"memory_probe_bytes\": 1e6}}";
  try {
    load_calibration(path);
    ADD_FAILURE() << "a reference without a memory rate was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("calibration.reference"), std::string::npos) << e.what();
  }
  // A file from before the reference existed still loads, without one.
  std::ofstream(path) << "{\"device\": \"x\", \"date\": \"d\", \"peak_flops\": 1e9}";
  EXPECT_FALSE(load_calibration(path).reference.measured());
}

}  // namespace
}  // namespace palmsim
