#pragma once
// `palmsim validate`: predicts every row of a published-runs CSV (DESIGN.md "Validation CSV") and
// compares with the measured step time and MFU. Empty layout cells (vpp, microbatch, sp, sharding,
// recompute) are unpublished: search picks the best legal, fitting value and reports it. A row
// palmsim cannot model gets its reason in `error`; the other rows go on.
#include "sim/csv_table.h"
#include "sim/scenario.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace palmsim {

struct ValidationRow {
  std::string id;
  std::optional<Scenario> scenario;   // empty when the row could not be read
  std::string chosen;                 // what search picked for empty cells
  std::string error;
  double measured_step_s = 0, measured_mfu_pct = 0;
  double pred_step_s = 0, pred_mfu = 0, pred_hfu = 0, pred_memory_bytes = 0;
  bool fits = false;
  bool mesh_published = true;  // tp, pp and dp given by the row, not chosen by search
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

// A validation CSV read row by row with, when `annotations/NAME.csv` sits beside `NAME.csv`, that
// file merged by `id`: each non-empty cell adds a column or fills/replaces the published cell
// (palmsim's reading of the source's notes: stack, stack overrides, model flags;
// scenarios/published/annotations/). Memory does not grow with the rows: the constructor reads the
// whole file once to check it (row widths, annotation ids), so a malformed file is refused before
// any row is used, then next() reads it again row by row.
class ValidationCsvReader {
 public:
  explicit ValidationCsvReader(const std::string& path);
  const std::vector<std::string>& header() const { return columns_.header; }
  const CsvTable& columns() const { return columns_; }  // the header, for column lookups (no rows)
  bool next(std::vector<std::string>& row);              // false after the last row
  size_t rows_read() const { return csv_->rows_read(); }

 private:
  std::string path_;
  CsvTable columns_;
  std::optional<CsvReader> csv_;
  int id_column_ = -1;
  std::map<std::string, std::vector<std::pair<size_t, std::string>>> notes_;  // id -> (column, value)
};

// The whole file in memory (fit, tests, the Python module).
CsvTable read_validation_csv(const std::string& path);

// Throws InputError naming the first required column the header lacks.
void check_validation_columns(const CsvTable& columns);
// One row (`index` counts from 0) read and predicted; what cannot be modelled is in `error`.
ValidationRow validate_row(const CsvTable& columns, const std::vector<std::string>& row, size_t index);
// Every row of the table; throws InputError when a required column is missing.
std::vector<ValidationRow> validate_table(const CsvTable& table);

// The columns `validate -o` appends to each input row, and their values for one row.
const std::vector<std::string>& validation_output_columns();
void append_validation_output(std::vector<std::string>& row, const ValidationRow& r);
// The input table with those columns added.
CsvTable validation_output(const CsvTable& input, const std::vector<ValidationRow>& rows);

// Accumulates a summary one row at a time (validate streams its rows).
class ValidationSummaryBuilder {
 public:
  void add(const ValidationRow& row, double predicted_step_s);
  ValidationSummary summary() const;

 private:
  ValidationSummary s_;
  double sum_ = 0, signed_sum_ = 0;
};
ValidationSummary summarize(const std::vector<ValidationRow>& rows,
                            const std::function<double(const ValidationRow&)>& predicted_step_s);

}  // namespace palmsim
