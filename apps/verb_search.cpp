#include "apps/verbs.h"
#include "sim/layout_search.h"
#include "sim/predict.h"
#include "sim/simgrid/simulate.h"

#include <fmt/format.h>

#include <iostream>

namespace palmsim {

void add_search_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("search", "Enumerate every legal layout of the scenario's chips and rank them");
  auto path = std::make_shared<std::string>();
  auto top = std::make_shared<int>(10);
  auto json = std::make_shared<bool>(false);
  auto simulate_top = std::make_shared<int>(0);
  cmd->add_option("SCENARIO", *path, "scenario YAML file")->required();
  cmd->add_option("--simulate-top", *simulate_top, "simulate the best K layouts on SimGrid too")->check(CLI::Range(0, 1000));
  cmd->add_option("--top", *top, "how many layouts to print")->check(CLI::Range(1, 100000));
  cmd->add_flag("--json", *json, "print a JSON object with the ranking");
  cmd->callback([&action, path, top, json, simulate_top] {
    action = [path, top, json, simulate_top] {
      const Scenario s = load_scenario(*path);
      const SearchResult r = search_layouts(s, *top);
      const double rate = r.seconds > 0 ? r.evaluated / r.seconds : 0.0;
      // The best layouts once more as discrete-event simulations (contention, real schedules).
      std::vector<Layout> best;
      for (int i = 0; i < std::min(*simulate_top, int(r.top.size())); ++i) best.push_back(r.top[size_t(i)].layout);
      const std::vector<SimulatedLayout> simulated = simulate_layouts(s, best);
      // How long the search took is about this run, not the answer: stderr, so stdout is the same
      // bytes on every run and thread count.
      std::cerr << fmt::format("search: {} layouts in {:.3f} s ({:.0f} layouts/s)\n", r.evaluated, r.seconds, rate);
      if (*json) {
        nlohmann::json j;
        j["evaluated"] = r.evaluated;
        j["fitting"] = r.fitting;
        j["top"] = nlohmann::json::array();
        for (size_t i = 0; i < r.top.size(); ++i) {
          nlohmann::json entry = report_json(r.top[i]);
          if (i < simulated.size() && simulated[i].error.empty()) entry["simulated_step_time_s"] = simulated[i].step_time_s;
          if (i < simulated.size() && !simulated[i].error.empty()) entry["simulation_error"] = simulated[i].error;
          j["top"].push_back(entry);
        }
        std::cout << j.dump(2) << "\n";
        return 0;
      }
      constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
      std::cout << fmt::format("search: {} on {} x {}, global batch {} sequences\n", s.model.name,
                               s.n_chips, s.system.name, s.global_batch);
      std::cout << fmt::format("  {} legal layouts evaluated, {} fit in memory\n", r.evaluated, r.fitting);
      std::cout << fmt::format("  {:>4} {:>10} {:>10} {:>7} {:>7} {:>9}  {}\n", "rank", "step (s)", "sim (s)",
                               "MFU %", "HFU %", "mem GiB", "layout");
      for (size_t i = 0; i < r.top.size(); ++i) {
        const Report& rep = r.top[i];
        std::cout << fmt::format("  {:>4} {:>10.3f} {:>10} {:>7.1f} {:>7.1f} {:>9.2f}  {}\n", i + 1, rep.step_time_s,
                                 i < simulated.size() && simulated[i].error.empty()
                                     ? fmt::format("{:.3f}", simulated[i].step_time_s)
                                     : "-",
                                 100 * rep.mfu, 100 * rep.hfu, rep.memory.total() / GiB,
                                 layout_summary(rep.layout));
      }
      for (size_t i = 0; i < simulated.size(); ++i)
        if (!simulated[i].error.empty())
          std::cout << fmt::format("  rank {} not simulated: {}\n", i + 1, simulated[i].error);
      // The scenario's own layout for comparison; when it beats every ranked layout it is because
      // it does not fit, which search's ranks must, so say so.
      const Report given = predict(s);
      std::cout << fmt::format("  scenario's own layout: {:.3f} s, MFU {:.1f} %, {:.2f} GiB of {:.2f} GiB ({})  ({})\n",
                               given.step_time_s, 100 * given.mfu, given.memory.total() / GiB,
                               given.memory_capacity_bytes / GiB, given.fits_in_memory ? "fits" : "does not fit",
                               layout_summary(given.layout));
      return 0;
    };
  });
}

}  // namespace palmsim
