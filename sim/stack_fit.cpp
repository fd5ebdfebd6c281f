#include "sim/stack_fit.h"

#include "model/accounting.h"
#include "model/input_error.h"
#include "sim/predict.h"

#include <fmt/format.h>
#include <nlopt.hpp>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace palmsim {

std::vector<FitRun> fit_runs(const std::string& file, const std::vector<ValidationRow>& rows,
                             const std::string& stack_name, std::vector<std::string>* unpublished_mesh) {
  std::vector<FitRun> out;
  const std::string name = std::filesystem::path(file).filename().string();
  for (const ValidationRow& r : rows) {
    if (!r.error.empty() || !r.scenario || r.measured_step_s <= 0) continue;
    if (r.scenario->system.stack.name != stack_name) continue;
    if (!r.mesh_published) {
      if (unpublished_mesh) unpublished_mesh->push_back(r.id);
      continue;
    }
    out.push_back({name, r.id, *r.scenario, r.measured_step_s});
  }
  return out;
}

double fit_predicted_step_s(const FitRun& run, const Stack& stack) {
  Scenario s = run.scenario;
  // The fit varies the stack's cost parameters only: the row's own choices (its stack_overrides,
  // such as torchtitan without torch.compile) stay.
  for (const StackParameter& p : stack_parameters()) s.system.stack.*p.field = stack.*p.field;
  return predict(s, s.layout).step_time_s;
}

int fold_of(const std::string& id, int folds) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return int(h % uint64_t(folds));
}

namespace {

double pct_error(double predicted, double measured) { return (predicted - measured) / measured * 100.0; }

std::vector<const StackParameter*> chosen_parameters(const std::vector<std::string>& names) {
  std::vector<const StackParameter*> out;
  if (names.size() == 1 && names[0] == "none") return out;  // judge the stack as it is
  if (names.empty()) {
    for (const auto& p : stack_parameters()) out.push_back(&p);
    return out;
  }
  std::string allowed;
  for (const auto& p : stack_parameters()) allowed += (allowed.empty() ? "" : ", ") + std::string(p.key);
  for (const std::string& n : names) {
    auto it = std::find_if(stack_parameters().begin(), stack_parameters().end(),
                           [&](const StackParameter& p) { return n == p.key; });
    if (it == stack_parameters().end())
      throw InputError("--params", "'" + n + "' is not a stack parameter; allowed: none (alone), " + allowed);
    if (std::find(out.begin(), out.end(), &*it) != out.end()) throw InputError("--params", "'" + n + "' is named twice");
    out.push_back(&*it);
  }
  if (out.size() > 8) throw InputError("--params", "at most 8 parameters");
  return out;
}

// Normalized coordinates: x in [0, 1] maps onto each parameter's [lo, hi].
Stack with_parameters(const Stack& base, const std::vector<const StackParameter*>& params, const double* x) {
  Stack s = base;
  for (size_t i = 0; i < params.size(); ++i) {
    const StackParameter& p = *params[i];
    s.*(p.field) = (p.lo + x[i] * (p.hi - p.lo)) * p.scale;
  }
  return s;
}

std::vector<double> normalized(const Stack& s, const std::vector<const StackParameter*>& params) {
  std::vector<double> x;
  for (const StackParameter* p : params)
    x.push_back(std::clamp((s.*(p->field) / p->scale - p->lo) / (p->hi - p->lo), 0.0, 1.0));
  return x;
}

// Predicted step times of `subset` under `stack`, in parallel; order kept, so sums are exact.
std::vector<double> predictions(const std::vector<FitRun>& runs, const std::vector<size_t>& subset,
                                const Stack& stack) {
  std::vector<double> out(subset.size());
  tbb::parallel_for(size_t(0), subset.size(), [&](size_t i) { out[i] = fit_predicted_step_s(runs[subset[i]], stack); });
  return out;
}

struct Objective {
  const std::vector<FitRun>* runs;
  const std::vector<size_t>* subset;
  const Stack* base;
  const std::vector<const StackParameter*>* params;
  int evaluations = 0;
};

// Mean squared log ratio of predicted to measured step time.
double objective(unsigned n, const double* x, double*, void* data) {
  auto* o = static_cast<Objective*>(data);
  ++o->evaluations;
  const Stack s = with_parameters(*o->base, *o->params, x);
  (void)n;
  const std::vector<double> pred = predictions(*o->runs, *o->subset, s);
  double sum = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const double r = std::log(pred[i] / (*o->runs)[(*o->subset)[i]].measured_step_s);
    sum += r * r;
  }
  return sum / double(pred.size());
}

Stack fit_on(const std::vector<FitRun>& runs, const std::vector<size_t>& subset, const Stack& base,
             const std::vector<const StackParameter*>& params, int max_evaluations, int& evaluations) {
  if (params.empty()) return base;
  Objective o{&runs, &subset, &base, &params};
  std::vector<double> x = normalized(base, params);
  const unsigned n = unsigned(params.size());
  // BOBYQA (Powell 2009): a bounded quadratic-model method without derivatives, made for smooth
  // least squares; Nelder-Mead then polishes around the kinks that max(kernel, floor) leaves.
  for (nlopt::algorithm algorithm : {n >= 2 ? nlopt::LN_BOBYQA : nlopt::LN_NELDERMEAD, nlopt::LN_NELDERMEAD}) {
    nlopt::opt opt(algorithm, n);
    opt.set_lower_bounds(std::vector<double>(n, 0.0));
    opt.set_upper_bounds(std::vector<double>(n, 1.0));
    opt.set_initial_step(std::vector<double>(n, 0.1));
    opt.set_min_objective(objective, &o);
    opt.set_maxeval(max_evaluations / 2);
    opt.set_xtol_abs(1e-4);
    opt.set_ftol_rel(1e-7);
    double value = 0;
    try {
      opt.optimize(x, value);
    } catch (const nlopt::roundoff_limited&) {
      // The best point so far is in x: good enough.
    } catch (const std::runtime_error&) {
      // NLopt gave up (e.g. no progress); x holds its best point.
    }
  }
  evaluations += o.evaluations;
  return with_parameters(base, params, x.data());
}

