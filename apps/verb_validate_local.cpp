#include "apps/verbs.h"
#include "hwmodels/machine_drift.h"
#include "hwmodels/stack.h"
#include "kernels/cpu/speed_reference.h"
#include "kernels/rank_trainer.h"
#include "kernels/trainer.h"
#include "kernels/trainer_config_file.h"
#include "model/input_error.h"
#include "sim/predict.h"
#include "sim/simgrid/simulate.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
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
  s.layout.ep = c.train.ep;
  s.layout.cp = c.train.cp;
  s.system.stack.cp_comm = c.train.cp_comm;  // the config's stack: {cp_comm: ...}
  s.layout.pp = c.train.pp;
  s.layout.schedule = c.train.schedule;
  s.layout.vpp = c.train.vpp;
  s.layout.microbatch = int(c.train.microbatch_size());
  s.layout.sharding = c.train.zero1 ? Sharding::zero1 : Sharding::none;
  s.n_chips = s.layout.chips();
  s.global_batch = c.train.batch;
  s.optimizer = Optimizer::adafactor_unfactored;  // the trainer's (kernels/adafactor.h)
  check_layout(s.layout, s.model, s.n_chips, s.global_batch);
  // What palmsim-cpu does not list (it lists what the trainer runs as priced) is refused, naming
  // the field, as a scenario's stack check does.
  check_stack_supports(s.system.stack, s.layout, "layout.sharding", "layout.recompute", "layout.schedule");
  return s;
}

double err_pct(double predicted, double measured) {
  return measured > 0 ? (predicted - measured) / measured * 100.0 : 0.0;
}

// Whether each predicted op ("name.phase") is compute-bound (GEMM, attention: it moves with the
// reference GEMM's drift) or memory-bound (element-wise ops, the optimizer and the thread ranks'
// collectives, which stream through memory: they move with the triad's).
std::map<std::string, bool> compute_bound_ops(const Scenario& s) {
  const StepPlan plan = build_step_plan(s.model, s.layout, s.global_batch, plan_options_for(s));
  std::map<std::string, bool> compute;
  for (const Op& op : plan.ops)
    compute[std::string(op.name) + "." + phase_suffix(op.phase)] =
        op.kind == OpKind::gemm || op.kind == OpKind::attention;
  return compute;
}

// One loop: the steps interleaved with samples of the speed reference, against the prediction.
struct Loop {
  std::vector<double> steps_s;
  double step_s = 0;          // median
  MedianInterval interval;
  std::vector<SpeedSample> samples;  // before the first step and after each
  MachineSpeed speed;         // the reference during the steps (medians)
  Drift drift;                // speed now over speed at calibration (1 when not measured)
  // Each step against the prediction moved by the drift of the samples right before and after it
  // (their geometric mean): a slow spell that hits a few steps moves their own predictions.
  std::vector<Drift> step_drifts;
  std::vector<double> corrected_steps_s;
  double corrected_step_s = 0, err_pct = 0, corrected_err_pct = 0;
  BenchResult bench;
};

struct Distribution {
  double median = 0, min = 0, max = 0;
};
Distribution abs_distribution(const std::vector<double>& v) {
  std::vector<double> a;
  for (double x : v) a.push_back(std::abs(x));
  return {median_of(a), *std::min_element(a.begin(), a.end()), *std::max_element(a.begin(), a.end())};
}

}  // namespace

