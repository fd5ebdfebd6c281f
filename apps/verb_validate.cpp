#include "apps/verbs.h"
#include "sim/simgrid/simulate.h"
#include "sim/validation.h"

#include <fmt/format.h>

#include <iostream>

namespace palmsim {

void add_validate_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("validate", "Predict every run of a published-runs CSV and report the errors");
  auto path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  auto simulate = std::make_shared<bool>(false);
  cmd->add_option("RUNS", *path, "CSV with the columns of DESIGN.md 'Validation CSV'")->required();
  cmd->add_option("-o,--output", *out, "write the table with predictions to this CSV");
  cmd->add_flag("--force", *force, "replace the output file if it exists");
  cmd->add_flag("--simulate", *simulate, "also simulate every run on SimGrid (sim_step_s, sim_err_step_pct)");
  cmd->callback([&action, path, out, force, simulate] {
    action = [path, out, force, simulate] {
      if (!out->empty()) check_output_path(*out, *force, "--output");
      const CsvTable input = read_csv(*path);
      const std::vector<ValidationRow> rows = validate_table(input);
      CsvTable table = validation_output(input, rows);
      // The simulated step of every row that has a scenario, beside the analytic one.
      std::vector<double> simulated(rows.size(), 0.0);
      if (*simulate) {
        table.header.push_back("sim_step_s");
        table.header.push_back("sim_err_step_pct");
        for (size_t i = 0; i < rows.size(); ++i) {
          const ValidationRow& r = rows[i];
          const bool ok = r.error.empty() && r.scenario;
          if (ok) simulated[i] = simulate_step_seconds(*r.scenario);
          table.rows[i].push_back(ok ? fmt::format("{:.4f}", simulated[i]) : "");
          table.rows[i].push_back(ok && r.measured_step_s > 0
                                      ? fmt::format("{:.2f}", (simulated[i] - r.measured_step_s) / r.measured_step_s * 100)
                                      : "");
        }
      }
      if (!out->empty()) write_csv(table, *out);
      std::cout << fmt::format("{:<16} {:>10} {:>10} {:>8} {:>7} {:>7}  {}\n", "id", "measured s",
                               "pred s", "err %", "MFU %", "meas %", "chosen / error");
      for (const ValidationRow& r : rows) {
        if (!r.error.empty()) {
          std::cout << fmt::format("{:<16} {:>10} {:>10} {:>8} {:>7} {:>7}  error: {}\n", r.id, "", "", "",
                                   "", "", r.error);
          continue;
        }
        const double err = r.measured_step_s > 0 ? (r.pred_step_s - r.measured_step_s) / r.measured_step_s * 100 : 0;
        std::cout << fmt::format("{:<16} {:>10.3f} {:>10.3f} {:>8.1f} {:>7.1f} {:>7}  {}\n", r.id,
                                 r.measured_step_s, r.pred_step_s, err, 100 * r.pred_mfu,
                                 r.measured_mfu_pct > 0 ? fmt::format("{:.1f}", r.measured_mfu_pct) : "",
                                 r.chosen);
      }
      const ValidationSummary s = summarize(rows, [](const ValidationRow& r) { return r.pred_step_s; });
      std::cout << fmt::format("rows {}, mean |err_step| {:.2f} %, max |err_step| {:.2f} %\n", s.rows,
                               s.mean_abs_err_pct, s.max_abs_err_pct);
      if (*simulate) {
        const ValidationSummary sim = summarize(rows, [&](const ValidationRow& r) {
          return simulated[size_t(&r - rows.data())];
        });
        std::cout << fmt::format("simulated: rows {}, mean |err_step| {:.2f} %, max |err_step| {:.2f} %\n", sim.rows,
                                 sim.mean_abs_err_pct, sim.max_abs_err_pct);
      }
      return 0;
    };
  });
}

}  // namespace palmsim
