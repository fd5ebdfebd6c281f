#pragma once
// One validation CSV as `palmsim validate` (and the Python module) reads it: every row predicted,
// and with `simulate` also run through the discrete-event simulator beside the analytic answer.
#include "sim/validation.h"

#include <functional>
#include <string>
#include <vector>

namespace palmsim {

// One row as it leaves the file: the analytic answer, the simulated step, and the output CSV row
// (the input row, then validation_output_columns(), then sim_step_s, sim_err_step_pct, sim_error).
struct ValidatedRow {
  ValidationRow row;
  double simulated = 0;    // seconds; 0 where not simulated
  std::string sim_error;   // why a row with a prediction was not simulated (beyond the bounds, ...)
  std::vector<std::string> output;
};

// The row as the simulated summary counts it: scored by its simulated step, or not modelled (with
// its sim_error) when it was not simulated; its pred_step_s is the simulated step.
ValidationRow simulated_view(const ValidationRow& row, double simulated, const std::string& sim_error);

// Streams a file: the output header first, then each row in file order; memory does not grow
// with the rows. Throws InputError before the first row when the file is malformed.
void validate_file_rows(const std::string& path, bool simulate,
                        const std::function<void(const std::vector<std::string>& header)>& on_header,
                        const std::function<void(ValidatedRow&&)>& on_row);
// The same from a reader already opened (and so already checked).
void validate_file_rows(ValidationCsvReader& reader, bool simulate,
                        const std::function<void(const std::vector<std::string>& header)>& on_header,
                        const std::function<void(ValidatedRow&&)>& on_row);

// The whole file in memory.
struct ValidatedFile {
  std::string path;
  std::vector<ValidationRow> rows;
  std::vector<double> simulated;  // seconds; 0 where not simulated
  std::vector<std::string> sim_errors;  // why a row was not simulated; empty where it was
  CsvTable table;                 // the output CSV
};
ValidatedFile validate_file(const std::string& path, bool simulate);

}  // namespace palmsim
