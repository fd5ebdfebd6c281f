#pragma once
// `palmsim fit`: fits a software stack's cost parameters (hwmodels/stack.h) on measured runs of
// that stack, by bounded least squares on log step time (NLopt's BOBYQA inside the physical
// bounds of each parameter), and judges the fit honestly by k-fold cross-validation: every run is
// predicted by a fit that never saw it. The cross-validated residuals give the stack's band.
#include "sim/scenario.h"
#include "sim/validation.h"

#include <string>
#include <vector>

namespace palmsim {

struct FitRun {
  std::string file;  // the validation file the run came from (its name, no folder)
  std::string id;
  Scenario scenario;  // layout completed once by validate; the stack's parameters vary in the fit
  double measured_step_s = 0;
};

// The modelled, measured rows of `rows` whose stack is `stack_name` and whose mesh (tp, pp, dp) is
// published. A row whose mesh search chose is validated but not fitted: its error mixes the layout
// the run really used, which nobody knows, with the stack's costs, and a fit would bend the costs
// to absorb the layout (NeMo's 512K and 1M rows without context parallelism, 10 % and 3 % MFU,
// against a search-chosen mesh at 20 %+). Their ids go to `unpublished_mesh` when given.
std::vector<FitRun> fit_runs(const std::string& file, const std::vector<ValidationRow>& rows,
                             const std::string& stack_name, std::vector<std::string>* unpublished_mesh = nullptr);

// Predicted step time of a run under `stack` (the run's own stack with other parameters).
double fit_predicted_step_s(const FitRun& run, const Stack& stack);

struct FitOptions {
  // Keys of stack_parameters(); empty = all; {"none"} = fit nothing, only judge the stack as it
  // is (its errors are then held-out errors already, and give the band).
  std::vector<std::string> parameters;
  int folds = 5;
  int max_evaluations = 600;
};

struct FileErrors {
  std::string file;
  int runs = 0;
  double before_pct = 0;  // mean |err_step| with the stack as given
  double after_pct = 0;   // fitted on every run, judged on the same runs (optimistic)
  double cv_pct = 0;      // each run predicted by the fit of the folds without it
};

struct FitResult {
  Stack fitted;                   // fitted on every run; band and ranges from cross-validation
  std::vector<FileErrors> files;  // per file, in the order first seen
  FileErrors all;
  std::vector<double> cv_residual_pct;  // (predicted - measured) / measured per run, held out
  int evaluations = 0;
};

// Fits `base`'s parameters on `runs` and cross-validates. Throws InputError for an unknown
// parameter name, fewer runs than folds, or folds < 2.
FitResult fit_stack(const std::vector<FitRun>& runs, const Stack& base, const FitOptions& options);

// The fold (0..folds-1) a run belongs to: a hash of its id, so folds do not depend on row order.
int fold_of(const std::string& id, int folds);

}  // namespace palmsim
