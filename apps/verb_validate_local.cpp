#include "apps/verbs.h"
#include "kernels/calibrate/machine_reference.h"
#include "kernels/cpu/blas.h"
#include "kernels/trainer.h"
#include "kernels/trainer_config_file.h"
#include "model/input_error.h"
#include "sim/predict.h"
#include "sim/simgrid/simulate.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <thread>
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

// The reference measured as calibration measured it: at one rank's share of the cores.
MachineReference reference_now(int ranks) {
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const int per_rank = std::max(1, threads / std::max(1, ranks));
  const int before = cpu::gemm_threads();
  cpu::set_gemm_threads(per_rank);
  MachineReference r;
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(per_rank));
    r = measure_reference();
  }
  cpu::set_gemm_threads(before);
  return r;
}

// Predicted seconds of compute-bound (GEMM, attention) and memory-bound (element-wise ops and the
// thread ranks' collectives, which stream through memory) work, from the plan's op kinds.
std::pair<double, double> compute_and_memory_s(const Scenario& s, const Report& predicted) {
  const StepPlan plan = build_step_plan(s.model, s.layout, s.global_batch, plan_options_for(s));
  double compute = 0, memory = 0;
  std::set<std::string> seen;
  for (const Op& op : plan.ops) {
    const std::string key = std::string(op.name) + "." + phase_suffix(op.phase);
    if (!seen.insert(key).second || !predicted.per_op_s.count(key)) continue;
    const double seconds = predicted.per_op_s.at(key);
    (op.kind == OpKind::gemm || op.kind == OpKind::attention ? compute : memory) += seconds;
  }
  return {compute, memory};
}

}  // namespace

void add_validate_local_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("validate-local",
                                 "Predict the trainer's step on this machine from a calibration, run it, compare");
  struct Args {
    std::string config, calibration, backend = "cpu";
    int steps = 5, repeat = 1;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("CONFIG", a->config, "trainer config (model: and train:)")->required();
  cmd->add_option("--calibration", a->calibration, "calibration JSON from `palmsim calibrate`")->required();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_option("--steps", a->steps, "measured steps after one warm-up (the fastest is compared)")->check(CLI::Range(1, 100000));
  cmd->add_option("--repeat", a->repeat, "back-to-back loops (reference, steps, reference), each compared")
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend, false);
      const TrainerConfigFile c = load_trainer_config(a->config);
      const Scenario s = local_scenario(a->config, c, a->calibration);
      const Report predicted = predict(s, {.per_op = true});
      const double simulated = simulate_step_seconds(s);
      const auto [compute_s, memory_s] = compute_and_memory_s(s, predicted);
      const MachineReference at_calibration{s.calibration->reference_gemm_flops_per_s,
                                            s.calibration->reference_memory_bytes_per_s};
      const bool has_reference = at_calibration.gemm_flops_per_s > 0 && at_calibration.memory_bytes_per_s > 0;
      const int ranks = int(s.layout.chips());

      nlohmann::json loops = nlohmann::json::array();
      BenchResult measured;
      std::vector<double> raw_errors, corrected_errors;
      for (int loop = 0; loop < a->repeat; ++loop) {
        // The machine's speed right before and right after the steps: their median is the speed
        // the steps ran at, against the speed the calibration was taken at.
        const MachineReference before = reference_now(ranks);
        measured = bench_step(c.model, c.train, a->steps);
        const MachineReference after = reference_now(ranks);
        const Drift drift =
            has_reference ? drift_since(at_calibration, median_reference({before, after})) : Drift{};
        const double corrected = drift_corrected_step_s(predicted.step_time_s, compute_s, memory_s, drift);
        // Calibration keeps the fastest of several runs of each kernel; the step compared with it
        // is likewise the fastest timed step.
        const double step = measured.best_step_time_s;
        raw_errors.push_back(err_pct(predicted.step_time_s, step));
        corrected_errors.push_back(err_pct(corrected, step));
        loops.push_back({{"measured_step_s", step}, {"measured_mean_step_s", measured.step_time_s},
                         {"compute_drift", drift.compute}, {"memory_drift", drift.memory},
                         {"corrected_step_s", corrected}, {"err_pct", raw_errors.back()},
                         {"corrected_err_pct", corrected_errors.back()}});
      }
      const nlohmann::json& last = loops.back();
      const double measured_step = last["measured_step_s"].get<double>();

      const std::map<std::string, double>& measured_ops = measured.best_per_op_s;
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
                          {"measured_step_s", measured_step},
                          {"measured_mean_step_s", last["measured_mean_step_s"]},
                          {"err_pct", last["err_pct"]}, {"simulated_err_pct", err_pct(simulated, measured_step)},
                          {"compute_drift", last["compute_drift"]}, {"memory_drift", last["memory_drift"]},
                          {"corrected_step_s", last["corrected_step_s"]},
                          {"corrected_err_pct", last["corrected_err_pct"]},
                          {"drift_measured", has_reference}, {"loops", loops},
                          {"median_abs_err_pct", median_of([&] { std::vector<double> v; for (double e : raw_errors) v.push_back(std::abs(e)); return v; }())},
                          {"median_abs_corrected_err_pct", median_of([&] { std::vector<double> v; for (double e : corrected_errors) v.push_back(std::abs(e)); return v; }())},
                          {"per_op", per_op}, {"model", c.model.name}, {"device", measured.device},
                          {"calibration", a->calibration}};
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
      if (!has_reference)
        std::cout << "  drift: not measured (the calibration file has no reference; run `palmsim calibrate` again)\n";
      for (size_t i = 0; i < loops.size(); ++i) {
        const auto& l = loops[i];
        std::cout << fmt::format("  loop {}: measured {:.4f} s, machine speed vs calibration: compute {:.3f}x, "
                                 "memory {:.3f}x; error {:+.1f} % raw, {:+.1f} % drift-corrected\n",
                                 i + 1, l["measured_step_s"].get<double>(), l["compute_drift"].get<double>(),
                                 l["memory_drift"].get<double>(), l["err_pct"].get<double>(),
                                 l["corrected_err_pct"].get<double>());
      }
      if (loops.size() > 1)
        std::cout << fmt::format("  over {} loops: median |error| {:.1f} % raw, {:.1f} % drift-corrected\n",
                                 loops.size(), j["median_abs_err_pct"].get<double>(),
                                 j["median_abs_corrected_err_pct"].get<double>());
      return 0;
    };
  });
}

}  // namespace palmsim
