// Sweep: overrides land where a hand-edited scenario would put them, every row equals predict() of
// that hand-written scenario, any split into shards joins to the same bytes, and bad overrides are
// input errors rather than rows.
#include "model/input_error.h"
#include "sim/predict.h"
#include "sim/scenario_override.h"
#include "sim/sweep.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>
#include <sstream>

namespace palmsim {
namespace {

const char* kScenario =
    "model: palm-8b\n"
    "system: {preset: tpu-v4-pod, chips: 256}\n"
    "layout: {tp: 4, dp: 64, microbatch: 4}\n"
    "training: {global_batch: 256}\n";

std::string field_of_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.field();
  }
  return "";
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  for (std::string cell; std::getline(in, cell, ',');) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

TEST(ScenarioOverride, SetsNestedKeysAndTurnsPresetNamesIntoMaps) {
  YAML::Node root = YAML::Load(kScenario);
  apply_override(root, "layout.tp", "8");
  apply_override(root, "model.parallel_block", "false");
  apply_override(root, "system.chip.hbm_gib", "16");
  apply_override(root, "stack.fused_attention", "false");
  EXPECT_EQ(root["layout"]["tp"].Scalar(), "8");
  EXPECT_EQ(root["layout"]["dp"].Scalar(), "64");  // the rest of the section stays
  EXPECT_EQ(root["model"]["preset"].Scalar(), "palm-8b");
  EXPECT_EQ(root["model"]["parallel_block"].Scalar(), "false");
  EXPECT_EQ(root["system"]["preset"].Scalar(), "tpu-v4-pod");
  EXPECT_EQ(root["system"]["chip"]["hbm_gib"].Scalar(), "16");
  EXPECT_EQ(root["stack"]["fused_attention"].Scalar(), "false");
  apply_override(root, "layout", "{tp: 2, dp: 128}");  // a flow map replaces the section
  EXPECT_EQ(root["layout"]["dp"].as<int>(), 128);
  EXPECT_FALSE(root["layout"]["microbatch"]);
  EXPECT_EQ(field_of_error([&] { apply_override(root, "layout.tp.x", "1"); }), "layout.tp.x");
}

TEST(ScenarioOverride, ValuesSplitAtCommasOutsideBrackets) {
  auto [key, values] = parse_override_values("system={preset: tpu-v4-pod, chips: 64},h100-80g-dgx", "--set");
  EXPECT_EQ(key, "system");
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values[0], "{preset: tpu-v4-pod, chips: 64}");
  EXPECT_EQ(values[1], "h100-80g-dgx");
  for (const char* bad : {"layout.tp", "=1", "layout.tp=", "layout.tp=1,,2", ".tp=1", "layout..tp=1", "a={b: 1"})
    EXPECT_EQ(field_of_error([&] { parse_override_values(bad, "--set"); }), "--set") << bad;
}

TEST(SweepGrid, LastAxisVariesFastestAndSizesMultiply) {
  const SweepGrid g = parse_sweep_grid({"a.x=1,2", "b.y=p,q,r"}, 100);
  EXPECT_EQ(g.size(), 6);
  EXPECT_EQ(g.indices(0), (std::vector<int>{0, 0}));
  EXPECT_EQ(g.indices(1), (std::vector<int>{0, 1}));
  EXPECT_EQ(g.indices(3), (std::vector<int>{1, 0}));
  EXPECT_EQ(g.indices(5), (std::vector<int>{1, 2}));
  EXPECT_EQ(field_of_error([] { parse_sweep_grid({"a.x=1,2", "a.x=3"}, 100); }), "--set");
  EXPECT_EQ(field_of_error([] { parse_sweep_grid({"a.x=1,2", "b.y=1,2,3"}, 5); }), "--set");
  EXPECT_EQ(field_of_error([] { parse_sweep_grid({}, 5); }), "--set");
}