double mean_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::abs(x);
  return v.empty() ? 0.0 : s / double(v.size());
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = size_t(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

}  // namespace

FitResult fit_stack(const std::vector<FitRun>& runs, const Stack& base, const FitOptions& options) {
  const auto params = chosen_parameters(options.parameters);
  if (options.folds < 2) throw InputError("--folds", "must be at least 2");
  if (runs.empty()) throw InputError("RUNS", "no runs of stack '" + base.name + "'");
  // Nothing fitted: every run is already held out, whatever their number.
  if (!params.empty() && int(runs.size()) < options.folds)
    throw InputError("RUNS", fmt::format("{} runs of stack '{}' for {} folds; need at least one run per fold",
                                         runs.size(), base.name, options.folds));
  FitResult result;
  std::vector<size_t> all(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) all[i] = i;

  const std::vector<double> before = predictions(runs, all, base);
  result.fitted = fit_on(runs, all, base, params, options.max_evaluations, result.evaluations);
  const std::vector<double> after = predictions(runs, all, result.fitted);

  // k-fold: each fold predicted by the fit of the other folds.
  std::vector<double> held_out = params.empty() ? before : std::vector<double>(runs.size(), 0.0);
  for (int k = 0; k < (params.empty() ? 0 : options.folds); ++k) {
    std::vector<size_t> train, test;
    for (size_t i = 0; i < runs.size(); ++i) (fold_of(runs[i].id, options.folds) == k ? test : train).push_back(i);
    if (test.empty()) continue;
    if (train.empty()) throw InputError("--folds", "a fold holds every run; use fewer folds");
    const Stack fold_fit = fit_on(runs, train, base, params, options.max_evaluations, result.evaluations);
    const std::vector<double> p = predictions(runs, test, fold_fit);
    for (size_t i = 0; i < test.size(); ++i) held_out[test[i]] = p[i];
  }

  // Errors per file and over all runs.
  std::map<std::string, size_t> index;
  std::vector<std::vector<double>> b, a, c;
  for (size_t i = 0; i < runs.size(); ++i) {
    auto [it, added] = index.emplace(runs[i].file, result.files.size());
    if (added) {
      result.files.push_back({runs[i].file});
      b.emplace_back(), a.emplace_back(), c.emplace_back();
    }
    const double m = runs[i].measured_step_s;
    b[it->second].push_back(pct_error(before[i], m));
    a[it->second].push_back(pct_error(after[i], m));
    c[it->second].push_back(pct_error(held_out[i], m));
    result.cv_residual_pct.push_back(pct_error(held_out[i], m));
  }
  std::vector<double> all_b, all_a;
  for (size_t f = 0; f < result.files.size(); ++f) {
    FileErrors& e = result.files[f];
    e.runs = int(b[f].size());
    e.before_pct = mean_abs(b[f]);
    e.after_pct = mean_abs(a[f]);
    e.cv_pct = mean_abs(c[f]);
    all_b.insert(all_b.end(), b[f].begin(), b[f].end());
    all_a.insert(all_a.end(), a[f].begin(), a[f].end());
  }
  result.all = {"all files", int(runs.size()), mean_abs(all_b), mean_abs(all_a), mean_abs(result.cv_residual_pct)};

  // Provenance, band and validated range travel with the fitted stack.
  StackBand& band = result.fitted.band;
  band = StackBand{};
  band.runs = int(runs.size());
  band.p05_pct = percentile(result.cv_residual_pct, 0.05);
  band.p95_pct = percentile(result.cv_residual_pct, 0.95);
  std::string on;
  for (const FileErrors& e : result.files) {
    on += (on.empty() ? "" : ", ") + fmt::format("{} ({} runs)", e.file, e.runs);
    band.cv_mean_abs_err_pct[e.file] = e.cv_pct;
  }
  band.fitted_on = on + (params.empty() ? std::string("; nothing fitted, judged as given")
                                        : fmt::format("; {}-fold cross-validated", options.folds));
  band.min_chips = band.max_chips = double(runs.front().scenario.n_chips);
  band.min_params = band.max_params = double(parameter_count(runs.front().scenario.model));
  for (const FitRun& r : runs) {
    band.min_chips = std::min(band.min_chips, double(r.scenario.n_chips));
    band.max_chips = std::max(band.max_chips, double(r.scenario.n_chips));
    band.min_params = std::min(band.min_params, double(parameter_count(r.scenario.model)));
    band.max_params = std::max(band.max_params, double(parameter_count(r.scenario.model)));
    if (std::find(band.systems.begin(), band.systems.end(), r.scenario.system.name) == band.systems.end())
      band.systems.push_back(r.scenario.system.name);
  }
  std::sort(band.systems.begin(), band.systems.end());
  return result;
}

}  // namespace palmsim
