#include "apps/verbs.h"
#include "hwmodels/calibration.h"
#include "kernels/calibrate/calibrate_cpu.h"
#include "model/input_error.h"
#include "kernels/trainer_config_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>

namespace palmsim {

namespace {

// The configured model's step on one rank, so its shapes are the ones measured.
StepPlan plan_of_config(const std::string& path) {
  const TrainerConfigFile c = load_trainer_config(path);
  return cpu_step_plan(c.model, c.train.microbatch_size(), c.train.tp, c.train.dp, c.train.zero1, c.train.ep,
                       c.train.cp, c.train.pp, c.train.schedule, c.train.vpp, c.train.cp_comm);
}

}  // namespace

void add_calibrate_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("calibrate", "Measure this machine's kernels and write a calibration file");
  struct Args {
    std::string backend = "cpu", output, config;
    bool quick = false, force = false;
    int threads = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_flag("--quick", a->quick, "a short grid (seconds instead of minutes)");
  cmd->add_option("--config", a->config, "a trainer config whose model's GEMM shapes are measured too");
  cmd->add_option("--threads", a->threads, "threads to use (default: all cores)")->check(CLI::Range(1, 4096));
  cmd->add_option("-o,--output", a->output, "calibration JSON to write")->required();
  cmd->add_flag("--force", a->force, "replace the output file if it exists");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend, false);
      check_output_path(a->output, a->force, "--output");
      CalibrateOptions options;
      options.quick = a->quick;
      options.threads = a->threads;
      if (!a->config.empty()) options.plan = plan_of_config(a->config);
      Calibration c = calibrate_cpu(options);
      save_calibration(c, a->output);
      const auto best = std::max_element(c.gemm.begin(), c.gemm.end(),
                                         [](auto& x, auto& y) { return x.efficiency < y.efficiency; });
      std::cout << fmt::format("calibrated {} on {}\n", c.device, c.date);
      std::cout << fmt::format("  sgemm peak        {:.1f} GFLOP/s\n", c.peak_flops / 1e9);
      std::cout << fmt::format("  GEMM shapes       {} (best {:.0f} % of peak at {}x{}x{})\n", c.gemm.size(),
                               100 * best->efficiency, best->m, best->n, best->k);
      std::cout << fmt::format("  memory (triad)    {:.1f} GB/s\n", c.memory_bytes_per_s / 1e9);
      std::cout << fmt::format("  step ops          {} memory-bound rates, attention {:.0f} % (fwd) / {:.0f} % (bwd) of peak\n",
                               c.memory_op_bytes_per_s.size(), 100 * c.attention_efficiency_by_phase["fwd"],
                               100 * c.attention_efficiency_by_phase["bwd"]);
      std::cout << fmt::format("  collectives       {} timings over thread ranks\n", c.collectives.size());
      std::cout << fmt::format("  written to        {}\n", a->output);
      return 0;
    };
  });
}

}  // namespace palmsim
