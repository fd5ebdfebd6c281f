#include "sim/simgrid/simulate.h"

#include "model/accounting.h"
#include "model/input_error.h"
#include "sim/predict.h"
#include "sim/simgrid/child_process.h"
#include "sim/simgrid/trace_writer.h"

#include <fmt/format.h>

#include <sys/resource.h>

#include <algorithm>

namespace palmsim::simulation {

namespace {

// The result crosses from the child process as JSON.
nlohmann::json to_json(const SimulationResult& r) {
  nlohmann::json chips = nlohmann::json::array(), events = nlohmann::json::array();
  for (const ChipTimes& t : r.chips)
    chips.push_back({{"compute_s", t.compute_s},
                     {"recompute_s", t.recompute_s},
                     {"exposed_comm_s", t.exposed_comm_s},
                     {"bubble_s", t.bubble_s},
                     {"optimizer_s", t.optimizer_s},
                     {"finish_s", t.finish_s},
                     {"all_to_all_s", t.all_to_all_s},
                     {"core_wait_s", t.core_wait_s}});
  for (const TraceEvent& e : r.events)
    events.push_back({e.chip, int(e.track), e.name, e.start_s, e.dur_s, e.microbatch, e.chunk});
  return {{"step_time_s", r.step_time_s}, {"chips", chips}, {"events", events}, {"flows", r.flows},
          {"simulated_chips", r.simulated_chips}, {"unfolded_because", r.unfolded_because},
          {"peak_memory_bytes", r.peak_memory_bytes}};
}

SimulationResult from_json(const nlohmann::json& j) {
  SimulationResult r;
  r.step_time_s = j["step_time_s"];
  r.flows = j["flows"];
  r.simulated_chips = j["simulated_chips"];
  r.unfolded_because = j["unfolded_because"];
  r.peak_memory_bytes = j["peak_memory_bytes"];
  for (const auto& c : j["chips"])
    r.chips.push_back({c["compute_s"], c["recompute_s"], c["exposed_comm_s"], c["bubble_s"], c["optimizer_s"],
                       c["finish_s"], c["all_to_all_s"], c["core_wait_s"]});
  for (const auto& e : j["events"])
    r.events.push_back({e[0], Track(e[1].get<int>()), e[2], e[3], e[4], e[5], e[6]});
  return r;
}

// Thread ranks of one machine (local-cpu) are one node whose ranks reach each other through
// memory: a node of that many "GPUs" whose links run at the calibrated streaming rate, half of it
// per direction since every copy reads and writes.
System single_node_view(const System& s, int ranks) {
  System v = s;
  v.fabric = Fabric::gpu_fat_tree;
  FatTreeFabric& f = v.fat_tree;
  f.gpus_per_node = std::max(1, ranks);
  f.nvlink_bytes_per_s = f.nic_bytes_per_s = s.chip.hbm_bytes_per_s * s.chip.memory_efficiency / 2.0;
  f.nvlink_efficiency = f.nic_efficiency = 1.0;
  f.nvlink_latency_s = f.net_latency_s = 1e-6;
  f.oversubscription = 1.0;
  return v;
}

ChipPlacement placement_for(const Scenario& s, const Layout& l) {
  if (l.ep > 1 && s.system.fabric == Fabric::tpu_torus && l.pods > 1)
    throw InputError("layout.ep", "simulate models expert parallelism within one TPU pod (predict prices it over several)");
  if (s.system.fabric == Fabric::single_machine)
    return ChipPlacement(single_node_view(s.system, int(l.chips())), l, TorusMapping{});
  const CommModel comm(s.system, l, s.calibration.get());  // throws when the layout has no slice
  return ChipPlacement(stack_adjusted(s.system), l, comm.torus());
}

void check_options(const SimulationOptions& o, int chips) {
  if (o.slow_chip >= chips)
    throw InputError("--slow-chip", "chip " + std::to_string(o.slow_chip) + " does not exist (0.." +
                                        std::to_string(chips - 1) + ")");
  if (o.slow_chip >= 0 && o.slow_percent < 0)
    throw InputError("--slow-chip", "the slowdown must be a percentage >= 0");
  for (const LinkDegrade& d : o.degrade)
    if (!(d.factor > 0 && d.factor <= 1))
      throw InputError("--degrade-link", "bandwidth factor of '" + d.link + "' must be in (0, 1]");
}

SimulationSize size_of(const StepPlan& plan, const StepWork& work, const ChipPlacement& placement,
                       const ReplicaFold& fold) {
  return {fold.actors(), simulated_flows(plan, work, placement, fold)};
}

void check_size(const SimulationSize& size, const SimulationOptions& o) {
  if (size.chips > o.max_chips)
    throw InputError("--max-chips", fmt::format("simulating this layout means {} chips, one actor each; the bound "
                                                "is {} (raise it with --max-chips)", size.chips, o.max_chips));
  if (size.flows > o.max_flows)
    throw InputError("--max-flows", fmt::format("simulating this layout means {:.3g} flows in one step over {} "
                                                "chips; the bound is {:.3g} (raise it with --max-flows)",
                                                size.flows, size.chips, o.max_flows));
}

}  // namespace

SimulationSize simulation_size(const Scenario& s, const SimulationOptions& options) {
  const ChipPlacement placement = placement_for(s, s.layout);
  const StepPlan plan = build_step_plan(s.model, s.layout, s.global_batch, plan_options_for(s));
  const ComputeModel compute(stack_adjusted(s.system).chip, s.calibration.get());
  const CommModel comm(s.system, s.layout, s.calibration.get());
  return size_of(plan, build_step_work(plan, compute, comm), placement, fold_for(placement, options));
}

Simulation simulate(const Scenario& s, const SimulationOptions& options) {
  const Layout& l = s.layout;
  const ChipPlacement placement = placement_for(s, l);
  const ReplicaFold fold = fold_for(placement, options);
  if (fold.actors() > options.max_chips) check_size({fold.actors(), 0}, options);  // before any work
  check_options(options, placement.chips());
  const StepPlan plan = build_step_plan(s.model, l, s.global_batch, plan_options_for(s));
  if (l.schedule == Schedule::interleaved && plan.n_microbatches % l.pp != 0)
    throw InputError("layout.vpp", "the interleaved schedule needs the microbatches per data-parallel "
                                   "rank (" + std::to_string(plan.n_microbatches) +
                                   ") to be a multiple of pp (" + std::to_string(l.pp) + ")");
  const ComputeModel compute(stack_adjusted(s.system).chip, s.calibration.get());
  const CommModel comm(s.system, l, s.calibration.get());
  const StepWork work = build_step_work(plan, compute, comm);
  check_size(size_of(plan, work, placement, fold), options);

  Simulation sim;
  sim.result = from_json(run_in_child_process([&] {
    SimulationResult r = run_step_simulation(plan, work, placement, options);
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0) r.peak_memory_bytes = double(usage.ru_maxrss) * 1024.0;  // KiB on Linux
    return to_json(r);
  }));

