// Wall time of simulating PaLM-540B's whole step on 6144 chips (all chips as actors). Run from the
// repository root: build/bench/simulate_benchmark; peak memory with /usr/bin/time -v.
#include "sim/scenario.h"
#include "sim/simgrid/simulate.h"

#include <benchmark/benchmark.h>

namespace {

void BM_SimulatePalm540B(benchmark::State& state) {
  const palmsim::Scenario s = palmsim::load_scenario("scenarios/palm-540b-tpuv4-6144.yaml");
  for (auto _ : state) benchmark::DoNotOptimize(palmsim::simulate_step_seconds(s));
}
BENCHMARK(BM_SimulatePalm540B)->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
