// The fold against the unfolded simulation (issue 16's equivalence suite): on layouts small enough
// to simulate every chip (<= 512), simulating one data-parallel replica for all gives the same step
// time within 0.5 % and the same time breakdown on every chip; where symmetry breaks (a straggler,
// a degraded NIC, oversubscribed uplinks) the simulation unfolds by itself and matches exactly.
#include "sim/simgrid/replica_fold.h"
#include "sim/simgrid/simulate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

namespace palmsim::simulation {
namespace {

Scenario scenario(const std::string& yaml) { return parse_scenario(YAML::Load(yaml), "test"); }

Simulation run(const Scenario& s, bool fold, SimulationOptions o = {}) {
  o.fold_replicas = fold;
  return simulate(s, o);
}

// Every chip's parts of the step agree within 0.5 % (or 1 us where a part is about zero).
void expect_same_chips(const SimulationResult& folded, const SimulationResult& full, const std::string& what) {
  ASSERT_EQ(folded.chips.size(), full.chips.size()) << what;
  auto near = [](double a, double b) { return std::abs(a - b) <= std::max(1e-6, 0.005 * std::abs(b)); };
  int off = 0;
  for (size_t c = 0; c < full.chips.size(); ++c) {
    const ChipTimes &a = folded.chips[c], &b = full.chips[c];
    const bool same = near(a.compute_s, b.compute_s) && near(a.recompute_s, b.recompute_s) &&
                      near(a.exposed_comm_s, b.exposed_comm_s) && near(a.bubble_s, b.bubble_s) &&
                      near(a.optimizer_s, b.optimizer_s) && near(a.finish_s, b.finish_s);
    if (!same && off++ < 3)
      ADD_FAILURE() << what << ": chip " << c << " folded comm " << a.exposed_comm_s << " bubble " << a.bubble_s
                    << " finish " << a.finish_s << " vs unfolded comm " << b.exposed_comm_s << " bubble "
                    << b.bubble_s << " finish " << b.finish_s;
  }
}

struct Case {
  const char* name;
  const char* yaml;
  int simulated;  // chips the fold simulates
};

// Data parallelism inside nodes and across them, tensor parallelism, 1F1B and interleaved
// pipelines, gradient buckets beside backward (pp = 1), ZeRO-1 after the flush, FSDP's gathers and
// reduce-scatters on the side stream sharing NVLink and NICs with TP.
const Case kCases[] = {
    {"dp ring over two nodes", R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 16}
layout: {tp: 1, pp: 1, dp: 16, microbatch: 1, recompute: selective}
training: {global_batch: 64, optimizer: adam}
)", 1},
    {"tp 8 x interleaved pp 4 x dp 4", R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 128}
layout: {tp: 8, pp: 4, dp: 4, vpp: 2, microbatch: 1, sp: true, recompute: selective, schedule: interleaved}
training: {global_batch: 64, optimizer: adam}
)", 32},
    {"buckets beside backward, tp 4 x dp 16", R"(
model: palm-8b
system: {preset: h100-80g-dgx, chips: 64, stack: megatron-core}
layout: {tp: 4, pp: 1, dp: 16, microbatch: 2, sp: true, sharding: zero1, recompute: selective}
training: {global_batch: 128, optimizer: adam}
)", 4},
    {"fsdp beside tp 2, dp 32 in and across nodes", R"(
model: palm-8b
system: {preset: h100-80g-dgx, chips: 64, stack: torchtitan-fsdp2}
layout: {tp: 2, pp: 1, dp: 32, microbatch: 1, sp: true, sharding: fsdp, recompute: full}
training: {global_batch: 64, optimizer: adam}
)", 2},
    {"512 chips: tp 8 x 1f1b pp 4 x dp 16, zero1", R"(
model: gpt3-175b
system: {preset: h100-80g-dgx, chips: 512}
layout: {tp: 8, pp: 4, dp: 16, microbatch: 1, sp: true, sharding: zero1, recompute: selective, schedule: 1f1b}
training: {global_batch: 128, optimizer: adam}
)", 32},
};

TEST(ReplicaFold, FoldedAndUnfoldedSimulationsAgree) {
  for (const Case& c : kCases) {
    const Scenario s = scenario(c.yaml);
    const Simulation folded = run(s, true), full = run(s, false);
    std::printf("%-45s folded %.5f s (%lld chips, %.3g flows), unfolded %.5f s (%lld chips, %.3g flows)\n", c.name,
                folded.report.step_time_s, (long long)folded.result.simulated_chips, folded.result.flows,
                full.report.step_time_s, (long long)full.result.simulated_chips, full.result.flows);
    EXPECT_EQ(folded.result.simulated_chips, c.simulated) << c.name;
    EXPECT_EQ(full.result.simulated_chips, s.layout.chips()) << c.name;
    EXPECT_NEAR(folded.report.step_time_s, full.report.step_time_s, 0.005 * full.report.step_time_s) << c.name;
    expect_same_chips(folded.result, full.result, c.name);
  }
}

