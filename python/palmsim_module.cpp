// The compiled half of the `palmsim` Python module (python/palmsim/__init__.py is the other): the
// same scenario loading, predict, simulate, search, validate and sweep as the CLI, answering with
// the CLI's own JSON or CSV text, so a number in Python is the number the CLI prints. Bad input
// raises palmsim.InputError carrying the CLI's one-line message and the field it names.
#include "model/input_error.h"
#include "sim/layout_search.h"
#include "sim/predict.h"
#include "sim/scenario_override.h"
#include "sim/simgrid/simulate.h"
#include "sim/simgrid/validated_file.h"
#include "sim/sweep.h"
#include "sim/validation.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <utility>
#include <vector>

namespace py = pybind11;

namespace palmsim {
namespace {

using Overrides = std::vector<std::pair<std::string, std::string>>;

// A scenario file (`is_path`) or a scenario given as JSON text (a Python dict), with overrides.
YAML::Node scenario_yaml(const std::string& source, bool is_path, const Overrides& overrides) {
  YAML::Node root;
  if (is_path) {
    root = load_scenario_yaml(source);
  } else {
    try {
      root = YAML::Load(source);
    } catch (const YAML::Exception& e) {
      throw InputError("scenario", "the dict is not a scenario: " + e.msg);
    }
  }
  for (const auto& [key, value] : overrides) apply_override(root, key, value);
  return root;
}

Scenario scenario_of(const std::string& source, bool is_path, const Overrides& overrides) {
  return parse_scenario(scenario_yaml(source, is_path, overrides), is_path ? source : "<dict>");
}

std::string predict_json(const std::string& source, bool is_path, const Overrides& overrides, bool per_op) {
  const Scenario s = scenario_of(source, is_path, overrides);
  return report_json(predict(s, {.per_op = per_op})).dump();
}

std::string simulate_json(const std::string& source, bool is_path, const Overrides& overrides) {
  const Scenario s = scenario_of(source, is_path, overrides);
  py::gil_scoped_release release;  // the simulation runs in a child process for seconds
  const simulation::Simulation sim = simulation::simulate(s);
  nlohmann::json j = report_json(sim.report);
  j["per_chip"] = simulation::per_chip_json(sim);
  return j.dump();
}

std::string search_json(const std::string& source, bool is_path, const Overrides& overrides, int top,
                        int simulate_top) {
  if (top < 1) throw InputError("top", "must be at least 1");
  const Scenario s = scenario_of(source, is_path, overrides);
  py::gil_scoped_release release;
  const SearchResult r = search_layouts(s, top);
  nlohmann::json j;
  j["evaluated"] = r.evaluated;
  j["fitting"] = r.fitting;
  j["seconds"] = r.seconds;
  j["layouts_per_s"] = r.seconds > 0 ? r.evaluated / r.seconds : 0.0;
  j["top"] = nlohmann::json::array();
  std::vector<Layout> best;
  for (size_t i = 0; i < r.top.size() && int(i) < simulate_top; ++i) best.push_back(r.top[i].layout);
  const std::vector<SimulatedLayout> simulated = simulate_layouts(s, best);
  for (size_t i = 0; i < r.top.size(); ++i) {
    nlohmann::json entry = report_json(r.top[i]);
    if (i < simulated.size() && simulated[i].error.empty()) entry["simulated_step_time_s"] = simulated[i].step_time_s;
    if (i < simulated.size() && !simulated[i].error.empty()) entry["simulation_error"] = simulated[i].error;
    j["top"].push_back(entry);
  }
  return j.dump();
}

nlohmann::json summary_json(const ValidationSummary& v) {
  return {{"rows", v.total},
          {"scored", v.rows},
          {"not_modelled", v.not_modelled},
          {"mean_abs_err_step_pct", v.mean_abs_err_pct},
          {"max_abs_err_step_pct", v.max_abs_err_pct},
          {"mean_signed_err_step_pct", v.mean_signed_err_pct}};
}

// validate's figures: per file and over all files the summary line's numbers, and every output
// row (the CSV `validate -o` writes, as strings) with its file; `simulate` adds sim_step_s.
std::string validate_json(const std::vector<std::string>& arguments, bool simulate) {
  const auto by_step = [](const ValidationRow& r) { return r.pred_step_s; };
  const std::vector<std::string> paths = validation_files(arguments);
  py::gil_scoped_release release;
  nlohmann::json j;
  j["files"] = nlohmann::json::array();
  j["rows"] = nlohmann::json::array();
  std::vector<ValidationRow> all, all_simulated;
  for (const std::string& path : paths) {
    const ValidatedFile f = validate_file(path, simulate);
    nlohmann::json file = {{"file", path}, {"summary", summary_json(summarize(f.rows, by_step))}};
    if (simulate) {  // as `validate --simulate` counts: rows not simulated are not modelled there
      std::vector<ValidationRow> simulated;
      for (size_t i = 0; i < f.rows.size(); ++i)
        simulated.push_back(simulated_view(f.rows[i], f.simulated[i], f.sim_errors[i]));
      file["simulated_summary"] = summary_json(summarize(simulated, by_step));
      all_simulated.insert(all_simulated.end(), simulated.begin(), simulated.end());
    }
    j["files"].push_back(file);
    for (const auto& cells : f.table.rows) {
      nlohmann::json row = {{"file", path}};
      for (size_t c = 0; c < f.table.header.size(); ++c) row[f.table.header[c]] = cells[c];
      j["rows"].push_back(row);
    }
    all.insert(all.end(), f.rows.begin(), f.rows.end());
  }
  j["all_files"] = summary_json(summarize(all, by_step));
  if (simulate) j["all_files_simulated"] = summary_json(summarize(all_simulated, by_step));
  return j.dump();
}

// The sweep's CSV text (header and rows), as `palmsim sweep` writes it on one process.
std::string sweep_csv(const std::string& source, bool is_path, const Overrides& overrides,
                      const std::vector<std::string>& sets, bool simulate, int64_t max_combinations) {
  SweepGrid grid = parse_sweep_grid(sets, max_combinations);
  Sweep::Simulator simulator;
  if (simulate) simulator = [](const Scenario& s) { return simulation::simulate(s).report; };
  Sweep sweep(scenario_yaml(source, is_path, overrides), is_path ? source : "<dict>", std::move(grid), simulator);
  py::gil_scoped_release release;
  return sweep.header() + sweep.evaluate(0, sweep.grid().size());
}

}  // namespace
}  // namespace palmsim

