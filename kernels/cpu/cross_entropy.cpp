#include "kernels/cpu/cross_entropy.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace palmsim::cpu {

template <class T>
double cross_entropy_forward(const T* logits, const int32_t* targets, T* log_z, int64_t rows,
                             int64_t vocab, double w, double* plain_ce) {
  std::vector<double> loss(static_cast<size_t>(rows)), ce(static_cast<size_t>(rows));
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const T* z = logits + r * vocab;
    double m = z[0];
    for (int64_t i = 1; i < vocab; ++i) m = std::max(m, double(z[i]));
    double s = 0;
    for (int64_t i = 0; i < vocab; ++i) s += std::exp(z[i] - m);
    const double lz = m + std::log(s);
    log_z[r] = T(lz);
    ce[size_t(r)] = lz - z[targets[r]];
    loss[size_t(r)] = ce[size_t(r)] + w * lz * lz;
  });
  double total = 0, total_ce = 0;
  for (int64_t r = 0; r < rows; ++r) total += loss[size_t(r)], total_ce += ce[size_t(r)];  // row order
  if (plain_ce) *plain_ce = total_ce / double(rows);
  return total / double(rows);
}

template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* log_z, T* dlogits,
                            int64_t rows, int64_t vocab, double w) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const T* z = logits + r * vocab;
    const double lz = log_z[r];
    const double factor = (1.0 + 2.0 * w * lz) / double(rows);
    T* dz = dlogits + r * vocab;
    for (int64_t i = 0; i < vocab; ++i) dz[i] = T(std::exp(z[i] - lz) * factor);
    dz[targets[r]] -= T(1.0 / double(rows));
  });
}

template double cross_entropy_forward<float>(const float*, const int32_t*, float*, int64_t, int64_t, double, double*);
template double cross_entropy_forward<double>(const double*, const int32_t*, double*, int64_t, int64_t, double, double*);
template void cross_entropy_backward<float>(const float*, const int32_t*, const float*, float*, int64_t, int64_t, double);
template void cross_entropy_backward<double>(const double*, const int32_t*, const double*, double*, int64_t, int64_t, double);

}  // namespace palmsim::cpu