  Report& r = sim.report;
  r = predict(s);
  const auto& chips = sim.result.chips;
  sim.slowest_chip = int(std::max_element(chips.begin(), chips.end(), [](const auto& a, const auto& b) {
                           return a.finish_s < b.finish_s;
                         }) - chips.begin());
  const ChipTimes& t = chips[sim.slowest_chip];
  r.step_time_s = sim.result.step_time_s;
  // What host synchronisations add, and what the side stream's collectives slow, is part of each
  // layer pass's compute in the simulation (host_sync_exposed_seconds and
  // overlap_interference_seconds, as in the closed form): their shares are the predicted ones. The
  // wait for a shared core is the slowest chip's own.
  r.breakdown = {t.compute_s,   t.exposed_comm_s, t.bubble_s,
                 t.optimizer_s, t.recompute_s,    t.all_to_all_s, r.breakdown.host_sync_s,
                 r.breakdown.beside_collectives_s, t.core_wait_s};
  const double tokens = double(s.global_batch) * double(s.model.seq_len);
  r.tokens_per_s = tokens / r.step_time_s;
  const double peak = double(r.n_chips) * s.system.chip.peak_flops;
  r.mfu = flops_utilization(r.tokens_per_s, r.model_flops_per_token, peak);
  r.hfu = flops_utilization(r.tokens_per_s, r.hardware_flops_per_token, peak);
  attach_band(r, s.system.stack, double(parameter_count(s.model)));
  return sim;
}

