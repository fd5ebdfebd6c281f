// The command-line contract (DESIGN.md): exit 0 on success, 2 on bad input with one message naming
// the field, nothing on stdout then, and no file written or replaced.
#include "tests/cli/cli_run.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>
#include <string>

#include <unistd.h>

namespace {

CliRun run(const std::string& args) { return run_command(std::string(PALMSIM_BINARY) + " " + args); }

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Cli, PredictJsonHasTheContractKeys) {
  const CliRun r = run("predict scenarios/palm-540b-tpuv4-6144.yaml --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"step_time_s", "tokens_per_s", "mfu", "hfu", "model_flops_per_token",
                        "memory_per_chip_bytes", "fits_in_memory", "breakdown", "layout", "system", "model"})
    EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"compute_s", "exposed_comm_s", "bubble_s", "optimizer_s", "recompute_s"})
    EXPECT_TRUE(j["breakdown"].contains(k)) << k;
  EXPECT_LT(j["mfu"].get<double>(), 1.0);  // a fraction, not percent
}

TEST(Cli, HelpExitsZero) {
  EXPECT_EQ(run("--help").status, 0);
  EXPECT_EQ(run("predict --help").status, 0);
}

TEST(Cli, BadScenariosExitTwoWithOneMessageNamingTheField) {
  struct Case { const char* name; const char* yaml; const char* field; };
  const Case cases[] = {
      {"unknown_key.yaml", "model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\nlayout: {tp: 4, dp: 64}\n"
                           "training: {global_batch: 256}\nmodle: x\n", "scenario.modle"},
      {"misspelt_preset.yaml", "model: palm-8b\nsystem: {preset: tpu-v4-pods, chips: 256}\nlayout: {tp: 4, dp: 64}\n"
                               "training: {global_batch: 256}\n", "system.preset"},
      {"tp_heads.yaml", "model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 320}\nlayout: {tp: 5, dp: 64}\n"
                        "training: {global_batch: 256}\n", "layout.tp"},
      {"product.yaml", "model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\nlayout: {tp: 4, dp: 32}\n"
                       "training: {global_batch: 256}\n", "layout:"},
      {"negative.yaml", "model: {preset: palm-8b, n_layers: -2}\nsystem: {preset: tpu-v4-pod, chips: 256}\n"
                        "layout: {tp: 4, dp: 64}\ntraining: {global_batch: 256}\n", "model.n_layers"},
      {"malformed.yaml", "model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256\n", "scenario"},
  };
  for (const Case& c : cases) {
    const CliRun r = run("predict " + write_temp(c.name, c.yaml));
    EXPECT_EQ(r.status, 2) << c.name;
    EXPECT_TRUE(r.out.empty()) << c.name << ": " << r.out;
    EXPECT_NE(r.err.find(c.field), std::string::npos) << c.name << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.name << ": " << r.err;
  }
  const CliRun missing = run("predict no/such/file.yaml");
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(run("frobnicate").status, 2);
  EXPECT_EQ(run("search scenarios/palm-8b-tpuv4.yaml --top 0").status, 2);
}

TEST(Cli, MalformedCsvExitsTwo) {
  const CliRun r = run("validate " + write_temp("bad.csv", "id,n_layers\n\"x,1\n"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("csv"), std::string::npos) << r.err;
  const CliRun missing_column = run("validate " + write_temp("cols.csv", "id,n_layers\nx,1\n"));
  EXPECT_EQ(missing_column.status, 2);
  EXPECT_NE(missing_column.err.find("missing column"), std::string::npos) << missing_column.err;
}

TEST(Cli, ValidateNeverReplacesAUsersFileWithoutForce) {
  const std::string out = write_temp("mine.csv", "precious\n");
  const CliRun r = run("validate scenarios/published/published_runs.csv -o " + out);
  EXPECT_EQ(r.status, 2);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "precious");
  const CliRun forced = run("validate scenarios/published/published_runs.csv --force -o " + out);
  EXPECT_EQ(forced.status, 0) << forced.err;
  EXPECT_NE(forced.out.find("rows 19, scored 19, not modelled 0, mean |err_step|"), std::string::npos);
  std::filesystem::remove(out);
}

