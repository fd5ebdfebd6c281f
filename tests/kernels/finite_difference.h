#pragma once
// Central finite differences in double precision: the independent reference for every backward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace palmsim::testing_fd {

inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

// Checks analytic[i] against (f(x + h e_i) - f(x - h e_i)) / 2h for every i of x (or every
// `stride`-th), with a relative-or-absolute tolerance.
inline void expect_gradient(std::vector<double>& x, const std::function<double()>& f,
                            const std::vector<double>& analytic, const char* what, size_t stride = 1,
                            double tol = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const double h = 1e-5;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f();
    x[i] = keep - h;
    const double down = f();
    x[i] = keep;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, tol * std::max(1.0, std::abs(numeric))) << what << " [" << i << "]";
  }
}

// sum_i w_i y_i: a scalar loss whose gradient with respect to y is w.
inline double weighted_sum(const std::vector<double>& y, const std::vector<double>& w) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * w[i];
  return s;
}

}  // namespace palmsim::testing_fd
