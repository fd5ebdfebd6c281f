// The trainer's promises: resuming continues with the very same losses (dense, and sparse with split
// experts), a non-finite loss stops
// the run and keeps the last good checkpoint, a damaged checkpoint is refused, and a folder of the
// user's is never written into.
#include "kernels/checkpoint.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/speed_reference.h"
#include "kernels/trainer.h"
#include "model/input_error.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <sstream>

namespace palmsim {
namespace {

namespace fs = std::filesystem;

ModelSpec tiny_model() {
  ModelSpec m;
  m.name = "trainer-test";
  m.n_layers = 2, m.d_model = 32, m.n_heads = 2, m.n_kv_heads = 1, m.head_dim = 16;
  m.d_ff = 64, m.ffn = Ffn::swiglu, m.vocab = 256, m.seq_len = 32;
  return m;
}

// A small slice of the fortunes corpus keeps tokenizer training to a second.
std::string small_corpus() {
  const fs::path dir = fs::path(testing::TempDir()) / "corpus";
  if (!fs::exists(dir)) {
    fs::create_directories(dir);
    fs::copy_file("/usr/share/games/fortunes/computers", dir / "computers");
    fs::copy_file("/usr/share/games/fortunes/science", dir / "science");
  }
  return dir.string();
}

TrainConfig tiny_config() {
  TrainConfig c;
  c.steps = 6, c.batch = 4, c.checkpoint_every = 3, c.eval_every = 3, c.eval_batches = 1, c.log_every = 100;
  c.corpus = small_corpus();
  c.held_out_fraction = 0.1;
  return c;
}

std::vector<nlohmann::json> metrics(const fs::path& dir) {
  std::ifstream in(dir / "metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

fs::path fresh(const std::string& name) {
  const fs::path p = fs::path(testing::TempDir()) / name;
  fs::remove_all(p);
  return p;
}

// validate-local samples the speed reference between steps: the hook runs once before the first
// timed step and once after each, on rank 0 only, and never inside a timing (a 150 ms sleep there
// would dwarf this model's few-millisecond step).
TEST(Trainer, BenchStepRunsItsHookBetweenTimedSteps) {
  TrainConfig c = tiny_config();
  c.dp = 2;
  int calls = 0;
  const BenchResult r = bench_step(tiny_model(), c, 4, [&] {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  });
  EXPECT_EQ(calls, 5);
  ASSERT_EQ(r.step_times_s.size(), 4u);
  for (double s : r.step_times_s) EXPECT_LT(s, 0.15);
  EXPECT_DOUBLE_EQ(r.best_step_time_s, *std::min_element(r.step_times_s.begin(), r.step_times_s.end()));
  ASSERT_FALSE(r.median_per_op_s.empty());
  for (const auto& [name, mean] : r.per_op_s) EXPECT_TRUE(r.median_per_op_s.count(name)) << name;
}

TEST(Trainer, SpeedReferenceMeasuresAndLeavesTheGemmThreadsAlone) {
  cpu::set_gemm_threads(1);
  CpuSpeedReference reference(2, 1, 1 << 20);
  const SpeedSample s = reference.sample();
  EXPECT_EQ(cpu::gemm_threads(), 1);
  EXPECT_GT(s.gemm_flops_per_s, 1e8);     // any CPU of this century
  EXPECT_GT(s.memory_bytes_per_s, 1e8);
  EXPECT_LT(s.gemm_flops_per_s, 1e14);    // and no CPU at all
  CpuSpeedReference ranks(2, 2, 1 << 20);  // two thread ranks, each its own copy
  const SpeedSample r = ranks.sample();
  EXPECT_EQ(cpu::gemm_threads(), 1);
  EXPECT_GT(r.gemm_flops_per_s, 1e8);
  EXPECT_GT(r.memory_bytes_per_s, 1e8);
}

TEST(Trainer, ResumingContinuesWithIdenticalLosses) {
  std::ostringstream log;
  const fs::path whole = fresh("run_whole"), split = fresh("run_split");
  train(tiny_model(), tiny_config(), whole.string(), log);
  TrainConfig first_half = tiny_config();
  first_half.steps = 3;
  train(tiny_model(), first_half, split.string(), log);
  const TrainSummary resumed = train(tiny_model(), tiny_config(), split.string(), log);
  EXPECT_EQ(resumed.first_step, 4);
  const auto a = metrics(whole), b = metrics(split);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;  // bit for bit
  }
  EXPECT_EQ(a[5]["val_loss"].get<double>(), b[5]["val_loss"].get<double>());
  // The loss falls: six steps of Adafactor at 1e-2 on real text.
  EXPECT_LT(a[5]["loss"].get<double>(), a[0]["loss"].get<double>());
}

// A sparse model with its experts split over two ranks: each rank's checkpoint holds its own
// experts, so a resumed run continues bit for bit; its loss falls; a dense run's checkpoint is
// not taken for it.
TEST(Trainer, SparseModelWithSplitExpertsResumesAndLearns) {
  ModelSpec m = tiny_model();
  m.moe.n_experts = 4, m.moe.top_k = 2, m.moe.expert_d_ff = 32;
  TrainConfig c = tiny_config();
  c.dp = 2, c.ep = 2, c.steps = 12, c.checkpoint_every = 6;
  std::ostringstream log;
  const fs::path whole = fresh("sparse_whole"), split = fresh("sparse_split");
  train(m, c, whole.string(), log);
  TrainConfig first_half = c;
  first_half.steps = 6;
  train(m, first_half, split.string(), log);
  EXPECT_EQ(train(m, c, split.string(), log).first_step, 7);
  const auto a = metrics(whole), b = metrics(split);
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;
  }
  // The loss falls (6.29 -> 6.12 nats; six steps were within batch-to-batch noise).
  EXPECT_LT(a[11]["loss"].get<double>(), a[0]["loss"].get<double>());
  TrainConfig dense = tiny_config();
  dense.dp = 2;
  EXPECT_THROW(train(tiny_model(), dense, whole.string(), log), InputError);  // another run's checkpoint
}

// Context parallelism through the whole trainer (data, checkpoints, metrics): two ranks holding
// different rows of the same sequences train the same model as one rank, step after step.
TEST(Trainer, ContextParallelTrainsAsOneRank) {
  std::ostringstream log;
  const fs::path one = fresh("cp_one"), two = fresh("cp_two");
  train(tiny_model(), tiny_config(), one.string(), log);
  TrainConfig c = tiny_config();
  c.cp = 2;
  train(tiny_model(), c, two.string(), log);
  const auto a = metrics(one), b = metrics(two);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(b[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-4 * a[i]["loss"].get<double>()) << i;
  EXPECT_NEAR(b.back()["val_loss"].get<double>(), a.back()["val_loss"].get<double>(), 1e-4 * a.back()["val_loss"].get<double>());
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  std::ostringstream log;
  const fs::path dir = fresh("run_diverging");
  TrainConfig c = tiny_config();
  c.checkpoint_every = 1;
  c.steps = 10;
  c.optimizer.peak_lr = 1e30;  // the first update blows the weights up; a later loss is not finite
  const TrainSummary s = train(tiny_model(), c, dir.string(), log);
  EXPECT_TRUE(s.stopped_on_nan);
  EXPECT_LT(s.last_step, 10);
  EXPECT_NE(log.str().find("stopped: the loss is"), std::string::npos);
  Checkpoint kept;
  ASSERT_TRUE(read_checkpoint((dir / "checkpoint.bin").string(), kept));
  EXPECT_EQ(kept.step, s.last_step);  // the last step whose loss was finite
}

TEST(Trainer, DamagedCheckpointsAreRefused) {
  std::ostringstream log;
  const fs::path dir = fresh("run_damaged");
  TrainConfig c = tiny_config();
  c.steps = 1;
  train(tiny_model(), c, dir.string(), log);
  const fs::path ckpt = dir / "checkpoint.bin";
  fs::resize_file(ckpt, fs::file_size(ckpt) - 100);
  Checkpoint out;
  EXPECT_THROW(read_checkpoint(ckpt.string(), out), InputError);
  c.steps = 2;
  EXPECT_THROW(train(tiny_model(), c, dir.string(), log), InputError);
}

TEST(Trainer, NeverWritesIntoAFolderOfTheUsers) {
  std::ostringstream log;
  const fs::path dir = fresh("users_folder");
  fs::create_directories(dir);
  std::ofstream(dir / "thesis.tex") << "precious";
  EXPECT_THROW(train(tiny_model(), tiny_config(), dir.string(), log), InputError);
  EXPECT_FALSE(fs::exists(dir / "metrics.jsonl"));
}

}  // namespace
}  // namespace palmsim
