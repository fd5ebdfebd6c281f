// `palmsim sweep` and `palmsim merge` end to end: the same bytes from 1, 2 and 4 MPI ranks and from
// shards merged, bad overrides exit 2 with the field named and no file, nothing replaced unasked.
#include "tests/cli/cli_run.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace {

std::string temp(const std::string& name) {
  const std::string path = testing::TempDir() + "/sweep_" + std::to_string(getpid()) + "_" + name;
  std::filesystem::remove(path);
  return path;
}

const std::string kPalmsim = std::string(PALMSIM_BINARY);
// PaLM 540B's real run, with layouts, blocks and chips varied: 6 x 4 x 3 x 2 x 2 = 288 rows.
const std::string kGrid =
    " scenarios/palm-540b-tpuv4-6144.yaml --set layout.tp=4,6,8,12,16,24 --set layout.dp=256,512,768,1024"
    " --set layout.microbatch=1,2,4 --set model.parallel_block=true,false --set system.chip.hbm_gib=32,64 -q";

// Open MPI refuses root without these; --oversubscribe lets 4 ranks share CI's 2 cores.
std::string mpirun(int ranks) {
  return std::string("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ") + PALMSIM_MPIEXEC +
         " --oversubscribe -np " + std::to_string(ranks) + " ";
}

TEST(SweepCli, OneTwoAndFourRanksWriteTheSameBytes) {
  const std::string one = temp("one.csv");
  const CliRun r1 = run_command(kPalmsim + " sweep" + kGrid + " -o " + one);
  ASSERT_EQ(r1.status, 0) << r1.err;
  const std::string expected = file_bytes(one);
  EXPECT_EQ(std::count(expected.begin(), expected.end(), '\n'), 289);
  // PaLM's own layout (tp 12, dp 512, microbatch 4 is not in the grid; 2 is) is legal and fits.
  EXPECT_NE(expected.find(",12,512,2,true,32,6144,"), std::string::npos);
  if (std::string(PALMSIM_MPIEXEC).empty()) GTEST_SKIP() << "no mpirun (Debian's openmpi-bin) in this build";
  for (int ranks : {1, 2, 4}) {
    const std::string out = temp(std::to_string(ranks) + "ranks.csv");
    const CliRun r = run_command(mpirun(ranks) + kPalmsim + " sweep" + kGrid + " -o " + out);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(file_bytes(out), expected) << ranks << " ranks";
  }
}

TEST(SweepCli, ShardsMergedAreTheBytesOfOneRun) {
  const std::string one = temp("whole.csv");
  ASSERT_EQ(run_command(kPalmsim + " sweep" + kGrid + " -o " + one).status, 0);
  std::string shards;
  for (int i = 0; i < 3; ++i) {
    const std::string part = temp("part" + std::to_string(i) + ".csv");
    const CliRun r = run_command(kPalmsim + " sweep" + kGrid + " --shard " + std::to_string(i) + "/3 -o " + part);
    ASSERT_EQ(r.status, 0) << r.err;
    shards = part + " " + shards;  // in reverse: merge orders them
  }
  const std::string merged = temp("merged.csv");
  const CliRun m = run_command(kPalmsim + " merge " + shards + "-o " + merged);
  ASSERT_EQ(m.status, 0) << m.err;
  EXPECT_EQ(file_bytes(merged), file_bytes(one));
  // Merging again onto the same file is refused without --force, and the file is left as it is.
  const CliRun again = run_command(kPalmsim + " merge " + shards + "-o " + merged);
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.err.find("-o: '" + merged + "' exists; pass --force"), std::string::npos) << again.err;
  EXPECT_EQ(file_bytes(merged), file_bytes(one));
  // A shard missing is named.
  const CliRun missing =
      run_command(kPalmsim + " merge " + testing::TempDir() + "/sweep_" + std::to_string(getpid()) + "_part0.csv");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("shard 1/3 is missing"), std::string::npos) << missing.err;
}

TEST(SweepCli, BadOverridesExitTwoNamingTheFieldAndWriteNothing) {
  const std::string out = temp("bad.csv");
  const struct {
    const char* set;
    const char* message;
  } cases[] = {
      {"layout.tpp=1,2", "palmsim: error: layout.tpp: unknown key; allowed: tp, pp, dp"},
      {"layout.tp=12,twelve", "palmsim: error: layout.tp: must be an integer, got 'twelve'"},
      {"model.parallel_block=yes,no,maybe", "palmsim: error: model.parallel_block: must be true or false"},
      {"system.preset=tpu-v4-pod,tpu-v9", "palmsim: error: system.preset: unknown system 'tpu-v9'"},
      {"layout.tp", "palmsim: error: --set: 'layout.tp' needs the form KEY=VALUE"},
  };
  for (const auto& c : cases) {
    const CliRun r = run_command(kPalmsim + " sweep scenarios/palm-540b-tpuv4-6144.yaml --set " + c.set + " -o " + out);
    EXPECT_EQ(r.status, 2) << c.set;
    EXPECT_EQ(r.err.rfind(c.message, 0), 0u) << c.set << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.set;
  }
  if (std::string(PALMSIM_MPIEXEC).empty()) GTEST_SKIP() << "no mpirun";
  // Under MPI the first rank alone says it; the job exits 2.
  const CliRun r = run_command(mpirun(2) + kPalmsim + " sweep scenarios/palm-540b-tpuv4-6144.yaml --set layout.tpp=1 -o " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err.find("palmsim: error: layout.tpp"), r.err.rfind("palmsim: error: layout.tpp")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
