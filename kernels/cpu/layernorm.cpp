#include "kernels/cpu/layernorm.h"

#include "kernels/palm_choices.h"

#include <tbb/parallel_for.h>

#include <cmath>
#include <vector>

namespace palmsim::cpu {

template <class T>
void layernorm_forward(const T* x, const T* g, T* y, T* mean, T* rstd, int64_t rows, int64_t d) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const T* xr = x + r * d;
    double sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += xr[i];
    const double mu = sum / d;
    double var = 0;
    for (int64_t i = 0; i < d; ++i) var += (xr[i] - mu) * (xr[i] - mu);
    const double rs = 1.0 / std::sqrt(var / d + palm_choices::kLayerNormEpsilon);
    mean[r] = T(mu);
    rstd[r] = T(rs);
    T* yr = y + r * d;
    for (int64_t i = 0; i < d; ++i) yr[i] = T((xr[i] - mu) * rs) * g[i];
  });
}

template <class T>
void layernorm_backward(const T* x, const T* g, const T* mean, const T* rstd, const T* dy, T* dx,
                        T* dg, int64_t rows, int64_t d) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const T* xr = x + r * d;
    const T* dyr = dy + r * d;
    double sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int64_t i = 0; i < d; ++i) {
      const double xhat = (xr[i] - mean[r]) * rstd[r];
      const double dxhat = double(dyr[i]) * g[i];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * xhat;
    }
    T* dxr = dx + r * d;
    for (int64_t i = 0; i < d; ++i) {
      const double xhat = (xr[i] - mean[r]) * rstd[r];
      const double dxhat = double(dyr[i]) * g[i];
      dxr[i] += T(rstd[r] * (dxhat - sum_dxhat / d - xhat * sum_dxhat_xhat / d));
    }
  });
  // The scale's gradient sums over rows: a column-wise pass, in row order for determinism.
  tbb::parallel_for(int64_t(0), d, [&](int64_t i) {
    double acc = 0;
    for (int64_t r = 0; r < rows; ++r) acc += double(dy[r * d + i]) * (x[r * d + i] - mean[r]) * rstd[r];
    dg[i] += T(acc);
  });
}

template void layernorm_forward<float>(const float*, const float*, float*, float*, float*, int64_t, int64_t);
template void layernorm_forward<double>(const double*, const double*, double*, double*, double*, int64_t, int64_t);
template void layernorm_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        float*, float*, int64_t, int64_t);
template void layernorm_backward<double>(const double*, const double*, const double*, const double*,
                                         const double*, double*, double*, int64_t, int64_t);

}  // namespace palmsim::cpu
