// Layouts evaluated per second: the analytic estimator inside search (target >= 1,000,000/s on the
// 2-core CI machine) and one estimate on its own.
#include "sim/analytic_estimator.h"
#include "sim/layout_search.h"
#include "sim/predict.h"
#include "sim/scenario.h"

#include <benchmark/benchmark.h>

namespace palmsim {
namespace {

void BM_SearchPalm540bOn6144Chips(benchmark::State& state) {
  const Scenario s = load_scenario("scenarios/palm-540b-tpuv4-6144.yaml");
  int64_t evaluated = 0;
  for (auto _ : state) {
    const SearchResult r = search_layouts(s, 10);
    evaluated += r.evaluated;
    benchmark::DoNotOptimize(r.top.data());
  }
  state.counters["layouts_per_s"] = benchmark::Counter(double(evaluated), benchmark::Counter::kIsRate);
  state.counters["layouts_per_search"] = double(evaluated) / double(state.iterations());
}
BENCHMARK(BM_SearchPalm540bOn6144Chips)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_EstimateOneLayout(benchmark::State& state) {
  const Scenario s = load_scenario("scenarios/palm-540b-tpuv4-6144.yaml");
  const CommModel comm(s.system, s.layout);
  const ComputeModel compute(stack_adjusted(s.system).chip);
  const PlanOptions options = plan_options_for(s);
  for (auto _ : state) {
    const StepPlan plan = build_step_plan(s.model, s.layout, s.global_batch, options);
    benchmark::DoNotOptimize(estimate(plan, s.system, compute, comm).step_time_s);
  }
  state.counters["layouts_per_s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EstimateOneLayout);

}  // namespace
}  // namespace palmsim

BENCHMARK_MAIN();
