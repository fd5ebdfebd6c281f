#include "apps/verbs.h"
#include "model/atomic_file.h"
#include "model/input_error.h"
#include "sim/csv_table.h"
#include "sim/stack_fit.h"
#include "sim/validation.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>

namespace palmsim {

void add_fit_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("fit", "Fit a software stack's cost parameters on measured runs, with k-fold cross-validation");
  struct Args {
    std::vector<std::string> inputs;
    std::string stack, out, params;
    int folds = 5, max_evaluations = 600;
    bool force = false, rows = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("RUNS", a->inputs, "validation CSV files or folders of them (DESIGN.md 'Validation CSV')")->required();
  cmd->add_option("--stack", a->stack, "the stack to fit: its runs are the rows whose stack (or system default) it is")
      ->required();
  cmd->add_option("-o,--output", a->out, "write the fitted stack (YAML, the format of hwmodels/stacks/)");
  cmd->add_option("--params", a->params, "comma-separated parameters to fit (at most 8; none: judge the stack as it is)");
  cmd->add_option("--folds", a->folds, "cross-validation folds (default 5)");
  cmd->add_option("--max-evaluations", a->max_evaluations, "objective evaluations per fit (default 600)");
  cmd->add_flag("--force", a->force, "replace the output file if it exists");
  cmd->add_flag("--rows", a->rows, "also print each run's held-out (cross-validated) error");
  cmd->callback([&action, a] {
    action = [a] {
      const Stack base = stack_preset(a->stack, "--stack");
      if (!a->out.empty()) check_output_path(a->out, a->force, "--output");
      if (a->max_evaluations < 10 || a->max_evaluations > 100000)
        throw InputError("--max-evaluations", "must be from 10 to 100000");
      FitOptions options;
      options.folds = a->folds;
      options.max_evaluations = a->max_evaluations;
      for (size_t start = 0; !a->params.empty() && start <= a->params.size();) {
        const size_t end = std::min(a->params.find(',', start), a->params.size());
        if (end > start) options.parameters.push_back(a->params.substr(start, end - start));
        start = end + 1;
      }
      std::vector<FitRun> runs;
      std::vector<std::string> unpublished_mesh;
      for (const std::string& file : validation_files(a->inputs)) {
        const auto found = fit_runs(file, validate_table(read_validation_csv(file)), base.name, &unpublished_mesh);
        runs.insert(runs.end(), found.begin(), found.end());
      }
      if (runs.empty())
        throw InputError("--stack", "no modelled, measured run with a published mesh in RUNS uses stack '" + base.name + "'");
      FitResult r = fit_stack(runs, base, options);
      if (!unpublished_mesh.empty())
        r.fitted.band.fitted_on += fmt::format("; {} runs whose mesh search chose not fitted", unpublished_mesh.size());

      const bool judged_only = options.parameters.size() == 1 && options.parameters[0] == "none";
      std::cout << (judged_only ? fmt::format("stack {} judged as given on {} runs (nothing fitted)\n", base.name,
                                              r.all.runs)
                                : fmt::format("fit of stack {} on {} runs ({} objective evaluations, {}-fold "
                                              "cross-validation)\n",
                                              base.name, r.all.runs, r.evaluations, options.folds));
      std::cout << fmt::format("  {:<36} {:>6} {:>14} {:>14} {:>14}\n", "file", "runs", "before |err| %",
                               "fitted |err| %", "cv |err| %");
      for (const FileErrors& e : r.files)
        std::cout << fmt::format("  {:<36} {:>6} {:>14.2f} {:>14.2f} {:>14.2f}\n", e.file, e.runs, e.before_pct,
                                 e.after_pct, e.cv_pct);
      std::cout << fmt::format("  {:<36} {:>6} {:>14.2f} {:>14.2f} {:>14.2f}\n", r.all.file, r.all.runs,
                               r.all.before_pct, r.all.after_pct, r.all.cv_pct);
      std::cout << fmt::format("  90 % band of held-out errors: {:+.1f} % to {:+.1f} %\n", r.fitted.band.p05_pct,
                               r.fitted.band.p95_pct);
      if (!unpublished_mesh.empty()) {
        std::cout << fmt::format("  not fitted, their mesh (tp, pp, dp) unpublished and chosen by search ({} runs):\n",
                                 unpublished_mesh.size());
        for (const std::string& id : unpublished_mesh) std::cout << "    " << id << "\n";
      }
      if (a->rows) {
        std::cout << fmt::format("  {:<56} {:>5} {:>14}\n", "run", "fold", "cv err %");
        for (size_t i = 0; i < runs.size(); ++i)
          std::cout << fmt::format("  {:<56} {:>5} {:>+14.2f}\n", runs[i].id, fold_of(runs[i].id, options.folds),
                                   r.cv_residual_pct[i]);
      }
      std::cout << "  parameters (before -> fitted):\n";
      for (const StackParameter& p : stack_parameters())
        std::cout << fmt::format("    {:<28} {:>10.4g} -> {:<10.4g} [{:g}, {:g}]\n", p.key, base.*(p.field) / p.scale,
                                 r.fitted.*(p.field) / p.scale, p.lo, p.hi);
      if (!a->out.empty()) {
        write_file_atomically(
            "# Fitted by `palmsim fit` (least squares on log step time, bounded; k-fold cross-validated).\n" +
                stack_yaml(r.fitted),
            a->out, "--output");
        std::cout << "wrote " << a->out << "\n";
      }
      return 0;
    };
  });
}

}  // namespace palmsim
