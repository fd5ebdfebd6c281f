#include "sim/simgrid/validated_file.h"

#include "sim/simgrid/simulate.h"

#include <fmt/format.h>

namespace palmsim {

ValidatedFile validate_file(const std::string& path, bool simulate) {
  ValidatedFile f;
  f.path = path;
  const CsvTable input = read_validation_csv(path);
  f.rows = validate_table(input);
  f.table = validation_output(input, f.rows);
  f.simulated.assign(f.rows.size(), 0.0);
  if (!simulate) return f;
  // The simulated step of every row that has a scenario, beside the analytic one.
  f.table.header.push_back("sim_step_s");
  f.table.header.push_back("sim_err_step_pct");
  for (size_t i = 0; i < f.rows.size(); ++i) {
    const ValidationRow& r = f.rows[i];
    const bool ok = r.error.empty() && r.scenario;
    if (ok) f.simulated[i] = simulate_step_seconds(*r.scenario);
    f.table.rows[i].push_back(ok ? fmt::format("{:.4f}", f.simulated[i]) : "");
    f.table.rows[i].push_back(ok && r.measured_step_s > 0
                                  ? fmt::format("{:.2f}", (f.simulated[i] - r.measured_step_s) / r.measured_step_s * 100)
                                  : "");
  }
  return f;
}

}  // namespace palmsim