PYBIND11_MODULE(_palmsim, m) {
  m.doc() = "palmsim's C++ core; use the `palmsim` package, which wraps it";
  // palmsim.InputError(ValueError): str() is the CLI's message, .field the field it names.
  static py::exception<palmsim::InputError> input_error(m, "InputError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const palmsim::InputError& e) {
      py::object error = py::handle(input_error.ptr())(e.what());
      error.attr("field") = e.field();
      PyErr_SetObject(input_error.ptr(), error.ptr());
    }
  });
  using namespace py::literals;
  m.def("predict_json", &palmsim::predict_json, "source"_a, "is_path"_a, "overrides"_a, "per_op"_a);
  m.def("simulate_json", &palmsim::simulate_json, "source"_a, "is_path"_a, "overrides"_a);
  m.def("search_json", &palmsim::search_json, "source"_a, "is_path"_a, "overrides"_a, "top"_a, "simulate_top"_a);
  m.def("validate_json", &palmsim::validate_json, "arguments"_a, "simulate"_a);
  m.def("sweep_csv", &palmsim::sweep_csv, "source"_a, "is_path"_a, "overrides"_a, "sets"_a, "simulate"_a,
        "max_combinations"_a);
  m.def("check", [](const std::string& source, bool is_path, const palmsim::Overrides& overrides) {
    palmsim::scenario_of(source, is_path, overrides);
  }, "source"_a, "is_path"_a, "overrides"_a);
}
