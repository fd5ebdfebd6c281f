// Scenario files: the shipped ones load; bad ones name their field.
#include "model/input_error.h"
#include "sim/predict.h"
#include "sim/scenario.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace palmsim {
namespace {

std::string error_field(const std::string& yaml) {
  try {
    parse_scenario(YAML::Load(yaml), "test.yaml");
  } catch (const InputError& e) {
    return e.field();
  }
  return "";
}

const char* kGood =
    "model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
    "layout: {tp: 4, dp: 64, microbatch: 4}\ntraining: {global_batch: 256}\n";

// A calibration's speed reference ran on the trainer's threads: on the local machine those are
// the cores its thread ranks share (System::shared_cores); a GPU cluster's calibration shares none.
TEST(Scenario, CalibrationSaysHowManyCoresTheThreadRanksShare) {
  Calibration c;
  c.peak_flops = 1e11;
  c.reference.threads = 2;
  System cpu = system_preset("local-cpu");
  apply_calibration(cpu, c);
  EXPECT_EQ(cpu.shared_cores, 2);
  EXPECT_TRUE(cpu.ranks_share_cores(4));
  EXPECT_FALSE(cpu.ranks_share_cores(2));
  System gpus = system_preset("h100-80g-dgx");
  apply_calibration(gpus, c);
  EXPECT_EQ(gpus.shared_cores, 0);
  EXPECT_FALSE(gpus.ranks_share_cores(64));
}

TEST(Scenario, ShippedScenariosLoad) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("scenarios")) {
    if (entry.path().extension() != ".yaml") continue;
    const YAML::Node root = YAML::LoadFile(entry.path().string());
    if (!root["system"]) continue;  // trainer-only configs have no system to predict on
    EXPECT_NO_THROW(load_scenario(entry.path().string())) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 5);
}

// A bundled scenario is a run someone could launch: its own layout fits its chips' memory.
TEST(Scenario, ShippedScenariosFitTheirChips) {
  for (const auto& entry : std::filesystem::directory_iterator("scenarios")) {
    if (entry.path().extension() != ".yaml" || !YAML::LoadFile(entry.path().string())["system"]) continue;
    const Report r = predict(load_scenario(entry.path().string()));
    EXPECT_TRUE(r.fits_in_memory) << entry.path() << ": " << r.memory.total() / double(1 << 30) << " GiB";
  }
}

TEST(Scenario, BadInputNamesTheField) {
  EXPECT_EQ(error_field(kGood), "");
  EXPECT_EQ(error_field(std::string(kGood) + "extra: 1\n"), "scenario.extra");
  EXPECT_EQ(error_field("model: palm-9b\nsystem: tpu-v4-pod\ntraining: {global_batch: 1}\n"), "model.preset");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: tpu-v9-pod\ntraining: {global_batch: 1}\n"), "system.preset");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
                        "layout: {tp: 3, dp: 64}\ntraining: {global_batch: 256}\n"), "layout");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 240}\n"
                        "layout: {tp: 15, dp: 16}\ntraining: {global_batch: 256}\n"), "layout.tp");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
                        "layout: {tp: 4, dp: -64}\ntraining: {global_batch: 256}\n"), "layout.dp");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
                        "layout: {tp: 4, dp: 64}\ntraining: {global_batch: -1}\n"), "training.global_batch");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
                        "layout: {tp: 4, dp: 64, sharding: zero4}\ntraining: {global_batch: 256}\n"),
            "layout.sharding");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 8192}\n"
                        "layout: {tp: 4, dp: 2048}\ntraining: {global_batch: 2048}\n"), "layout.pods");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
                        "layout: {tp: 4, dp: 64}\ntraining: {global_batch: 256, precision: fp4}\n"),
            "training.precision");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: local-cpu\ntraining: {global_batch: 1}\n"),
            "system.calibration");
  EXPECT_EQ(error_field("model: palm-8b\nsystem: local-gpu\ntraining: {global_batch: 1}\n"),
            "system.calibration");
}

}  // namespace
}  // namespace palmsim
