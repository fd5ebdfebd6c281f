#pragma once
// Statistics of repeated timings on a noisy machine: the median, and a distribution-free
// confidence interval for it. Calibration, bench-step and validate-local use them on both
// backends (hwmodels/machine_drift.h says why medians).
#include <vector>

namespace palmsim {

// The median of `values` (the mean of the middle two for an even count); 0 for none.
double median_of(std::vector<double> values);

// The arithmetic mean of `values`; 0 for none. What a kernel costs a step on average: a step is
// the sum of a few hundred kernel calls, so by the central limit theorem its median sits at the sum
// of their means, not of their medians. Kernel timings on a shared machine are skewed to the slow
// side (a neighbour's burst only ever slows a call): on train-tiny (2 EPYC cores) the step's ops'
// means summed to 1.3 % more than their medians while the step's own mean and median differed by
// 0.2 %, and a calibration of medians predicted every step 2-3 % fast.
double mean_of(const std::vector<double>& values);

// A confidence interval for the median of the distribution `values` were drawn from: the order
// statistics x(j) <= x(n+1-j) with the largest j whose coverage 1 - 2 P(Binomial(n, 1/2) < j)
// is still >= `confidence`. With fewer than 6 values no pair reaches 95 %: the interval is then
// the full range and `confidence` the coverage it actually has.
struct MedianInterval {
  double low = 0, high = 0;
  double confidence = 0;  // the coverage reached
};
MedianInterval median_interval(std::vector<double> values, double confidence = 0.95);

}  // namespace palmsim
