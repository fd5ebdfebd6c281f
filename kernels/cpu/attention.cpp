#include "kernels/cpu/attention.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace palmsim::cpu {

namespace {
template <class T>
double dot(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}
}  // namespace

template <class T>
void attention_forward(const AttentionShape& s, const T* qkv, T* o, T* lse) {
  const int64_t ld = s.ld(), q = s.head_dim, group = s.heads / s.kv_heads, hq = s.heads * q;
  const double scale = 1.0 / std::sqrt(double(q));
  tbb::parallel_for(int64_t(0), s.batch * s.heads, [&](int64_t bh) {
    const int64_t b = bh / s.heads, h = bh % s.heads, g = h / group;
    std::vector<double> score(static_cast<size_t>(s.seq)), acc(static_cast<size_t>(q));
    const T* base = qkv + b * s.seq * ld;
    for (int64_t i = 0; i < s.seq; ++i) {
      const T* qi = base + i * ld + h * q;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= i; ++j) {
        score[size_t(j)] = scale * dot(qi, base + j * ld + hq + g * q, q);
        m = std::max(m, score[size_t(j)]);
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      double l = 0;
      for (int64_t j = 0; j <= i; ++j) {
        const double p = std::exp(score[size_t(j)] - m);
        l += p;
        const T* vj = base + j * ld + hq + s.kv_heads * q + g * q;
        for (int64_t c = 0; c < q; ++c) acc[size_t(c)] += p * vj[c];
      }
      T* oi = o + (b * s.seq + i) * hq + h * q;
      for (int64_t c = 0; c < q; ++c) oi[c] = T(acc[size_t(c)] / l);
      lse[(b * s.heads + h) * s.seq + i] = T(m + std::log(l));
    }
  });
}

template <class T>
void attention_backward(const AttentionShape& s, const T* qkv, const T* o, const T* lse, const T* d_o, T* dqkv) {
  const int64_t ld = s.ld(), q = s.head_dim, group = s.heads / s.kv_heads, hq = s.heads * q;
  const double scale = 1.0 / std::sqrt(double(q));
  // One task per (batch, K/V head): it owns that head's dK and dV, so no two tasks write the same
  // gradient and the sums run in a fixed order.
  tbb::parallel_for(int64_t(0), s.batch * s.kv_heads, [&](int64_t bg) {
    const int64_t b = bg / s.kv_heads, g = bg % s.kv_heads;
    const T* base = qkv + b * s.seq * ld;
    T* dbase = dqkv + b * s.seq * ld;
    std::vector<double> dk(static_cast<size_t>(s.seq * q), 0.0), dv(static_cast<size_t>(s.seq * q), 0.0),
        p(static_cast<size_t>(s.seq)), dq(static_cast<size_t>(q));
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t i = 0; i < s.seq; ++i) {
        const T* qi = base + i * ld + h * q;
        const T* doi = d_o + (b * s.seq + i) * hq + h * q;
        const T* oi = o + (b * s.seq + i) * hq + h * q;
        const double row_lse = lse[(b * s.heads + h) * s.seq + i];
        const double delta = dot(doi, oi, q);  // sum_j p_j dp_j
        std::fill(dq.begin(), dq.end(), 0.0);
        for (int64_t j = 0; j <= i; ++j) {
          const T* kj = base + j * ld + hq + g * q;
          const T* vj = base + j * ld + hq + s.kv_heads * q + g * q;
          const double pj = std::exp(scale * dot(qi, kj, q) - row_lse);
          const double ds = pj * (dot(doi, vj, q) - delta);
          for (int64_t c = 0; c < q; ++c) {
            dq[size_t(c)] += scale * ds * kj[c];
            dk[size_t(j * q + c)] += scale * ds * qi[c];
            dv[size_t(j * q + c)] += pj * doi[c];
          }
        }
        for (int64_t c = 0; c < q; ++c) dbase[i * ld + h * q + c] = T(dq[size_t(c)]);
      }
    }
    for (int64_t j = 0; j < s.seq; ++j)
      for (int64_t c = 0; c < q; ++c) {
        dbase[j * ld + hq + g * q + c] = T(dk[size_t(j * q + c)]);
        dbase[j * ld + hq + s.kv_heads * q + g * q + c] = T(dv[size_t(j * q + c)]);
      }
  });
}

template void attention_forward<float>(const AttentionShape&, const float*, float*, float*);
template void attention_forward<double>(const AttentionShape&, const double*, double*, double*);
template void attention_backward<float>(const AttentionShape&, const float*, const float*, const float*,
                                        const float*, float*);
template void attention_backward<double>(const AttentionShape&, const double*, const double*, const double*,
                                         const double*, double*);

}  // namespace palmsim::cpu