TEST(SweepGrid, ShardsCoverEveryCombinationOnce) {
  for (int64_t size : {0, 1, 7, 100})
    for (int count : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int i = 0; i < count; ++i) {
        auto [b, e] = shard_range(size, i, count);
        EXPECT_EQ(b, next);
        EXPECT_GE(e, b);
        next = e;
      }
      EXPECT_EQ(next, size);
    }
}

// Each row against predict() of the scenario written out by hand with that combination's values.
TEST(Sweep, EveryRowIsPredictOfTheHandWrittenScenario) {
  Sweep sweep(YAML::Load(kScenario), "test.yaml",
              parse_sweep_grid({"model.parallel_block=true,false", "layout.tp=4,8,3", "layout.dp=64,32"}, 100));
  const std::vector<std::string> out = lines(sweep.header() + sweep.evaluate(0, sweep.grid().size()));
  ASSERT_EQ(out.size(), 13u);
  EXPECT_EQ(out[0],
            "combination,model.parallel_block,layout.tp,layout.dp,n_chips,step_time_s,tokens_per_s,mfu,hfu,"
            "memory_per_chip_gib,fits,band_low_s,band_high_s,error");
  int legal = 0;
  for (int c = 0; c < 12; ++c) {
    const std::vector<std::string> row = cells(out[size_t(c) + 1]);
    ASSERT_EQ(row.size(), 14u) << out[size_t(c) + 1];
    const std::string block = row[1], tp = row[2], dp = row[3];
    EXPECT_EQ(row[0], std::to_string(c));
    const std::string yaml = fmt::format(
        "model: {{preset: palm-8b, parallel_block: {}}}\nsystem: {{preset: tpu-v4-pod, chips: 256}}\n"
        "layout: {{tp: {}, dp: {}, microbatch: 4}}\ntraining: {{global_batch: 256}}\n",
        block, tp, dp);
    try {
      const Scenario s = parse_scenario(YAML::Load(yaml), "hand.yaml");
      const Report r = predict(s);
      EXPECT_EQ(row[13], "") << out[size_t(c) + 1];
      EXPECT_EQ(row[4], "256");
      EXPECT_EQ(row[5], fmt::format("{}", r.step_time_s));
      EXPECT_EQ(row[7], fmt::format("{}", r.mfu));
      EXPECT_EQ(row[10], r.fits_in_memory ? "1" : "0");
      ++legal;
    } catch (const InputError& e) {
      EXPECT_NE(row[13].find(e.what()), std::string::npos) << row[13] << " vs " << e.what();
      EXPECT_EQ(row[5], "");
    }
  }
  // tp 4 x dp 64 and tp 8 x dp 32 fill 256 chips; tp 3 divides no head count of palm-8b (16).
  EXPECT_EQ(legal, 4);
  EXPECT_EQ(sweep.legal_rows(), 4);
  // The parallel block is faster than the serial one at the same layout (PaLM Sec. 2).
  const std::vector<std::string> parallel = cells(out[1]), serial = cells(out[7]);
  EXPECT_LT(std::stod(parallel[5]), std::stod(serial[5]));
}

// The expert degrees change the groups' placement on the nodes (ep 16 spans two, etp 2 spreads ep 8
// over both): each row is still predict of its own scenario. The sweep once reused the first ep's
// placement for every ep of the same mesh.
TEST(Sweep, ExpertDegreesEachGetTheirOwnPlacement) {
  const std::string base =
      "model: qwen3-30b-a3b\nsystem: {preset: h100-80g-dgx, chips: 16}\n"
      "layout: {tp: 2, dp: 8, sp: true, microbatch: 1, sharding: zero1}\ntraining: {global_batch: 64}\n";
  Sweep sweep(YAML::Load(base), "test.yaml", parse_sweep_grid({"layout.ep=8,16,4", "layout.etp=1,2"}, 100));
  const std::vector<std::string> out = lines(sweep.header() + sweep.evaluate(0, sweep.grid().size()));
  ASSERT_EQ(out.size(), 7u);
  std::set<std::string> steps;
  for (int c = 0; c < 6; ++c) {
    const std::vector<std::string> row = cells(out[size_t(c) + 1]);
    if (row[1] == "16" && row[2] == "2") {  // 32 expert ranks on 16
      EXPECT_NE(out[size_t(c) + 1].find("layout.etp"), std::string::npos) << out[size_t(c) + 1];
      continue;
    }
    YAML::Node root = YAML::Load(base);
    apply_override(root, "layout.ep", row[1]);
    apply_override(root, "layout.etp", row[2]);
    const Scenario s = parse_scenario(root, "hand.yaml");
    EXPECT_EQ(row[4], fmt::format("{}", predict(s).step_time_s)) << out[size_t(c) + 1];
    steps.insert(row[4]);
  }
  EXPECT_EQ(steps.size(), 5u);
}

