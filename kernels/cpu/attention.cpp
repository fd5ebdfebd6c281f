#include "kernels/cpu/attention.h"

#include "kernels/cpu/blas.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace palmsim::cpu {

namespace {

// Causal probabilities of one head, rebuilt from the scores: p[i][j] = exp(s[i][j] - lse[i]) for
// j <= i, 0 above the diagonal. `scores` holds scale * Q K^T on entry and P on return.
template <class T>
void probabilities_from_lse(T* scores, const T* lse, int64_t seq) {
  for (int64_t i = 0; i < seq; ++i) {
    T* row = scores + i * seq;
    for (int64_t j = 0; j <= i; ++j) row[j] = T(std::exp(double(row[j]) - lse[i]));
    std::fill(row + i + 1, row + seq, T(0));
  }
}

}  // namespace

template <class T>
void attention_forward(const AttentionShape& s, const T* qkv, T* o, T* lse) {
  const int64_t ld = s.ld(), q = s.head_dim, group = s.heads / s.kv_heads, hq = s.heads * q, S = s.seq;
  const T scale = T(1.0 / std::sqrt(double(q)));
  tbb::parallel_for(int64_t(0), s.batch * s.heads, [&](int64_t bh) {
    const int64_t b = bh / s.heads, h = bh % s.heads, g = h / group;
    const T* base = qkv + b * S * ld;
    T* row_lse = lse + (b * s.heads + h) * S;
    // One head's S x S scores live only inside this task; nothing of size T x T is kept.
    std::vector<T> p(static_cast<size_t>(S * S));
    gemm_serial(false, true, S, S, q, scale, base + h * q, ld, base + hq + g * q, ld, T(0), p.data(), S);
    for (int64_t i = 0; i < S; ++i) {
      const T* row = p.data() + i * S;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= i; ++j) m = std::max(m, double(row[j]));
      double l = 0;
      for (int64_t j = 0; j <= i; ++j) l += std::exp(row[j] - m);
      row_lse[i] = T(m + std::log(l));
    }
    probabilities_from_lse(p.data(), row_lse, S);
    gemm_serial(false, false, S, q, S, T(1), p.data(), S, base + hq + s.kv_heads * q + g * q, ld, T(0),
                o + b * S * hq + h * q, hq);
  });
}

template <class T>
void attention_backward(const AttentionShape& s, const T* qkv, const T* o, const T* lse, const T* d_o, T* dqkv) {
  const int64_t ld = s.ld(), q = s.head_dim, group = s.heads / s.kv_heads, hq = s.heads * q, S = s.seq;
  const T scale = T(1.0 / std::sqrt(double(q)));
  // One task per (batch, K/V head): it owns that head's dK and dV, so no two tasks write the same
  // gradient and the sums run in a fixed order.
  tbb::parallel_for(int64_t(0), s.batch * s.kv_heads, [&](int64_t bg) {
    const int64_t b = bg / s.kv_heads, g = bg % s.kv_heads;
    const T* base = qkv + b * S * ld;
    const T* k = base + hq + g * q;
    const T* v = base + hq + s.kv_heads * q + g * q;
    T* dbase = dqkv + b * S * ld;
    std::vector<T> p(static_cast<size_t>(S * S)), dp(p.size());
    std::vector<T> dk(static_cast<size_t>(S * q), T(0)), dv(dk.size(), T(0));
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const T* qh = base + h * q;
      const T* doh = d_o + b * S * hq + h * q;
      const T* oh = o + b * S * hq + h * q;
      gemm_serial(false, true, S, S, q, scale, qh, ld, k, ld, T(0), p.data(), S);
      probabilities_from_lse(p.data(), lse + (b * s.heads + h) * S, S);
      gemm_serial(false, true, S, S, q, T(1), doh, hq, v, ld, T(0), dp.data(), S);  // dP = dO V^T
      for (int64_t i = 0; i < S; ++i) {
        double delta = 0;  // sum_j p_ij dp_ij = dO_i . O_i
        for (int64_t c = 0; c < q; ++c) delta += double(doh[i * hq + c]) * oh[i * hq + c];
        T* ds = dp.data() + i * S;
        const T* pi = p.data() + i * S;
        for (int64_t j = 0; j < S; ++j) ds[j] = T(pi[j] * (ds[j] - delta));  // zero above the diagonal
      }
      gemm_serial(false, false, S, q, S, scale, dp.data(), S, k, ld, T(0), dbase + h * q, ld);  // dQ
      gemm_serial(true, false, S, q, S, scale, dp.data(), S, qh, ld, T(1), dk.data(), q);        // dK
      gemm_serial(true, false, S, q, S, T(1), p.data(), S, doh, hq, T(1), dv.data(), q);         // dV
    }
    for (int64_t j = 0; j < S; ++j)
      for (int64_t c = 0; c < q; ++c) {
        dbase[j * ld + hq + g * q + c] = dk[size_t(j * q + c)];
        dbase[j * ld + hq + s.kv_heads * q + g * q + c] = dv[size_t(j * q + c)];
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
