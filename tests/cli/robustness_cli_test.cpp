// Issue 15's contract, end to end: the same bytes on every run and oneTBB thread count; validate
// streams its rows (a malformed row anywhere leaves no output, a long file is read in chunks); an
// output file is never left partial, or a temporary behind, when the run is interrupted.
#include "tests/cli/cli_run.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "/robust_" + std::to_string(getpid()) + "_" + name;
}

// stdout and the named output file of one command at one thread count.
std::string answer(const std::string& args, int threads, const std::string& file) {
  const CliRun r = run_command(std::string(PALMSIM_BINARY) + " --threads " + std::to_string(threads) + " " + args);
  EXPECT_EQ(r.status, 0) << args << "\n" << r.err;
  return r.out + (file.empty() ? "" : "\n--- " + file_bytes(file));
}

void expect_same_bytes(const std::string& args, const std::string& file = "") {
  const std::string reference = answer(args, 1, file);
  EXPECT_FALSE(reference.empty()) << args;
  EXPECT_EQ(answer(args, 1, file), reference) << args << ": two runs on 1 thread differ";
  for (int threads : {2, 4}) EXPECT_EQ(answer(args, threads, file), reference) << args << ": " << threads << " threads";
}

TEST(Determinism, PredictSearchAndSweepGiveTheSameBytes) {
  expect_same_bytes("predict scenarios/palm-540b-tpuv4-6144.yaml --json --per-op");
  expect_same_bytes("search scenarios/palm-540b-tpuv4-6144.yaml --top 20 --json");
  expect_same_bytes("sweep scenarios/palm-540b-tpuv4-6144.yaml --set layout.tp=6,12,24 --set model.parallel_block=true,false");
}

TEST(Determinism, SimulateGivesTheSameBytesAndTrace) {
  const std::string trace = temp_path("trace.json");
  expect_same_bytes("simulate scenarios/palm-8b-tpuv4.yaml --json --force --trace " + trace, trace);
}

TEST(Determinism, ValidateGivesTheSameBytesAndFile) {
  const std::string out = temp_path("validated.csv");
  expect_same_bytes("validate scenarios/published/published_runs.csv --force -o " + out, out);
}

// The training losses of the same rank layout on 1, 2 and 4 threads (the timings differ).
TEST(Determinism, TrainingLossesDoNotDependOnTheThreadCount) {
  const std::string tokenizer = temp_path("train1") + "/tokenizer.model";
  auto losses = [&](int threads) {
    const std::string dir = temp_path("train" + std::to_string(threads));
    if (threads > 1) {  // the tokenizer the first run trained: training it again takes most of a run
      fs::remove_all(dir);
      fs::create_directories(dir);
      fs::copy_file(tokenizer, dir + "/tokenizer.model");
    }
    const CliRun r = run_command(std::string(PALMSIM_BINARY) + " --threads " + std::to_string(threads) +
                                 " train scenarios/train-tiny.yaml --steps 3 --out " + dir);
    EXPECT_EQ(r.status, 0) << r.err;
    std::ifstream in(dir + "/metrics.jsonl");
    std::string line, kept;
    while (std::getline(in, line)) {
      const size_t at = line.find("\"loss\":");
      if (at != std::string::npos) kept += line.substr(at, line.find(',', at) - at) + "\n";
    }
    if (threads > 1) fs::remove_all(dir);
    return kept;
  };
  fs::remove_all(temp_path("train1"));
  const std::string one = losses(1);
  ASSERT_NE(one.find("loss"), std::string::npos);
  EXPECT_EQ(losses(2), one);
  EXPECT_EQ(losses(4), one);
  fs::remove_all(temp_path("train1"));
}

// A CSV of `rows` copies of published_runs.csv's first row, each with a note long enough that
// the file spans many of the reader's 64 KiB chunks (quoted commas and newlines included).
std::string long_csv(int rows, const std::string& last_row = "") {
  std::ifstream in("scenarios/published/published_runs.csv");
  std::string header, first;
  std::getline(in, header);
  std::getline(in, first);
  const std::string path = temp_path("long.csv");
  std::ofstream out(path);
  out << header << "\n";
  for (int i = 0; i < rows; ++i) out << first << "\n";
  out << last_row;
  return path;
}

TEST(Streaming, ValidateReadsALongFileInChunksAndScoresEveryRow) {
  const std::string csv = long_csv(3000);
  ASSERT_GT(fs::file_size(csv), 3u * 65536u);
  const CliRun r = run_command(std::string(PALMSIM_BINARY) + " validate " + csv);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("rows 3000, scored 3000"), std::string::npos) << r.out.substr(r.out.size() - 300);
}

TEST(Streaming, AMalformedLastRowLeavesNoOutputAndPrintsNoRow) {
  const std::string csv = long_csv(500, "too,few,fields\n");
  const std::string out = temp_path("never.csv");
  fs::remove(out);
  const CliRun r = run_command(std::string(PALMSIM_BINARY) + " validate " + csv + " -o " + out);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("row 501 has 3 fields"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

// SIGINT or SIGTERM half way through `validate -o`: neither the output nor its temporary remains.
TEST(Interrupted, NoPartialOutputOrTemporaryIsLeft) {
  const std::string csv = long_csv(40000);
  for (int sig : {SIGTERM, SIGINT}) {
    const std::string out = temp_path("interrupted.csv");
    fs::remove(out);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      const std::string binary = PALMSIM_BINARY;
      execl(binary.c_str(), binary.c_str(), "validate", csv.c_str(), "-o", out.c_str(), "--rows", (char*)nullptr);
      _exit(127);
    }
    // Wait until the temporary exists (rows are streaming into it), then interrupt.
    for (int i = 0; i < 600 && !fs::exists(out + ".tmp"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(fs::exists(out + ".tmp")) << "the run never started writing";
    kill(child, sig);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status)) << "signal " << sig;
    EXPECT_FALSE(fs::exists(out)) << "signal " << sig;
    EXPECT_FALSE(fs::exists(out + ".tmp")) << "signal " << sig;
  }
}

}  // namespace