// Llama 2 70B at 128K tokens on 64 H100s with context parallelism 4: its own layout needs ~580 GiB
// a GPU, and the simulator does not model cp yet.
const char* kLongContext = R"(
model: {preset: llama2-70b, seq_len: 131072}
system: {preset: h100-80g-dgx, chips: 64}
layout: {tp: 4, pp: 1, dp: 4, cp: 4, microbatch: 1, recompute: selective}
training: {global_batch: 32, optimizer: adam, precision: bf16}
)";

TEST(Cli, SearchPrintsItsRate) {
  const CliRun r = run("search scenarios/palm-540b-tpuv4-6144.yaml --top 3");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("layouts/s"), std::string::npos);  // timing on stderr: stdout is deterministic
  EXPECT_NE(r.out.find("scenario's own layout"), std::string::npos);
  EXPECT_NE(r.out.find("GiB of 32.00 GiB (fits)"), std::string::npos);  // PaLM's own layout fits a v4 chip
}

TEST(Cli, SearchSaysWhenTheScenariosOwnLayoutDoesNotFit) {
  // 128K tokens on 64 H100s without recompute beyond selective: the given layout is faster than any
  // ranked one only because it needs ~580 GiB a GPU.
  const std::string path = write_temp("cp_own.yaml", kLongContext);
  const CliRun r = run("search " + path + " --top 1");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("GiB of 79.65 GiB (does not fit)"), std::string::npos) << r.out;
}

TEST(Cli, CalibrateQuickWritesAFileThePredictorReads) {
  const std::string out = testing::TempDir() + "/cal_cli.json";
  std::filesystem::remove(out);
  const CliRun r = run("calibrate --quick --threads 1 -o " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream in(out);
  const auto j = nlohmann::json::parse(in);
  EXPECT_GT(j["peak_flops"].get<double>(), 1e8);        // any CPU of this century
  EXPECT_GT(j["memory_bytes_per_s"].get<double>(), 1e8);
  ASSERT_GE(j["gemm"].size(), 27u);                      // the quick 3 x 3 x 3 grid
  for (const auto& g : j["gemm"]) {
    EXPECT_GT(g["efficiency"].get<double>(), 0.0);
    EXPECT_LE(g["efficiency"].get<double>(), 1.0);
  }
  // A second run refuses to replace it.
  EXPECT_EQ(run("calibrate --quick -o " + out).status, 2);
  EXPECT_EQ(run("calibrate --backend tpu --quick -o " + out + ".x").status, 2);
  std::filesystem::remove(out);
}

}  // namespace

namespace {

TEST(Cli, FitWritesAStackThatScenariosCanUseAndNeverOverwrites) {
  const std::string out = testing::TempDir() + "/fitted-stack.yaml";
  std::filesystem::remove(out);
  const CliRun r = run("fit scenarios/published/maxtext_tpu_v5e.csv --stack maxtext --params gemm_efficiency_scale "
                       "--folds 3 --max-evaluations 40 -o " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("maxtext_tpu_v5e.csv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cv |err| %"), std::string::npos) << r.out;
  // The file is a stack: a scenario takes it.
  const std::string scenario = write_temp(
      "uses-fit.yaml", "model: palm-8b\nsystem: {preset: tpu-v4-pod, chips: 256}\nstack: {file: " + out +
                           "}\nlayout: {tp: 4, dp: 64, microbatch: 4, sp: true, sharding: fsdp, recompute: "
                           "selective}\ntraining: {global_batch: 256}\n");
  const CliRun p = run("predict " + scenario + " --json");
  ASSERT_EQ(p.status, 0) << p.err;
  const auto j = nlohmann::json::parse(p.out);
  EXPECT_EQ(j["stack"], "maxtext");
  ASSERT_TRUE(j["step_time_band_s"].is_array());
  EXPECT_LT(j["step_time_band_s"][0].get<double>(), j["step_time_band_s"][1].get<double>());
  // Never replaced without --force; bad parameter names exit 2 naming the option.
  const CliRun again = run("fit scenarios/published/maxtext_tpu_v5e.csv --stack maxtext --params none -o " + out);
  EXPECT_EQ(again.status, 2);
  const CliRun bad = run("fit scenarios/published/maxtext_tpu_v5e.csv --stack maxtext --params warp");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--params"), std::string::npos) << bad.err;
  const CliRun nobody = run("fit scenarios/published/maxtext_tpu_v5e.csv --stack megatron-core");
  EXPECT_EQ(nobody.status, 2);
  std::filesystem::remove(out);
}

}  // namespace

