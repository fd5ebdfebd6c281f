#include "sim/simgrid/validated_file.h"

#include "model/input_error.h"
#include "sim/simgrid/simulate.h"

#include <fmt/format.h>

namespace palmsim {

void validate_file_rows(const std::string& path, bool simulate,
                        const std::function<void(const std::vector<std::string>& header)>& on_header,
                        const std::function<void(ValidatedRow&&)>& on_row) {
  ValidationCsvReader reader(path);
  validate_file_rows(reader, simulate, on_header, on_row);
}

void validate_file_rows(ValidationCsvReader& reader, bool simulate,
                        const std::function<void(const std::vector<std::string>& header)>& on_header,
                        const std::function<void(ValidatedRow&&)>& on_row) {
  check_validation_columns(reader.columns());
  std::vector<std::string> header = reader.header();
  for (const std::string& c : validation_output_columns()) header.push_back(c);
  if (simulate) {
    header.push_back("sim_step_s");
    header.push_back("sim_err_step_pct");
    header.push_back("sim_error");
  }
  on_header(header);
  std::vector<std::string> input;
  for (size_t i = 0; reader.next(input); ++i) {
    ValidatedRow v;
    v.row = validate_row(reader.columns(), input, i);
    v.output = std::move(input);
    append_validation_output(v.output, v.row);
    if (simulate) {
      // The simulated step of every row that has a scenario, beside the analytic one.
      const ValidationRow& r = v.row;
      bool ok = r.error.empty() && r.scenario;
      if (ok) {
        try {
          v.simulated = simulate_step_seconds(*r.scenario);
        } catch (const InputError& e) {  // a row the simulator does not model, or one beyond its bounds
          v.sim_error = e.what();
          ok = false;
        }
      }
      v.output.push_back(ok ? fmt::format("{:.4f}", v.simulated) : "");
      v.output.push_back(ok && r.measured_step_s > 0
                             ? fmt::format("{:.2f}", (v.simulated - r.measured_step_s) / r.measured_step_s * 100)
                             : "");
      v.output.push_back(v.sim_error);
    }
    on_row(std::move(v));
    input.clear();
  }
}

ValidationRow simulated_view(const ValidationRow& row, double simulated, const std::string& sim_error) {
  ValidationRow out = row;
  if (!sim_error.empty()) out.error = sim_error;
  out.pred_step_s = sim_error.empty() ? simulated : 0.0;
  return out;
}

ValidatedFile validate_file(const std::string& path, bool simulate) {
  ValidatedFile f;
  f.path = path;
  validate_file_rows(
      path, simulate, [&](const std::vector<std::string>& header) { f.table.header = header; },
      [&](ValidatedRow&& v) {
        f.rows.push_back(std::move(v.row));
        f.simulated.push_back(v.simulated);
        f.sim_errors.push_back(v.sim_error);
        f.table.rows.push_back(std::move(v.output));
      });
  return f;
}

}  // namespace palmsim
