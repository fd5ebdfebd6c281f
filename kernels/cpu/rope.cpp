#include "kernels/cpu/rope.h"

#include "kernels/palm_choices.h"

#include <tbb/parallel_for.h>

#include <cmath>

namespace palmsim::cpu {

namespace {
template <class T>
void rotate(T* x, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq, const int32_t* positions,
            double sign) {
  const int64_t half = q / 2;
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const double pos = double(positions ? positions[r % seq] : r % seq);
    for (int64_t i = 0; i < half; ++i) {
      const double angle = sign * pos * std::pow(palm_choices::kRopeBase, -2.0 * double(i) / double(q));
      const double c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        T* v = x + r * ld + h * q;
        const double a = v[i], b = v[i + half];
        v[i] = T(a * c - b * s);
        v[i + half] = T(a * s + b * c);
      }
    }
  });
}
}  // namespace

template <class T>
void rope_forward(T* x, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq, const int32_t* positions) {
  rotate(x, rows, ld, heads, q, seq, positions, 1.0);
}

template <class T>
void rope_backward(T* dx, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq, const int32_t* positions) {
  rotate(dx, rows, ld, heads, q, seq, positions, -1.0);
}

template void rope_forward<float>(float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);
template void rope_forward<double>(double*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);
template void rope_backward<float>(float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);
template void rope_backward<double>(double*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);

}  // namespace palmsim::cpu
