#include "apps/verbs.h"
#include "model/robust_statistics.h"
#include "kernels/bench_result.h"
#include "kernels/trainer_config_file.h"
#include "model/input_error.h"
#ifdef PALMSIM_WITH_CUDA
#include "kernels/cuda/cuda_bench.h"
#endif
#ifndef PALMSIM_CUDA_STANDALONE
#include "kernels/trainer.h"
#endif

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>

namespace palmsim {

namespace {

BenchResult run_bench(const std::string& backend, const TrainerConfigFile& c, int steps) {
#ifdef PALMSIM_WITH_CUDA
  if (backend == "cuda") return cuda::bench_step_cuda(c.model, c.train, steps);
#endif
#ifndef PALMSIM_CUDA_STANDALONE
  if (backend == "cpu") return bench_step(c.model, c.train, steps);
#endif
  throw InputError("--backend", backend + " is not in this build");
}

// The UTC date, for results files (kernels/results/DATE-DEVICE-MODEL.json).
std::string utc_date() {
  const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  const std::chrono::year_month_day ymd{today};
  return fmt::format("{:04d}-{:02d}-{:02d}", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()));
}

}  // namespace

void add_bench_step_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("bench-step", "Time training steps and print the measured per-op breakdown");
  struct Args {
    std::string config, backend = "cpu";
    int steps = 3;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("CONFIG", a->config, "trainer config (model:, layout:, training:, train:)")->required();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_option("--steps", a->steps, "timed steps after one warm-up")->check(CLI::Range(1, 100000));
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend, true);
      const TrainerConfigFile c = load_trainer_config(a->config);
      const BenchResult r = run_bench(a->backend, c, a->steps);
      // Both backends' steps, summarized the same way (model/robust_statistics.h).
      const double median = median_of(r.step_times_s);
      const MedianInterval interval = median_interval(r.step_times_s);
      if (a->json) {
        nlohmann::json j = {{"date", utc_date()}, {"step_time_s", r.step_time_s}, {"tokens_per_s", r.tokens_per_s},
                            {"mfu", r.mfu}, {"best_step_time_s", r.best_step_time_s}, {"median_step_time_s", median},
                            {"median_interval_s", {interval.low, interval.high}},
                            {"interval_confidence", interval.confidence}, {"step_times_s", r.step_times_s},
                            {"per_op", r.per_op_s}, {"median_per_op", r.median_per_op_s},
                            {"gemm_flops_per_s", r.gemm_flops_per_s}, {"peak_flops", r.peak_flops},
                            {"peak_source", r.peak_source}, {"model", c.model.name}, {"device", r.device},
                            {"backend", a->backend}, {"batch", c.train.batch}, {"seq_len", c.model.seq_len},
                            {"steps", a->steps}};
        std::cout << j.dump(2) << "\n";
        return 0;
      }
      std::cout << fmt::format("bench-step: {} on {} ({} backend)\n", c.model.name, r.device, a->backend);
      std::cout << fmt::format("  step time        {:.4f} s (mean of {}; fastest {:.4f} s; median {:.4f} s, "
                               "[{:.4f}, {:.4f}] s at {:.1f} %)\n",
                               r.step_time_s, a->steps, r.best_step_time_s, median, interval.low, interval.high,
                               100 * interval.confidence);
      std::cout << fmt::format("  throughput       {:.0f} tokens/s\n", r.tokens_per_s);
      std::cout << fmt::format("  MFU              {:.1f} % (peak = {} {:.1f} GFLOP/s)\n", 100 * r.mfu, r.peak_source,
                               r.peak_flops / 1e9);
      std::cout << fmt::format("  GEMMs in step    {:.1f} GFLOP/s ({:.0f} % of the peak)\n", r.gemm_flops_per_s / 1e9,
                               100 * r.gemm_flops_per_s / r.peak_flops);
      std::cout << "  per op (seconds per step)\n";
      for (const auto& [name, s] : r.per_op_s)
        std::cout << fmt::format("    {:28s} {:9.5f} s  {:5.1f} %\n", name, s, 100 * s / r.step_time_s);
      return 0;
    };
  });
}

}  // namespace palmsim