TEST(Sweep, ShardsJoinToTheBytesOfOneRun) {
  const SweepGrid grid = parse_sweep_grid({"layout.tp=1,2,4,8", "layout.microbatch=1,2,4", "system.preset=tpu-v4-pod,h100-80g-dgx"}, 100);
  Sweep whole(YAML::Load(kScenario), "test.yaml", grid);
  const std::string expected = whole.header() + whole.evaluate(0, grid.size());
  for (int count : {1, 2, 5, 30}) {
    std::vector<std::string> texts, names;
    for (int i = count - 1; i >= 0; --i) {  // any order
      Sweep part(YAML::Load(kScenario), "test.yaml", grid);
      auto [b, e] = shard_range(grid.size(), i, count);
      texts.push_back(shard_preamble(i, count, grid.size()) + part.header() + part.evaluate(b, e));
      names.push_back("shard" + std::to_string(i));
    }
    EXPECT_EQ(merge_sweep_shards(texts, names), expected) << count << " shards";
    // A missing, repeated or damaged shard is refused, naming it.
    if (count > 1) {
      std::vector<std::string> missing(texts.begin() + 1, texts.end()), missing_names(names.begin() + 1, names.end());
      EXPECT_EQ(field_of_error([&] { merge_sweep_shards(missing, missing_names); }), "SHARD");
      std::vector<std::string> twice = texts, twice_names = names;
      twice.push_back(texts[0]);
      twice_names.push_back("again");
      EXPECT_EQ(field_of_error([&] { merge_sweep_shards(twice, twice_names); }), "again");
      std::vector<std::string> damaged = texts;
      damaged[0] = damaged[0].substr(0, damaged[0].size() - 10);
      EXPECT_EQ(field_of_error([&] { merge_sweep_shards(damaged, names); }), names[0]);
    }
  }
  EXPECT_EQ(field_of_error([&] { merge_sweep_shards({expected}, {"whole.csv"}); }), "whole.csv");
}

TEST(Sweep, BadOverridesAreInputErrorsNotRows) {
  auto make = [](const std::string& set) {
    Sweep(YAML::Load(kScenario), "test.yaml", parse_sweep_grid({set}, 100));
  };
  EXPECT_EQ(field_of_error([&] { make("layout.tpp=1,2"); }), "layout.tpp");
  EXPECT_EQ(field_of_error([&] { make("layout.tp=2,x"); }), "layout.tp");
  EXPECT_EQ(field_of_error([&] { make("model.parallel_block=true,maybe"); }), "model.parallel_block");
  EXPECT_EQ(field_of_error([&] { make("system.preset=tpu-v4-pod,tpu-v9"); }), "system.preset");
  EXPECT_EQ(field_of_error([&] { make("training.optimizer=adam,sgd"); }), "training.optimizer");
  EXPECT_EQ(field_of_error([&] { make("stack.no_such_field=1"); }), "stack.no_such_field");
  EXPECT_EQ(field_of_error([&] { make("layout={tp: 2}"); }), "--set");
  // A value legal on its own but not with the rest is a row with its reason.
  EXPECT_EQ(field_of_error([&] { make("layout.dp=64,3"); }), "");
}

}  // namespace
}  // namespace palmsim