namespace {

TEST(Cli, AFolderOrADeviceIsNamedForWhatItIs) {
  const CliRun folder = run("predict scenarios");
  EXPECT_EQ(folder.status, 2);
  EXPECT_NE(folder.err.find("'scenarios' is a folder; give a file"), std::string::npos) << folder.err;
  const CliRun device = run("predict /dev/null");
  EXPECT_EQ(device.status, 2);
  EXPECT_NE(device.err.find("is not a regular file"), std::string::npos) << device.err;
  const CliRun missing = run("validate-local no/such/config.yaml --calibration x.json");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("no such file"), std::string::npos) << missing.err;
  const CliRun calibration = run("validate-local scenarios/train-tiny.yaml --calibration scenarios");
  EXPECT_EQ(calibration.status, 2);
  EXPECT_NE(calibration.err.find("is a folder"), std::string::npos) << calibration.err;
  const std::string empty = write_temp("empty_" + std::to_string(getpid()) + ".yaml", "");
  const CliRun blank = run("predict " + empty);
  EXPECT_EQ(blank.status, 2);
  EXPECT_EQ(blank.err, "palmsim: error: scenario: '" + empty + "' is empty\n");
  const std::string loop = testing::TempDir() + "/loop_" + std::to_string(getpid()) + ".csv";
  std::filesystem::remove(loop);
  std::filesystem::create_symlink(loop, loop);  // points at itself
  const CliRun looped = run("validate " + loop);
  EXPECT_EQ(looped.status, 2);
  EXPECT_EQ(looped.err, "palmsim: error: RUNS: '" + loop + "' is a symbolic link loop\n");
  std::filesystem::remove(loop);
}

TEST(Cli, AFileItMayNotReadIsSaidSo) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file; run the suite as another user to check this";
  const std::string path = write_temp("unreadable_" + std::to_string(getpid()) + ".yaml", "model: palm-8b\n");
  std::filesystem::permissions(path, std::filesystem::perms::none);
  const CliRun r = run("predict " + path);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "palmsim: error: scenario: cannot read '" + path + "': permission denied\n");
  std::filesystem::remove(path);
}

}  // namespace