namespace {

struct Part {
  const char* name;
  double (*get)(const ChipTimes&, double step);
};
const Part kParts[] = {
    {"compute_s", [](const ChipTimes& t, double) { return t.compute_s + t.recompute_s + t.optimizer_s; }},
    {"exposed_comm_s", [](const ChipTimes& t, double) { return t.exposed_comm_s; }},
    {"bubble_s", [](const ChipTimes& t, double) { return t.bubble_s; }},
    {"idle_s", [](const ChipTimes& t, double step) { return step - t.finish_s; }},
};

nlohmann::json chip_json(int chip, const ChipTimes& t, double step) {
  nlohmann::json j = {{"chip", chip}};
  for (const Part& p : kParts) j[p.name] = p.get(t, step);
  return j;
}

}  // namespace

nlohmann::json per_chip_json(const Simulation& sim) {
  const auto& chips = sim.result.chips;
  const double step = sim.result.step_time_s;
  nlohmann::json summary;
  for (const Part& p : kParts) {
    double lo = 1e300, hi = -1e300, sum = 0;
    for (const ChipTimes& t : chips) {
      const double v = p.get(t, step);
      lo = std::min(lo, v), hi = std::max(hi, v), sum += v;
    }
    summary[p.name] = {{"min", lo}, {"mean", sum / double(chips.size())}, {"max", hi}};
  }
  nlohmann::json out = {{"chips", chips.size()},
                        {"simulated_chips", sim.result.simulated_chips},
                        {"unfolded_because", sim.result.unfolded_because},
                        {"flows", sim.result.flows},
                        {"summary", summary},
                        {"slowest_chip", chip_json(sim.slowest_chip, chips[sim.slowest_chip], step)}};
  if (chips.size() <= 64) {
    out["per_chip"] = nlohmann::json::array();
    for (size_t i = 0; i < chips.size(); ++i) out["per_chip"].push_back(chip_json(int(i), chips[i], step));
  }
  return out;
}

std::string per_chip_table(const Simulation& sim) {
  const nlohmann::json j = per_chip_json(sim);
  std::string out = fmt::format("  per chip ({} chips; compute includes recompute and optimizer)\n",
                                j["chips"].get<size_t>());
  out += "                    min        mean         max\n";
  for (const Part& p : kParts) {
    const auto& s = j["summary"][p.name];
    out += fmt::format("    {:<14} {:9.3f} s {:9.3f} s {:9.3f} s\n", p.name, s["min"].get<double>(),
                       s["mean"].get<double>(), s["max"].get<double>());
  }
  out += fmt::format("  slowest chip      {}\n", sim.slowest_chip);
  const SimulationResult& r = sim.result;
  if (r.simulated_chips < int64_t(r.chips.size()))
    out += fmt::format("  simulated         {} of {} chips (identical data-parallel replicas folded)\n",
                       r.simulated_chips, r.chips.size());
  else
    out += fmt::format("  simulated         every chip ({})\n", r.unfolded_because);
  out += fmt::format("  simulation size   {:.3g} flows\n", r.flows);
  return out;
}

void write_trace(const std::string& path, const Scenario& s, const Simulation& sim) {
  const CommModel comm(s.system, s.layout, s.calibration.get());
  write_chrome_trace(path, sim.result, ChipPlacement(s.system, s.layout, comm.torus()));
}

}  // namespace palmsim::simulation

namespace palmsim {

double simulate_step_seconds(const Scenario& scenario) {
  return simulation::simulate(scenario).report.step_time_s;
}

std::vector<SimulatedLayout> simulate_layouts(const Scenario& scenario, const std::vector<Layout>& layouts) {
  std::vector<SimulatedLayout> out;
  for (const Layout& layout : layouts) {
    Scenario candidate = scenario;
    candidate.layout = layout;
    SimulatedLayout r;
    try {
      r.step_time_s = simulate_step_seconds(candidate);
    } catch (const InputError& e) {
      r.error = e.what();
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace palmsim
