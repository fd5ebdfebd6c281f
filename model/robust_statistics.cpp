#include "model/robust_statistics.h"

#include <algorithm>
#include <cmath>

namespace palmsim {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

MedianInterval median_interval(std::vector<double> v, double confidence) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const int n = int(v.size());
  // P(Binomial(n, 1/2) < j) for j = 1, 2, ...: the chance that fewer than j values fall below
  // the true median, which is the chance the median lies below x(j).
  auto below = [n](int j) {
    double p = 0, term = std::pow(0.5, n);  // P(X = 0)
    for (int i = 0; i < j; ++i) {
      p += term;
      term *= double(n - i) / double(i + 1);
    }
    return p;
  };
  int best = 1;
  for (int j = 2; 2 * j <= n + 1; ++j)
    if (1 - 2 * below(j) >= confidence) best = j;
  return {v[size_t(best - 1)], v[size_t(n - best)], 1 - 2 * below(best)};
}

}  // namespace palmsim