// A straggler or a degraded NIC breaks the symmetry: every chip is simulated, so the result is the
// unfolded one, and the slowdown shows.
TEST(ReplicaFold, AsymmetryUnfolds) {
  const Scenario s = scenario(kCases[1].yaml);
  SimulationOptions slow;
  slow.slow_chip = 77, slow.slow_percent = 10;
  SimulationOptions degraded;
  degraded.degrade = {{"nic.40", 0.25}};
  const double base = run(s, true).report.step_time_s;
  for (const SimulationOptions& o : {slow, degraded}) {
    const Simulation a = run(s, true, o), b = run(s, false, o);
    EXPECT_EQ(a.result.simulated_chips, s.layout.chips());
    EXPECT_FALSE(a.result.unfolded_because.empty());
    EXPECT_DOUBLE_EQ(a.report.step_time_s, b.report.step_time_s);
    EXPECT_GT(a.report.step_time_s, base);
  }
}

// Each folding rule by itself: TPU tori (replicas route through each other's links), one replica,
// oversubscribed uplinks, folding turned off.
TEST(ReplicaFold, FoldsOnlyWhereReplicasProvablyAlike) {
  const Scenario gpu = scenario(kCases[1].yaml);
  const CommModel comm(gpu.system, gpu.layout);
  const ChipPlacement placement(gpu.system, gpu.layout, comm.torus());
  const ReplicaFold fold(placement, true, true);
  ASSERT_TRUE(fold.folded());
  EXPECT_EQ(fold.actors(), 32);
  EXPECT_EQ(fold.simulated().size(), 32u);
  // Megatron order (tp fastest, then dp, then pp): chip 8 is tp 0, dp 1, stage 0 -> chip 0.
  EXPECT_EQ(fold.stand_in(8), 0);
  EXPECT_EQ(fold.stand_in(32 + 9), 32 + 1);  // stage 1, dp 0 starts at chip 32
  EXPECT_TRUE(fold.leaves_replica(0, 8));
  EXPECT_FALSE(fold.leaves_replica(0, 1));  // a tensor-parallel peer

  EXPECT_FALSE(ReplicaFold(placement, false, true).folded());
  EXPECT_FALSE(ReplicaFold(placement, true, false).folded());
  System oversubscribed = gpu.system;
  oversubscribed.fat_tree.oversubscription = 2;
  EXPECT_FALSE(ReplicaFold(ChipPlacement(oversubscribed, gpu.layout, comm.torus()), true, true).folded());
  const Scenario tpu = scenario(R"(
model: palm-8b
system: {preset: tpu-v4-pod, chips: 64}
layout: {tp: 4, pp: 1, dp: 16, microbatch: 4, sharding: fsdp, recompute: selective}
training: {global_batch: 64, optimizer: adam}
)");
  const CommModel torus(tpu.system, tpu.layout);
  const ChipPlacement tpu_placement(tpu.system, tpu.layout, torus.torus());
  const ReplicaFold on_torus(tpu_placement, true, true);
  EXPECT_FALSE(on_torus.folded());
  EXPECT_EQ(on_torus.actors(), 64);

  // Context parallelism: Megatron order tp, cp, dp; the gradient ring over the dp x cp ranks leaves
  // a replica at another cp rank than it entered, so the simulation does not fold.
  Scenario long_context = scenario(kCases[1].yaml);
  long_context.layout = Layout{};
  long_context.layout.tp = 2, long_context.layout.cp = 4, long_context.layout.dp = 16, long_context.layout.microbatch = 1;
  const CommModel cp_comm(long_context.system, long_context.layout);
  const ChipPlacement cp_placement(long_context.system, long_context.layout, cp_comm.torus());
  const ChipRank r = cp_placement.rank(2 * 3 + 8 * 5 + 1);  // tp 1, cp 3, dp 5
  EXPECT_EQ(r.tp, 1);
  EXPECT_EQ(r.cp, 3);
  EXPECT_EQ(r.dp, 5);
  EXPECT_EQ(cp_placement.chip(r), 47);
  const ReplicaFold with_cp(cp_placement, true, true);
  EXPECT_FALSE(with_cp.folded());
  EXPECT_NE(with_cp.unfolded_because().find("context parallelism"), std::string::npos);
}

// A traced chip of another replica gets its stand-in's events under its own number.
TEST(ReplicaFold, TracesOfFoldedChipsAreTheirStandInsEvents) {
  const Scenario s = scenario(kCases[1].yaml);
  SimulationOptions o;
  o.trace_chips = {0, 8};  // replica 0 and replica 1's copy of the same chip
  const Simulation sim = run(s, true, o);
  size_t of0 = 0, of8 = 0;
  for (const TraceEvent& e : sim.result.events) (e.chip == 0 ? of0 : e.chip == 8 ? of8 : of0) += 1;
  EXPECT_GT(of0, 0u);
  EXPECT_EQ(of0, of8);
  for (const TraceEvent& e : sim.result.events) EXPECT_TRUE(e.chip == 0 || e.chip == 8);
}

}  // namespace
}  // namespace palmsim::simulation