void add_validate_local_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("validate-local",
                                 "Predict the trainer's step on this machine from a calibration, run it, compare");
  struct Args {
    std::string config, calibration, backend = "cpu";
    int steps = 7, repeat = 1;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("CONFIG", a->config, "trainer config (model:, layout:, training:, train:)")->required();
  cmd->add_option("--calibration", a->calibration, "calibration JSON from `palmsim calibrate`")->required();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_option("--steps", a->steps,
                  "measured steps after one warm-up, each followed by a sample of the speed reference; the "
                  "median is compared (6 or more give a 95 % interval)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--repeat", a->repeat, "back-to-back loops, each measured and compared; prints the distribution")
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend, false);
      const TrainerConfigFile c = load_trainer_config(a->config);
      const Scenario s = local_scenario(a->config, c, a->calibration);
      const Report predicted = predict(s, {.per_op = true});
      // The trainer runs the order the prediction played out (ZB-H2, ZB-V: it depends on the times).
      TrainConfig train = c.train;
      train.pipeline_passes = predicted.pipeline_passes;
      const double simulated = simulate_step_seconds(s);
      const std::map<std::string, bool> compute_bound = compute_bound_ops(s);
      double compute_s = 0, memory_s = 0;
      for (const auto& [name, seconds] : predicted.per_op_s)
        (compute_bound.count(name) && compute_bound.at(name) ? compute_s : memory_s) += seconds;
      // The per-op sum is the step on one rank with nothing overlapped (the CPU trainer overlaps
      // nothing); any remainder of the step is scaled with the memory-bound part.
      memory_s += std::max(0.0, predicted.step_time_s - compute_s - memory_s);

      // Drift is measured when the calibration has a reference sampled on the trainer's threads.
      const MachineSpeed& then = s.calibration->reference;
      std::string no_drift;
      if (!then.measured())
        no_drift = "the calibration file has no speed reference; run `palmsim calibrate` again";
      else if (then.threads != trainer_threads(c.train))
        no_drift = fmt::format("the calibration's reference ran on {} threads, the trainer runs on {}", then.threads,
                               trainer_threads(c.train));
      else if (then.ranks != concurrent_ranks(c.train.ranks(), then.threads))
        no_drift = fmt::format("the calibration's reference ran as {} thread rank(s), the trainer runs {} on {} "
                               "threads (calibrate with --config {})",
                               then.ranks, c.train.ranks(), then.threads, a->config);
      std::optional<CpuSpeedReference> reference;
      if (no_drift.empty()) reference.emplace(then.threads, then.ranks, int64_t(then.memory_probe_bytes));

      std::vector<Loop> loops;
      for (int r = 0; r < a->repeat; ++r) {
        Loop l;
        l.bench = bench_step(c.model, train, a->steps, [&] {
          if (reference) l.samples.push_back(reference->sample());
        });
        l.steps_s = l.bench.step_times_s;
        l.step_s = median_of(l.steps_s);
        l.interval = median_interval(l.steps_s);
        if (reference) {
          l.speed = machine_speed_of(l.samples, then.threads, then.ranks, then.memory_probe_bytes);
          l.drift = drift_since(then, l.speed);
        }
        std::vector<double> step_errors;
        for (size_t i = 0; i < l.steps_s.size(); ++i) {
          Drift d;
          if (reference) {
            const SpeedSample &before = l.samples[i], &after = l.samples[i + 1];
            d = drift_since(then, SpeedSample{std::sqrt(before.gemm_flops_per_s * after.gemm_flops_per_s),
                                              std::sqrt(before.memory_bytes_per_s * after.memory_bytes_per_s)});
          }
          l.step_drifts.push_back(d);
          l.corrected_steps_s.push_back(drift_corrected_seconds(compute_s, memory_s, d));
          step_errors.push_back(err_pct(l.corrected_steps_s.back(), l.steps_s[i]));
        }
        l.corrected_step_s = median_of(l.corrected_steps_s);
        l.err_pct = err_pct(predicted.step_time_s, l.step_s);
        l.corrected_err_pct = median_of(step_errors);
        loops.push_back(std::move(l));
      }
      const Loop& last = loops.back();

      // Each op against its mean over the steps: the prediction is each op's expected cost
      // (calibration's means, mean_of in model/robust_statistics.h), the step's median their sum.
      // A pipeline stage's waits for its neighbour are the bubble: the plan prices it as a whole.
      const std::string wait = std::string(kPipelineWaitOp) + ".";
      double measured_bubble_s = 0;
      std::set<std::string> names;
      for (const auto& [n, v] : predicted.per_op_s) names.insert(n);
      for (const auto& [n, v] : last.bench.per_op_s) {
        if (n.starts_with(wait))
          measured_bubble_s += v;
        else
          names.insert(n);
      }
      nlohmann::json per_op = nlohmann::json::array();
      for (const std::string& n : names) {
        const double p = predicted.per_op_s.count(n) ? predicted.per_op_s.at(n) : 0.0;
        const double m = last.bench.per_op_s.count(n) ? last.bench.per_op_s.at(n) : 0.0;
        const bool compute = compute_bound.count(n) && compute_bound.at(n);
        const double corrected = p / (compute ? last.drift.compute : last.drift.memory);
        per_op.push_back({{"name", n}, {"bound", compute ? "compute" : "memory"}, {"predicted_s", p},
                          {"corrected_s", corrected}, {"measured_s", m}, {"err_pct", err_pct(p, m)},
                          {"corrected_err_pct", err_pct(corrected, m)}});
      }
      nlohmann::json loops_json = nlohmann::json::array();
      std::vector<double> raw, corrected;
      for (const Loop& l : loops) {
        raw.push_back(l.err_pct);
        corrected.push_back(l.corrected_err_pct);
        loops_json.push_back({{"measured_step_s", l.step_s}, {"measured_steps_s", l.steps_s},
                              {"interval_s", {l.interval.low, l.interval.high}},
                              {"interval_confidence", l.interval.confidence},
                              {"compute_drift", l.drift.compute}, {"memory_drift", l.drift.memory},
                              {"reference", machine_speed_json(l.speed)},
                              {"steps", [&] {
                                 nlohmann::json steps = nlohmann::json::array();
                                 for (size_t i = 0; i < l.steps_s.size(); ++i)
                                   steps.push_back({{"measured_s", l.steps_s[i]},
                                                    {"compute_drift", l.step_drifts[i].compute},
                                                    {"memory_drift", l.step_drifts[i].memory},
                                                    {"corrected_s", l.corrected_steps_s[i]}});
                                 return steps;
                               }()},
                              {"reference_samples", [&] {
                                 nlohmann::json samples = nlohmann::json::array();
                                 for (const SpeedSample& x : l.samples)
                                   samples.push_back({{"gemm_flops_per_s", x.gemm_flops_per_s},
                                                      {"memory_bytes_per_s", x.memory_bytes_per_s}});
                                 return samples;
                               }()},
                              {"corrected_step_s", l.corrected_step_s},
                              {"err_pct", l.err_pct}, {"corrected_err_pct", l.corrected_err_pct}});
      }
      const Distribution raw_d = abs_distribution(raw), corrected_d = abs_distribution(corrected);
      nlohmann::json j = {
          {"predicted_step_s", predicted.step_time_s}, {"simulated_step_s", simulated},
          {"predicted_compute_s", compute_s}, {"predicted_memory_s", memory_s},
          {"measured_step_s", last.step_s}, {"measured_steps_s", last.steps_s},
          {"measured_interval_s", {last.interval.low, last.interval.high}},
          {"interval_confidence", last.interval.confidence},
          {"err_pct", last.err_pct}, {"simulated_err_pct", err_pct(simulated, last.step_s)},
          {"drift_measured", no_drift.empty()}, {"compute_drift", last.drift.compute},
          {"memory_drift", last.drift.memory}, {"corrected_step_s", last.corrected_step_s},
          {"corrected_err_pct", last.corrected_err_pct}, {"loops", loops_json},
          {"abs_err_pct", {{"median", raw_d.median}, {"min", raw_d.min}, {"max", raw_d.max}}},
          {"abs_corrected_err_pct", {{"median", corrected_d.median}, {"min", corrected_d.min}, {"max", corrected_d.max}}},
          {"per_op", per_op}, {"model", c.model.name}, {"device", last.bench.device},
          {"predicted_bubble_s", predicted.breakdown.bubble_s}, {"measured_bubble_s", measured_bubble_s},
          {"calibration", a->calibration}};
      if (then.measured()) j["reference_at_calibration"] = machine_speed_json(then);
      if (!no_drift.empty()) j["drift_not_measured_because"] = no_drift;
      if (a->json) {
        std::cout << j.dump(2) << "\n";
        return 0;
      }
      std::cout << fmt::format("validate-local: {} on {} (the step's median and each op's mean over {} steps)\n", c.model.name, last.bench.device,
                               a->steps);
      std::cout << fmt::format("  {:28s} {:>7} {:>11} {:>11} {:>11} {:>8} {:>9}\n", "op", "bound", "predicted s",
                               "corrected s", "measured s", "err %", "corr. %");
      for (const auto& op : per_op)
        std::cout << fmt::format("  {:28s} {:>7} {:>11.5f} {:>11.5f} {:>11.5f} {:>8.1f} {:>9.1f}\n",
                                 op["name"].get<std::string>(), op["bound"].get<std::string>(),
                                 op["predicted_s"].get<double>(), op["corrected_s"].get<double>(),
                                 op["measured_s"].get<double>(), op["err_pct"].get<double>(),
                                 op["corrected_err_pct"].get<double>());
      std::cout << fmt::format("  predicted {:.4f} s (analytic), {:.4f} s (simulated): {:.4f} s compute-bound, "
                               "{:.4f} s memory-bound\n",
                               predicted.step_time_s, simulated, compute_s, memory_s);
      if (c.train.pp > 1)
        std::cout << fmt::format("  pipeline bubble: predicted {:.4f} s (analytic, in the step above); measured "
                                 "{:.4f} s (the loss stage's waits for its neighbours, {}*, mean over the steps)\n",
                                 predicted.breakdown.bubble_s, measured_bubble_s, wait);
      if (no_drift.empty())
        std::cout << fmt::format("  reference at calibration: GEMM {:.1f} GFLOP/s, triad {:.1f} GB/s ({} samples, "
                                 "spread {:.0f} % / {:.0f} %)\n",
                                 then.gemm_flops_per_s / 1e9, then.memory_bytes_per_s / 1e9, then.samples,
                                 100 * then.gemm_spread, 100 * then.memory_spread);
      else
        std::cout << "  drift not measured: " << no_drift << "\n";
      for (size_t i = 0; i < loops.size(); ++i) {
        const Loop& l = loops[i];
        std::cout << fmt::format("  loop {}: measured {:.4f} s [{:.4f}, {:.4f}] s ({:.1f} % interval); ", i + 1,
                                 l.step_s, l.interval.low, l.interval.high, 100 * l.interval.confidence);
        if (no_drift.empty())
          std::cout << fmt::format("machine speed vs calibration: compute {:.3f}x, memory {:.3f}x; corrected "
                                   "{:.4f} s; error {:+.1f} % raw, {:+.1f} % drift-corrected\n",
                                   l.drift.compute, l.drift.memory, l.corrected_step_s, l.err_pct,
                                   l.corrected_err_pct);
        else
          std::cout << fmt::format("error {:+.1f} %\n", l.err_pct);
      }
      if (loops.size() > 1)
        std::cout << fmt::format("  over {} loops |error|: raw median {:.1f} % (min {:.1f}, max {:.1f}); "
                                 "drift-corrected median {:.1f} % (min {:.1f}, max {:.1f})\n",
                                 loops.size(), raw_d.median, raw_d.min, raw_d.max, corrected_d.median,
                                 corrected_d.min, corrected_d.max);
      std::cout << fmt::format("  step: predicted {:.4f} s (analytic), {:.4f} s (simulated); measured {:.4f} s; "
                               "error {:+.1f} % analytic, {:+.1f} % simulated{}\n",
                               predicted.step_time_s, simulated, last.step_s, last.err_pct,
                               j["simulated_err_pct"].get<double>(),
                               no_drift.empty() ? fmt::format(", {:+.1f} % drift-corrected", last.corrected_err_pct)
                                                : std::string());
      return 0;
    };
  });
}

}  // namespace palmsim
