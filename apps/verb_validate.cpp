#include "apps/verbs.h"
#include "model/atomic_file.h"
#include "model/input_error.h"
#include "sim/simgrid/validated_file.h"
#include "sim/validation.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <memory>

namespace palmsim {

namespace {

void print_row_header() {
  std::cout << fmt::format("{:<16} {:>10} {:>10} {:>8} {:>7} {:>7}  {}\n", "id", "measured s", "pred s", "err %",
                           "MFU %", "meas %", "chosen / error");
}

void print_row(const ValidationRow& r) {
  if (!r.error.empty()) {
    std::cout << fmt::format("{:<16} {:>10} {:>10} {:>8} {:>7} {:>7}  error: {}\n", r.id, "", "", "", "", "", r.error);
    return;
  }
  const double err = r.measured_step_s > 0 ? (r.pred_step_s - r.measured_step_s) / r.measured_step_s * 100 : 0;
  std::cout << fmt::format("{:<16} {:>10.3f} {:>10.3f} {:>8.1f} {:>7.1f} {:>7}  {}\n", r.id, r.measured_step_s,
                           r.pred_step_s, err, 100 * r.pred_mfu,
                           r.measured_mfu_pct > 0 ? fmt::format("{:.1f}", r.measured_mfu_pct) : "", r.chosen);
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
      // Every file is checked whole (widths, columns, annotations) before any row is printed or
      // written; then the rows stream through, so memory does not grow with them. Output files are
      // committed only once every file has gone through: an error leaves none behind.
      std::vector<std::unique_ptr<ValidationCsvReader>> readers;  // opening one checks its file
      for (const std::string& f : files) {
        readers.push_back(std::make_unique<ValidationCsvReader>(f));
        check_validation_columns(readers.back()->columns());
      }
      std::vector<std::unique_ptr<AtomicFile>> written;
      std::vector<ValidationSummary> summaries;
      ValidationSummaryBuilder all, all_simulated;
      const bool print = files.size() == 1 || a->rows;
      for (size_t i = 0; i < files.size(); ++i) {
        AtomicFile* out = nullptr;
        if (!outputs.empty()) out = written.emplace_back(std::make_unique<AtomicFile>(outputs[i], "--output")).get();
        ValidationSummaryBuilder file;
        validate_file_rows(
            *readers[i], a->simulate,
            [&](const std::vector<std::string>& header) {
              if (out) out->write(csv_line(header));
              if (print) print_row_header();
            },
            [&](ValidatedRow&& v) {
              if (out) out->write(csv_line(v.output));
              if (print) print_row(v.row);
              file.add(v.row, v.row.pred_step_s);
              all.add(v.row, v.row.pred_step_s);
              const ValidationRow simulated = simulated_view(v.row, v.simulated, v.sim_error);
              all_simulated.add(simulated, simulated.pred_step_s);
            });
        summaries.push_back(file.summary());
      }
      for (auto& out : written) out->commit();
      for (size_t i = 0; i < files.size(); ++i) std::cout << summary_line(files[i], summaries[i]) << "\n";
      if (files.size() > 1) std::cout << summary_line("all files", all.summary()) << "\n";
      if (a->simulate) std::cout << summary_line("simulated, all files", all_simulated.summary()) << "\n";
      return 0;
    };
  });
}

}  // namespace palmsim
