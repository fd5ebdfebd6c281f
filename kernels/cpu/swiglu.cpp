#include "kernels/cpu/swiglu.h"

#include <tbb/parallel_for.h>

#include <cmath>

namespace palmsim::cpu {

template <class T>
void swiglu_forward(const T* u, T* h, int64_t rows, int64_t f) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const T* a = u + r * 2 * f;
    const T* b = a + f;
    for (int64_t i = 0; i < f; ++i) {
      const double sig = 1.0 / (1.0 + std::exp(-double(a[i])));
      h[r * f + i] = T(a[i] * sig * b[i]);
    }
  });
}

template <class T>
void swiglu_backward(const T* u, const T* dh, T* du, int64_t rows, int64_t f) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const T* a = u + r * 2 * f;
    const T* b = a + f;
    T* da = du + r * 2 * f;
    T* db = da + f;
    for (int64_t i = 0; i < f; ++i) {
      const double sig = 1.0 / (1.0 + std::exp(-double(a[i])));
      const double swish = a[i] * sig;
      const double g = dh[r * f + i];
      da[i] = T(g * b[i] * (sig + a[i] * sig * (1.0 - sig)));
      db[i] = T(g * swish);
    }
  });
}

template void swiglu_forward<float>(const float*, float*, int64_t, int64_t);
template void swiglu_forward<double>(const double*, double*, int64_t, int64_t);
template void swiglu_backward<float>(const float*, const float*, float*, int64_t, int64_t);
template void swiglu_backward<double>(const double*, const double*, double*, int64_t, int64_t);

}  // namespace palmsim::cpu
