#include "apps/verbs.h"
#include "sim/predict.h"

#include <iostream>

namespace palmsim {

void add_predict_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("predict", "Analytic prediction of one scenario's training step");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto per_op = std::make_shared<bool>(false);
  cmd->add_option("SCENARIO", *path, "scenario YAML file")->required();
  cmd->add_flag("--json", *json, "print one JSON object (SI units, mfu/hfu as fractions)");
  cmd->add_flag("--per-op", *per_op, "add seconds per step for every op of the step plan");
  cmd->callback([&action, path, json, per_op] {
    action = [path, json, per_op] {
      const Scenario s = load_scenario(*path);
      const Report r = predict(s, {.per_op = *per_op});
      if (*json)
        std::cout << report_json(r).dump(2) << "\n";
      else
        std::cout << report_table(r, "predict (analytic)");
      return 0;
    };
  });
}

}  // namespace palmsim
