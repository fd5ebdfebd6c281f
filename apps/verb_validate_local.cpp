#include "apps/verbs.h"
#include "kernels/trainer.h"
#include "kernels/trainer_config_file.h"
#include "model/input_error.h"
#include "sim/predict.h"
#include "sim/simgrid/simulate.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <iostream>
#include <set>

namespace palmsim {


namespace {

// The trainer's step as a scenario on this machine: local-cpu with the calibration's figures, the
// trainer's ranks as the layout.
Scenario local_scenario(const std::string& path, const TrainerConfigFile& c, const std::string& calibration) {
  Scenario s;
  s.path = path;
  s.model = c.model;
  s.system = system_preset("local-cpu");
  s.calibration = std::make_shared<const Calibration>(load_calibration(calibration));
  apply_calibration(s.system, *s.calibration);
  if (s.system.needs_calibration())
    throw InputError("--calibration", "'" + calibration + "' has no peak_flops; run `palmsim calibrate`");
  s.layout.tp = c.train.tp;
  s.layout.dp = c.train.dp;
  s.layout.microbatch = int(c.train.microbatch_size());
  s.layout.sharding = c.train.zero1 ? Sharding::zero1 : Sharding::none;
  s.n_chips = s.layout.chips();
  s.global_batch = c.train.batch;
  s.optimizer = Optimizer::adafactor;
  check_layout(s.layout, s.model, s.n_chips, s.global_batch);
  return s;
}

double err_pct(double predicted, double measured) {
  return measured > 0 ? (predicted - measured) / measured * 100.0 : 0.0;
}

}  // namespace

void add_validate_local_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("validate-local",
                                 "Predict the trainer's step on this machine from a calibration, run it, compare");
  struct Args {
    std::string config, calibration, backend = "cpu";
    int steps = 5;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("CONFIG", a->config, "trainer config (model: and train:)")->required();
  cmd->add_option("--calibration", a->calibration, "calibration JSON from `palmsim calibrate`")->required();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_option("--steps", a->steps, "measured steps after one warm-up (the fastest is compared)")->check(CLI::Range(1, 100000));
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend, false);
      const TrainerConfigFile c = load_trainer_config(a->config);
      const Scenario s = local_scenario(a->config, c, a->calibration);
      const Report predicted = predict(s, {.per_op = true});
      const double simulated = simulate_step_seconds(s);
      const BenchResult measured = bench_step(c.model, c.train, a->steps);

      // Calibration keeps the fastest of several runs of each kernel; the step compared with it is
      // likewise the fastest timed step (this machine's speed drifts by 10-15 % over minutes).
      const std::map<std::string, double>& measured_ops = measured.best_per_op_s;
      const double measured_step = measured.best_step_time_s;
      std::set<std::string> names;
      for (const auto& [n, v] : predicted.per_op_s) names.insert(n);
      for (const auto& [n, v] : measured_ops) names.insert(n);
      nlohmann::json per_op = nlohmann::json::array();
      for (const std::string& n : names) {
        const double p = predicted.per_op_s.count(n) ? predicted.per_op_s.at(n) : 0.0;
        const double m = measured_ops.count(n) ? measured_ops.at(n) : 0.0;
        per_op.push_back({{"name", n}, {"predicted_s", p}, {"measured_s", m}, {"err_pct", err_pct(p, m)}});
      }
      nlohmann::json j = {{"predicted_step_s", predicted.step_time_s}, {"simulated_step_s", simulated},
                          {"measured_step_s", measured_step}, {"measured_mean_step_s", measured.step_time_s},
                          {"err_pct", err_pct(predicted.step_time_s, measured_step)},
                          {"simulated_err_pct", err_pct(simulated, measured_step)}, {"per_op", per_op},
                          {"model", c.model.name}, {"device", measured.device}, {"calibration", a->calibration}};
      if (a->json) {
        std::cout << j.dump(2) << "\n";
        return 0;
      }
      std::cout << fmt::format("validate-local: {} on {}\n", c.model.name, measured.device);
      std::cout << fmt::format("  {:28s} {:>11} {:>11} {:>8}\n", "op", "predicted s", "measured s", "err %");
      for (const auto& op : per_op)
        std::cout << fmt::format("  {:28s} {:>11.5f} {:>11.5f} {:>8.1f}\n", op["name"].get<std::string>(),
                                 op["predicted_s"].get<double>(), op["measured_s"].get<double>(),
                                 op["err_pct"].get<double>());
      std::cout << fmt::format("  step: predicted {:.4f} s (analytic), {:.4f} s (simulated); measured {:.4f} s; "
                               "error {:+.1f} % analytic, {:+.1f} % simulated\n",
                               predicted.step_time_s, simulated, measured_step, j["err_pct"].get<double>(),
                               j["simulated_err_pct"].get<double>());
      return 0;
    };
  });
}

}  // namespace palmsim
