#include "apps/verbs.h"
#include "sim/layout_search.h"
#include "sim/predict.h"

#include <fmt/format.h>

#include <iostream>

namespace palmsim {

void add_search_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("search", "Enumerate every legal layout of the scenario's chips and rank them");
  auto path = std::make_shared<std::string>();
  auto top = std::make_shared<int>(10);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("SCENARIO", *path, "scenario YAML file")->required();
  cmd->add_option("--top", *top, "how many layouts to print")->check(CLI::Range(1, 100000));
  cmd->add_flag("--json", *json, "print a JSON object with the ranking");
  cmd->callback([&action, path, top, json] {
    action = [path, top, json] {
      const Scenario s = load_scenario(*path);
      const SearchResult r = search_layouts(s, *top);
      const double rate = r.seconds > 0 ? r.evaluated / r.seconds : 0.0;
      if (*json) {
        nlohmann::json j;
        j["evaluated"] = r.evaluated;
        j["fitting"] = r.fitting;
        j["seconds"] = r.seconds;
        j["layouts_per_s"] = rate;
        j["top"] = nlohmann::json::array();
        for (const Report& rep : r.top) j["top"].push_back(report_json(rep));
        std::cout << j.dump(2) << "\n";
        return 0;
      }
      std::cout << fmt::format("search: {} on {} x {}, global batch {} sequences\n", s.model.name,
                               s.n_chips, s.system.name, s.global_batch);
      std::cout << fmt::format("  {} legal layouts evaluated, {} fit in memory, in {:.3f} s ({:.0f} layouts/s)\n",
                               r.evaluated, r.fitting, r.seconds, rate);
      std::cout << fmt::format("  {:>4} {:>10} {:>7} {:>7} {:>9}  {}\n", "rank", "step (s)", "MFU %",
                               "HFU %", "mem GiB", "layout");
      int rank = 0;
      for (const Report& rep : r.top)
        std::cout << fmt::format("  {:>4} {:>10.3f} {:>7.1f} {:>7.1f} {:>9.2f}  {}\n", ++rank,
                                 rep.step_time_s, 100 * rep.mfu, 100 * rep.hfu,
                                 rep.memory.total() / (1024.0 * 1024 * 1024), layout_summary(rep.layout));
      const Report given = predict(s);
      std::cout << fmt::format("  scenario's own layout: {:.3f} s, MFU {:.1f} %  ({})\n", given.step_time_s,
                               100 * given.mfu, layout_summary(given.layout));
      return 0;
    };
  });
}

}  // namespace palmsim
