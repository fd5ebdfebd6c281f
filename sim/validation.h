#pragma once
// `palmsim validate`: predicts every row of a published-runs CSV (DESIGN.md "Validation CSV") and
// compares with the measured step time and MFU. Empty layout cells (vpp, microbatch, sp, sharding,
// recompute) are unpublished: search picks the best legal, fitting value and reports it. A row
// palmsim cannot model gets its reason in `error`; the other rows go on.
#include "sim/csv_table.h"
#include "sim/scenario.h"

#include <functional>
#include <optional>

namespace palmsim {

struct ValidationRow {
  std::string id;
  std::optional<Scenario> scenario;   // empty when the row could not be read
  std::string chosen;                 // what search picked for empty cells
  std::string error;
  double measured_step_s = 0, measured_mfu_pct = 0;
  double pred_step_s = 0, pred_mfu = 0, pred_hfu = 0, pred_memory_bytes = 0;
  bool fits = false;
};

struct ValidationSummary {
  int total = 0;          // rows in the table
  int rows = 0;           // scored: rows with a measured step time and a prediction
  int not_modelled = 0;   // rows with an error (unsupported option, illegal layout)
  double mean_abs_err_pct = 0;
  double max_abs_err_pct = 0;
  double mean_signed_err_pct = 0;  // negative: predicted too fast
};

// The CSV files `validate` reads from its arguments: files as given, folders as every *.csv in
// them, sorted by name. Throws InputError naming the argument that is neither.
std::vector<std::string> validation_files(const std::vector<std::string>& arguments);

// One summary line per DESIGN.md: "LABEL: rows N, scored S, not modelled U, mean |err_step| X %,
// max |err_step| Y %, mean signed Z %".
std::string summary_line(const std::string& label, const ValidationSummary& summary);

// Reads a validation CSV and, when `annotations/NAME.csv` sits beside `NAME.csv`, merges it by
// `id`: each non-empty cell adds a column or fills/replaces the published cell (palmsim's reading
// of the source's notes: stack, stack overrides, model flags; scenarios/published/annotations/).
CsvTable read_validation_csv(const std::string& path);

// Reads the table; throws InputError when the file or a required column is missing/malformed.
std::vector<ValidationRow> validate_table(const CsvTable& table);
// Adds pred_*, fits, chosen, err_*, error columns (and any extra columns the caller computed).
CsvTable validation_output(const CsvTable& input, const std::vector<ValidationRow>& rows);
ValidationSummary summarize(const std::vector<ValidationRow>& rows,
                            const std::function<double(const ValidationRow&)>& predicted_step_s);

}  // namespace palmsim
