#include "apps/verbs.h"
#include "model/input_error.h"
#include "sim/simgrid/validated_file.h"
#include "sim/validation.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace palmsim {

namespace {

void print_rows(const std::vector<ValidationRow>& rows) {
  std::cout << fmt::format("{:<16} {:>10} {:>10} {:>8} {:>7} {:>7}  {}\n", "id", "measured s", "pred s",
                           "err %", "MFU %", "meas %", "chosen / error");
  for (const ValidationRow& r : rows) {
    if (!r.error.empty()) {
      std::cout << fmt::format("{:<16} {:>10} {:>10} {:>8} {:>7} {:>7}  error: {}\n", r.id, "", "", "", "", "",
                               r.error);
      continue;
    }
    const double err = r.measured_step_s > 0 ? (r.pred_step_s - r.measured_step_s) / r.measured_step_s * 100 : 0;
    std::cout << fmt::format("{:<16} {:>10.3f} {:>10.3f} {:>8.1f} {:>7.1f} {:>7}  {}\n", r.id, r.measured_step_s,
                             r.pred_step_s, err, 100 * r.pred_mfu,
                             r.measured_mfu_pct > 0 ? fmt::format("{:.1f}", r.measured_mfu_pct) : "", r.chosen);
  }
}

}  // namespace

void add_validate_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("validate", "Predict every run of published-runs CSVs and report the errors per file");
  struct Args {
    std::vector<std::string> inputs;
    std::string out;
    bool force = false, simulate = false, rows = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("RUNS", a->inputs, "CSV files with the columns of DESIGN.md 'Validation CSV', or folders of them")
      ->required();
  cmd->add_option("-o,--output", a->out,
                  "write the table with predictions: a CSV for one input, a folder (one CSV per input) for several");
  cmd->add_flag("--force", a->force, "replace output files that exist");
  cmd->add_flag("--simulate", a->simulate, "also simulate every run on SimGrid (sim_step_s, sim_err_step_pct)");
  cmd->add_flag("--rows", a->rows, "print every row (the default for a single input file)");
  cmd->callback([&action, a] {
    action = [a] {
      const std::vector<std::string> files = validation_files(a->inputs);
      // Where each file's output goes, all checked before anything is written.
      std::vector<std::string> outputs;
      if (!a->out.empty()) {
        std::error_code ec;  // non-throwing: a symbolic link loop is reported by check_output_path
        const bool out_is_folder = std::filesystem::is_directory(a->out, ec);
        if (files.size() == 1 && !out_is_folder) {
          outputs.push_back(a->out);
        } else {
          if (!out_is_folder)
            throw InputError("--output", "with " + std::to_string(files.size()) +
                                             " input files, must be an existing folder; '" + a->out + "' is not");
          for (const std::string& f : files)
            outputs.push_back((std::filesystem::path(a->out) / std::filesystem::path(f).filename()).string());
        }
        for (const std::string& o : outputs) check_output_path(o, a->force, "--output");
      }
      std::vector<ValidatedFile> done;
      for (const std::string& f : files) done.push_back(validate_file(f, a->simulate));
      for (size_t i = 0; i < outputs.size(); ++i) write_csv(done[i].table, outputs[i]);

      if (files.size() == 1 || a->rows)
        for (const ValidatedFile& f : done) print_rows(f.rows);
      std::vector<ValidationRow> all;
      std::vector<double> all_simulated;
      for (const ValidatedFile& f : done) {
        std::cout << summary_line(f.path, summarize(f.rows, [](const ValidationRow& r) { return r.pred_step_s; }))
                  << "\n";
        all.insert(all.end(), f.rows.begin(), f.rows.end());
        all_simulated.insert(all_simulated.end(), f.simulated.begin(), f.simulated.end());
      }
      if (files.size() > 1)
        std::cout << summary_line("all files", summarize(all, [](const ValidationRow& r) { return r.pred_step_s; }))
                  << "\n";
      if (a->simulate) {
        const ValidationSummary sim = summarize(all, [&](const ValidationRow& r) {
          return all_simulated[size_t(&r - all.data())];
        });
        std::cout << summary_line("simulated, all files", sim) << "\n";
      }
      return 0;
    };
  });
}

}  // namespace palmsim
