// Wall time and peak memory of simulating one whole training step at the scales users plan for
// (issue 16's fixed set). Run from the repository root: build/bench/simulate_benchmark. Each case
// reports the chips, the chips simulated as actors (identical data-parallel replicas folded,
// sim/simgrid/replica_fold.h), the flows sent and the simulation process's peak resident memory.
// Wall time is real time: the simulation runs in a child process.
#include "sim/scenario.h"
#include "sim/simgrid/simulate.h"

#include <benchmark/benchmark.h>

#include <string>

namespace {

using palmsim::Scenario;

// GPT-3 175B as Narayanan et al. 2021 trained it (tp 8, pp 8, interleaved over 6 chunks), on 3072
// A100s (dp 48, 32 microbatches per replica) and on 12,288 (dp 192, 192 microbatches).
const char* kGpt3On3072 = R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 3072}
layout: {tp: 8, pp: 8, dp: 48, vpp: 6, microbatch: 1, sp: true, sharding: none, recompute: selective}
training: {global_batch: 1536}
)";
const char* kGpt3On12288 = R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 12288}
layout: {tp: 8, pp: 8, dp: 192, vpp: 6, microbatch: 1, sp: true, sharding: none, recompute: selective}
training: {global_batch: 36864}
)";
// Llama 3 405B's layout on 16,384 H100s (Llama 3 paper, Table 4: tp 8, pp 16, dp 128, 8K tokens),
// interleaved over 4 chunks with full recompute so that it fits palmsim's memory model.
const char* kLlama405BOn16384 = R"(
model: llama3-405b
system: {preset: h100-80g-dgx, chips: 16384}
layout: {tp: 8, pp: 16, dp: 128, vpp: 4, microbatch: 1, sp: true, sharding: zero1, recompute: full}
training: {global_batch: 2048}
)";

void simulate_case(benchmark::State& state, const Scenario& s) {
  palmsim::simulation::Simulation sim;
  for (auto _ : state) sim = palmsim::simulation::simulate(s);
  const auto& r = sim.result;
  state.counters["chips"] = double(r.chips.size());
  state.counters["simulated_chips"] = double(r.simulated_chips);
  state.counters["flows"] = r.flows;
  state.counters["peak_MiB"] = r.peak_memory_bytes / (1024.0 * 1024.0);
  state.counters["step_s"] = sim.report.step_time_s;
}

void BM_PaLM540B_6144TPUv4(benchmark::State& state) {
  simulate_case(state, palmsim::load_scenario("scenarios/palm-540b-tpuv4-6144.yaml"));
}
void BM_GPT3_175B_3072A100(benchmark::State& state) {
  simulate_case(state, palmsim::parse_scenario(YAML::Load(kGpt3On3072), "gpt3-3072"));
}
void BM_GPT3_175B_12288A100(benchmark::State& state) {
  simulate_case(state, palmsim::parse_scenario(YAML::Load(kGpt3On12288), "gpt3-12288"));
}
void BM_Llama3_405B_16384H100(benchmark::State& state) {
  simulate_case(state, palmsim::parse_scenario(YAML::Load(kLlama405BOn16384), "llama3-405b-16384"));
}

BENCHMARK(BM_PaLM540B_6144TPUv4)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_GPT3_175B_3072A100)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_GPT3_175B_12288A100)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_Llama3_405B_16384H100)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
