#include "apps/verbs.h"
#include "kernels/trainer.h"
#include "kernels/trainer_config_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace palmsim {

void check_backend(const std::string& backend);

void add_bench_step_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("bench-step", "Time training steps and print the measured per-op breakdown");
  struct Args {
    std::string config, backend = "cpu";
    int steps = 3;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("CONFIG", a->config, "trainer config (model: and train:)")->required();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_option("--steps", a->steps, "timed steps after one warm-up")->check(CLI::Range(1, 100000));
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend);
      const TrainerConfigFile c = load_trainer_config(a->config);
      const BenchResult r = bench_step(c.model, c.train, a->steps);
      if (a->json) {
        nlohmann::json j = {{"step_time_s", r.step_time_s}, {"tokens_per_s", r.tokens_per_s}, {"mfu", r.mfu},
                            {"best_step_time_s", r.best_step_time_s},
                            {"per_op", r.per_op_s}, {"gemm_flops_per_s", r.gemm_flops_per_s},
                            {"openblas_sgemm_flops_per_s", r.peak_flops}, {"model", c.model.name},
                            {"device", r.device}, {"backend", a->backend}};
        std::cout << j.dump(2) << "\n";
        return 0;
      }
      std::cout << fmt::format("bench-step: {} on {}\n", c.model.name, r.device);
      std::cout << fmt::format("  step time        {:.4f} s (mean of {}; fastest {:.4f} s)\n", r.step_time_s, a->steps,
                               r.best_step_time_s);
      std::cout << fmt::format("  throughput       {:.0f} tokens/s\n", r.tokens_per_s);
      std::cout << fmt::format("  MFU              {:.1f} % (peak = OpenBLAS sgemm {:.1f} GFLOP/s)\n", 100 * r.mfu,
                               r.peak_flops / 1e9);
      std::cout << fmt::format("  GEMMs in step    {:.1f} GFLOP/s ({:.0f} % of OpenBLAS's own rate)\n",
                               r.gemm_flops_per_s / 1e9, 100 * r.gemm_flops_per_s / r.peak_flops);
      std::cout << "  per op (seconds per step)\n";
      for (const auto& [name, s] : r.per_op_s)
        std::cout << fmt::format("    {:28s} {:9.5f} s  {:5.1f} %\n", name, s, 100 * s / r.step_time_s);
      return 0;
    };
  });
}

}  // namespace palmsim
