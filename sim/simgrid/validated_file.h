#pragma once
// One validation CSV as `palmsim validate` (and the Python module) reads it: every row predicted,
// and with `simulate` also run through the discrete-event simulator beside the analytic answer.
#include "sim/validation.h"

#include <string>
#include <vector>

namespace palmsim {

struct ValidatedFile {
  std::string path;
  std::vector<ValidationRow> rows;
  std::vector<double> simulated;  // seconds; 0 where not simulated
  CsvTable table;                 // the output CSV (validation_output, plus sim_step_s, sim_err_step_pct)
};

ValidatedFile validate_file(const std::string& path, bool simulate);

}  // namespace palmsim
