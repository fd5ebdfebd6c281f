#include "apps/verbs.h"
#include "model/input_error.h"
#include "sim/scenario.h"
#include "sim/simgrid/simulate.h"

#include <fmt/format.h>

#include <iostream>
#include <sstream>

namespace palmsim {

namespace {

// "ID:PCT", "NAME:FACTOR": the value after the last colon, as a number.
std::pair<std::string, double> split_value(const std::string& text, const std::string& option) {
  const auto colon = text.rfind(':');
  try {
    if (colon == std::string::npos || colon == 0) throw std::invalid_argument(text);
    size_t used = 0;
    const double value = std::stod(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) throw std::invalid_argument(text);
    return {text.substr(0, colon), value};
  } catch (const std::logic_error&) {
    throw InputError(option, "expected " + std::string(option == "--slow-chip" ? "ID:PCT (e.g. 17:20)"
                                                                                  : "LINK:FACTOR (e.g. ici.5.x:0.5)") +
                                 ", got '" + text + "'");
  }
}

int parse_chip(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const int chip = std::stoi(text, &used);
    if (used == text.size() && chip >= 0) return chip;
  } catch (const std::logic_error&) {
  }
  throw InputError(option, "expected a chip number >= 0, got '" + text + "'");
}

}  // namespace

void add_simulate_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("simulate", "Discrete-event simulation (SimGrid) of one scenario's training step");
  struct Args {
    std::string path, trace, trace_chips, slow_chip;
    std::vector<std::string> degrade;
    bool json = false, force = false, no_fold = false;
    int64_t max_chips = simulation::SimulationOptions{}.max_chips;
    double max_flows = simulation::SimulationOptions{}.max_flows;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("SCENARIO", a->path, "scenario YAML file")->required();
  cmd->add_option("--trace", a->trace, "write a Chrome/Perfetto trace-event JSON file");
  cmd->add_option("--trace-chips", a->trace_chips, "comma-separated chips to trace (default: the first 8)");
  cmd->add_option("--slow-chip", a->slow_chip, "ID:PCT: chip ID computes PCT % slower (a straggler)");
  cmd->add_option("--degrade-link", a->degrade,
                  "LINK:FACTOR: keep FACTOR of LINK's bandwidth (TPU ici.CHIP.x|y|z, dcn.HOST; GPU "
                  "nvlink.GPU, nic.GPU, uplink.LEAF.RAIL); repeatable");
  cmd->add_option("--max-chips", a->max_chips, "refuse a simulation of more chips (actors) than this")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--max-flows", a->max_flows, "refuse a simulation of more flows per step than this")
      ->check(CLI::Range(1.0, 1e18));
  cmd->add_flag("--no-fold", a->no_fold,
                "simulate every chip, even where data-parallel replicas provably behave alike (a check of the fold)");
  cmd->add_flag("--json", a->json, "print one JSON object (predict's keys plus per_chip)");
  cmd->add_flag("--force", a->force, "replace the trace file if it exists");
  cmd->callback([&action, a] {
    action = [a] {
      if (!a->trace.empty()) check_output_path(a->trace, a->force, "--trace");
      const Scenario s = load_scenario(a->path);
      simulation::SimulationOptions o;
      o.max_chips = a->max_chips;
      o.max_flows = a->max_flows;
      o.fold_replicas = !a->no_fold;
      if (!a->slow_chip.empty()) {
        const auto [chip, pct] = split_value(a->slow_chip, "--slow-chip");
        o.slow_chip = parse_chip(chip, "--slow-chip");
        o.slow_percent = pct;
      }
      for (const std::string& d : a->degrade) {
        const auto [link, factor] = split_value(d, "--degrade-link");
        o.degrade.push_back({link, factor});
      }
      if (!a->trace.empty()) {
        if (a->trace_chips.empty()) {
          for (int c = 0; c < 8; ++c) o.trace_chips.push_back(c);
        } else {
          std::stringstream list(a->trace_chips);
          for (std::string item; std::getline(list, item, ',');)
            o.trace_chips.push_back(parse_chip(item, "--trace-chips"));
        }
      }
      const simulation::Simulation sim = simulation::simulate(s, o);
      // Machine-dependent, so not in the output (whose bytes are the same every run).
      std::cerr << fmt::format("simulate: peak memory of the simulation process {:.0f} MiB\n",
                               sim.result.peak_memory_bytes / (1024.0 * 1024.0));
      if (!a->trace.empty()) simulation::write_trace(a->trace, s, sim);
      if (a->json) {
        nlohmann::json j = report_json(sim.report);
        j["per_chip"] = simulation::per_chip_json(sim);
        std::cout << j.dump(2) << "\n";
      } else {
        std::cout << report_table(sim.report, "simulate (SimGrid)") << simulation::per_chip_table(sim);
      }
      return 0;
    };
  });
}

}  // namespace palmsim