namespace {

// search --simulate-top: a layout the simulator refuses (FSDP-sharded experts) gets its reason,
// and the others are still simulated; the search succeeds.
TEST(Cli, SearchSimulatesItsTopLayoutsWithExpertsAndContextParallelism) {
  // FSDP-sharded experts simulate: each of the top layouts close to its prediction (their expert
  // gathers share the NICs with the all-to-alls when ep spans nodes: a few percent slower).
  const std::string moe = write_temp("moe_fsdp.yaml", R"(
model: qwen3-30b-a3b
system: {preset: h100-80g-dgx, chips: 16, stack: torchtitan-fsdp2}
layout: {tp: 1, pp: 1, dp: 16, ep: 8, microbatch: 1, sharding: fsdp, recompute: selective}
training: {global_batch: 64, optimizer: adam}
)");
  const CliRun r = run("search " + moe + " --top 4 --simulate-top 4 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  int simulated = 0;
  const auto top = nlohmann::json::parse(r.out)["top"];
  for (const auto& e : top) {
    ASSERT_TRUE(e.contains("simulated_step_time_s")) << e.dump();
    ++simulated;
    EXPECT_NEAR(e["simulated_step_time_s"].get<double>(), e["step_time_s"].get<double>(),
                0.10 * e["step_time_s"].get<double>());
  }
  EXPECT_EQ(simulated, 4);
  // Context-parallel layouts simulate too, each close to its prediction.
  const std::string cp = write_temp("cp.yaml", kLongContext);
  const CliRun c = run("search " + cp + " --top 2 --simulate-top 2 --json");
  ASSERT_EQ(c.status, 0) << c.err;
  int cp_simulated = 0;
  const auto cp_top = nlohmann::json::parse(c.out)["top"];
  for (const auto& e : cp_top) {
    ASSERT_TRUE(e.contains("simulated_step_time_s")) << e.dump();
    EXPECT_NEAR(e["simulated_step_time_s"].get<double>(), e["step_time_s"].get<double>(),
                0.10 * e["step_time_s"].get<double>());
    cp_simulated += e["layout"]["cp"].get<int>() > 1;
  }
  EXPECT_GE(cp_simulated, 1);
}

// A sparse model predicts (active parameters in MFU) and simulates, every chip (expert parallelism
// joins data-parallel replicas), close to the prediction.
TEST(Cli, MixtureOfExpertsPredictsAndSimulates) {
  const CliRun p = run("predict scenarios/gpt-oss-120b-h100-64.yaml --json");
  ASSERT_EQ(p.status, 0) << p.err;
  const auto j = nlohmann::json::parse(p.out);
  EXPECT_EQ(j["layout"]["ep"].get<int>(), 8);
  // 6 N_active + 12 L H Q T per token: N_active 5.710 B (hand count in tests/model/moe_test.cpp).
  EXPECT_NEAR(j["model_flops_per_token"].get<double>(), 6.0 * 5710443840.0 + 12.0 * 36 * 64 * 64 * 4096, 1.0);
  const CliRun s = run("simulate scenarios/gpt-oss-120b-h100-64.yaml --json");
  ASSERT_EQ(s.status, 0) << s.err;
  const auto sim = nlohmann::json::parse(s.out);
  EXPECT_EQ(sim["per_chip"]["simulated_chips"].get<int>(), 64);
  const double predicted = j["step_time_s"].get<double>(), simulated = sim["step_time_s"].get<double>();
  std::printf("gpt-oss-120b on 64 H100: predict %.3f s, simulate %.3f s\n", predicted, simulated);
  EXPECT_NEAR(simulated, predicted, 0.03 * predicted);
}

}  // namespace

namespace {

// validate-local's loop, arithmetic checked from its own JSON: the median of the interleaved steps
// and its order-statistic interval, the drift as the reference now over the reference in the
// calibration, the prediction's compute- and memory-bound seconds each moved by its own drift.
std::string tiny_trainer_config() {
  return write_temp("vl_tiny_" + std::to_string(getpid()) + ".yaml",
                    "model: {name: vl-tiny, n_layers: 1, d_model: 64, n_heads: 2, n_kv_heads: 1, head_dim: 32,\n"
                    "        d_ff: 128, ffn: swiglu, vocab: 256, seq_len: 32, parallel_block: true}\n"
                    "training: {global_batch: 4}\n");
}

std::string calibration_with_reference(const std::string& name, int threads) {
  return write_temp(name + "_" + std::to_string(getpid()) + ".json",
                    "{\"device\": \"test\", \"date\": \"2026-12-02\", \"peak_flops\": 50e9, \"memory_bytes_per_s\": 10e9,"
                    " \"reference\": {\"gemm_flops_per_s\": 100e9, \"memory_bytes_per_s\": 20e9, \"samples\": 3,"
                    " \"threads\": " + std::to_string(threads) + ", \"memory_probe_bytes\": 1048576}}");
}

// One dialect: a trainer config is a scenario. With a system beside its sections, `predict` reads
// the very file `bench-step` runs, and the trainer times exactly the ops the prediction prices.
TEST(Cli, OneFileIsTheTrainersConfigAndTheScenarioPredictReads) {
  const std::string calibration = calibration_with_reference("one_dialect_cal", 1);
  const std::string config = write_temp(
      "one_dialect_" + std::to_string(getpid()) + ".yaml",
      "model: {name: vl-tiny, n_layers: 1, d_model: 64, n_heads: 2, n_kv_heads: 1, head_dim: 32,\n"
      "        d_ff: 128, ffn: swiglu, vocab: 256, seq_len: 32, parallel_block: true}\n"
      "system: {preset: local-cpu, calibration: " + calibration + "}\n"
      "layout: {dp: 2, microbatch: 1}\n"
      "training: {global_batch: 4, optimizer: adafactor-unfactored}\n"
      "train: {threads: 1}\n");
  const CliRun predicted = run("predict " + config + " --json --per-op");
  ASSERT_EQ(predicted.status, 0) << predicted.err;
  const auto p = nlohmann::json::parse(predicted.out);
  EXPECT_EQ(p["layout"]["dp"].get<int>(), 2);
  EXPECT_EQ(p["global_batch"].get<int>(), 4);
  const CliRun bench = run("bench-step " + config + " --steps 1 --json");
  ASSERT_EQ(bench.status, 0) << bench.err;
  const auto b = nlohmann::json::parse(bench.out);
  EXPECT_EQ(b["batch"].get<int>(), 4);
  std::set<std::string> priced, timed;
  for (const auto& [op, seconds] : p["per_op_s"].items())
    if (op.rfind("(stack overhead)", 0) != 0) priced.insert(op);
  for (const auto& [op, seconds] : b["per_op"].items()) timed.insert(op);
  EXPECT_EQ(timed, priced);
  EXPECT_TRUE(priced.count("dp_allreduce.bwd"));  // two data-parallel ranks, from layout.dp
}

// A pipelined trainer config: validate-local predicts its bubble and measures it as the last stage's
// waits for the first, which it keeps out of the op table (the plan prices the bubble as a whole);
// the ops it compares are the plan's, the pipeline's sends and the tied embedding's reduction among
// them. Without a system, predict says how a trainer config is predicted.
TEST(Cli, APipelinedTrainerConfigListsItsBubble) {
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const std::string config = write_temp(
      "vl_pp2_" + std::to_string(getpid()) + ".yaml",
      "model: {name: vl-tiny, n_layers: 2, d_model: 64, n_heads: 2, n_kv_heads: 1, head_dim: 32,\n"
      "        d_ff: 128, ffn: swiglu, vocab: 256, seq_len: 32, parallel_block: true}\n"
      "layout: {pp: 2, microbatch: 1}\n"
      "training: {global_batch: 4}\n");
  const CliRun r = run("validate-local " + config + " --calibration " + calibration_with_reference("vl_pp_cal", threads) +
                       " --steps 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["predicted_bubble_s"].get<double>(), 0);
  EXPECT_LT(j["predicted_bubble_s"].get<double>(), j["predicted_step_s"].get<double>());
  EXPECT_GT(j["measured_bubble_s"].get<double>(), 0);
  EXPECT_LT(j["measured_bubble_s"].get<double>(), j["measured_step_s"].get<double>());
  std::set<std::string> names;
  for (const auto& op : j["per_op"]) names.insert(op["name"].get<std::string>());
  for (const char* op : {"pp_send.fwd", "pp_send.bwd", "embedding_allreduce.bwd", "logits.fwd"})
    EXPECT_TRUE(names.count(op)) << op;
  for (const std::string& n : names) EXPECT_FALSE(n.starts_with("pp_wait")) << n;
  EXPECT_FALSE(names.count("embedding.fwd")) << "the last stage does not look tokens up";

  // DualPipeV on the same pipeline: its pairs one pass after the other, as the trainer runs them
  // (palmsim-cpu: overlap_paired_passes false), its bubble from the order's critical path (here
  // none: stage 0, which holds the embedding and the loss, never waits), the simulator running
  // the same order within 1 %.
  const std::string dualpipe = write_temp(
      "vl_dpv_" + std::to_string(getpid()) + ".yaml",
      "model: {name: vl-tiny, n_layers: 4, d_model: 64, n_heads: 2, n_kv_heads: 1, head_dim: 32,\n"
      "        d_ff: 128, ffn: swiglu, vocab: 256, seq_len: 32, parallel_block: true}\n"
      "layout: {pp: 2, vpp: 2, microbatch: 1, schedule: dualpipe-v}\n"
      "training: {global_batch: 4}\n");
  const CliRun v = run("validate-local " + dualpipe + " --calibration " + calibration_with_reference("vl_dpv_cal", threads) +
                       " --steps 2 --json");
  ASSERT_EQ(v.status, 0) << v.err;
  const auto jv = nlohmann::json::parse(v.out);
  EXPECT_GE(jv["predicted_bubble_s"].get<double>(), 0);
  EXPECT_GT(jv["measured_bubble_s"].get<double>(), 0);
  EXPECT_NEAR(jv["simulated_step_s"].get<double>(), jv["predicted_step_s"].get<double>(),
              0.01 * jv["predicted_step_s"].get<double>());

  const CliRun predicted = run("predict " + config);
  EXPECT_EQ(predicted.status, 2);
  EXPECT_NE(predicted.err.find("A trainer config is predicted on this machine: add system: {preset: local-cpu"), std::string::npos)
      << predicted.err;
}

TEST(Cli, ValidateLocalCorrectsThePredictionByTheMeasuredDrift) {
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const std::string config = tiny_trainer_config();
  const CliRun r = run("validate-local " + config + " --calibration " + calibration_with_reference("vl_cal", threads) +
                       " --steps 3 --repeat 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["drift_measured"].get<bool>());
  const double predicted = j["predicted_step_s"], compute = j["predicted_compute_s"], memory = j["predicted_memory_s"];
  EXPECT_NEAR(compute + memory, predicted, 1e-12);
  EXPECT_GT(compute, 0);
  EXPECT_GT(memory, 0);
  ASSERT_EQ(j["loops"].size(), 2u);
  std::vector<double> abs_corrected;
  for (const auto& l : j["loops"]) {
    std::vector<double> steps = l["measured_steps_s"].get<std::vector<double>>();
    ASSERT_EQ(steps.size(), 3u);
    std::sort(steps.begin(), steps.end());
    const double measured = l["measured_step_s"];
    EXPECT_DOUBLE_EQ(measured, steps[1]);
    EXPECT_DOUBLE_EQ(l["interval_s"][0].get<double>(), steps[0]);  // 3 values: the range, 75 %
    EXPECT_DOUBLE_EQ(l["interval_s"][1].get<double>(), steps[2]);
    EXPECT_DOUBLE_EQ(l["interval_confidence"].get<double>(), 0.75);
    const double compute_drift = l["compute_drift"], memory_drift = l["memory_drift"];
    EXPECT_NEAR(compute_drift, l["reference"]["gemm_flops_per_s"].get<double>() / 100e9, 1e-12);
    EXPECT_NEAR(memory_drift, l["reference"]["memory_bytes_per_s"].get<double>() / 20e9, 1e-12);
    EXPECT_EQ(l["reference"]["samples"].get<int>(), 4);  // before the first step and after each
    // Each step against the prediction moved by the geometric mean of the samples around it.
    const auto& samples = l["reference_samples"];
    ASSERT_EQ(samples.size(), 4u);
    ASSERT_EQ(l["steps"].size(), 3u);
    std::vector<double> corrected_steps, step_errors;
    for (size_t i = 0; i < 3; ++i) {
      const auto& s = l["steps"][i];
      const double gemm = std::sqrt(samples[i]["gemm_flops_per_s"].get<double>() *
                                    samples[i + 1]["gemm_flops_per_s"].get<double>());
      const double triad = std::sqrt(samples[i]["memory_bytes_per_s"].get<double>() *
                                     samples[i + 1]["memory_bytes_per_s"].get<double>());
      EXPECT_NEAR(s["compute_drift"].get<double>(), gemm / 100e9, 1e-12);
      EXPECT_NEAR(s["memory_drift"].get<double>(), triad / 20e9, 1e-12);
      const double corrected = compute / (gemm / 100e9) + memory / (triad / 20e9);
      EXPECT_NEAR(s["corrected_s"].get<double>(), corrected, 1e-12);
      corrected_steps.push_back(corrected);
      const double step = s["measured_s"];
      step_errors.push_back(100 * (corrected - step) / step);
    }
    std::sort(corrected_steps.begin(), corrected_steps.end());
    std::sort(step_errors.begin(), step_errors.end());
    EXPECT_NEAR(l["corrected_step_s"].get<double>(), corrected_steps[1], 1e-12);
    EXPECT_NEAR(l["err_pct"].get<double>(), 100 * (predicted - measured) / measured, 1e-9);
    EXPECT_NEAR(l["corrected_err_pct"].get<double>(), step_errors[1], 1e-9);
    abs_corrected.push_back(std::abs(l["corrected_err_pct"].get<double>()));
  }
  EXPECT_NEAR(j["abs_corrected_err_pct"]["median"].get<double>(), 0.5 * (abs_corrected[0] + abs_corrected[1]), 1e-9);
  EXPECT_NEAR(j["abs_corrected_err_pct"]["max"].get<double>(), std::max(abs_corrected[0], abs_corrected[1]), 1e-9);

  // A reference taken on other threads is not comparable: said, and the prediction left as it is.
  const CliRun other = run("validate-local " + config + " --calibration " +
                           calibration_with_reference("vl_cal_other", threads + 1) + " --steps 1");
  ASSERT_EQ(other.status, 0) << other.err;
  EXPECT_NE(other.out.find("drift not measured: the calibration's reference ran on " + std::to_string(threads + 1) +
                           " threads, the trainer runs on " + std::to_string(threads)),
            std::string::npos)
      << other.out;
}

}  // namespace
