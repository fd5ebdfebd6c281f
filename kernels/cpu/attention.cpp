#include "kernels/cpu/attention.h"

#include "kernels/cpu/blas.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace palmsim::cpu {

namespace {

// The last key row i sees under the causal mask (-1: none): keys sit at ascending positions
// (key_positions, or 0, 1, ...), so the visible ones are a prefix.
int64_t last_visible_key(const QueryRows& rows, int64_t i, const int32_t* key_positions, int64_t keys) {
  const int64_t position = rows.position(i);
  if (!key_positions) return std::min(position, keys - 1);
  return int64_t(std::upper_bound(key_positions, key_positions + keys, position) - key_positions) - 1;
}

// Causal probabilities of one head, rebuilt from the scores: p[i][j] = exp(s[i][j] - lse[i]) for
// the keys row i sees, 0 for the rest. `scores` (rows.count x keys) holds scale * Q K^T on entry
// and P on return.
template <class T>
void probabilities_from_lse(T* scores, const T* lse, const QueryRows& rows, int64_t keys, const int32_t* key_positions) {
  for (int64_t i = 0; i < rows.count; ++i) {
    T* row = scores + i * keys;
    const int64_t last = last_visible_key(rows, i, key_positions, keys);
    for (int64_t j = 0; j <= last; ++j) row[j] = T(std::exp(double(row[j]) - lse[i]));
    std::fill(row + last + 1, row + keys, T(0));
  }
}

}  // namespace

template <class T>
void attention_rows_forward(const AttentionShape& s, const QueryRows& rows, const T* q, int64_t ldq, const T* kv,
                            int64_t ldkv, T* o, T* lse, const int32_t* key_positions) {
  const int64_t hd = s.head_dim, group = s.heads / s.kv_heads, hq = s.heads * hd, S = s.seq, R = rows.count;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  tbb::parallel_for(int64_t(0), s.batch * s.heads, [&](int64_t bh) {
    const int64_t b = bh / s.heads, h = bh % s.heads, g = h / group;
    const T* qb = q + b * R * ldq;
    const T* kb = kv + b * S * ldkv;
    T* row_lse = lse + (b * s.heads + h) * R;
    // One head's R x S scores live only inside this task; nothing of size T x T is kept.
    std::vector<T> p(static_cast<size_t>(R * S));
    gemm_serial(false, true, R, S, hd, scale, qb + h * hd, ldq, kb + g * hd, ldkv, T(0), p.data(), S);
    for (int64_t i = 0; i < R; ++i) {
      const T* row = p.data() + i * S;
      const int64_t last = last_visible_key(rows, i, key_positions, S);
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= last; ++j) m = std::max(m, double(row[j]));
      double l = 0;
      for (int64_t j = 0; j <= last; ++j) l += std::exp(row[j] - m);
      row_lse[i] = last < 0 ? T(-std::numeric_limits<double>::infinity()) : T(m + std::log(l));
    }
    probabilities_from_lse(p.data(), row_lse, rows, S, key_positions);
    gemm_serial(false, false, R, hd, S, T(1), p.data(), S, kb + s.kv_heads * hd + g * hd, ldkv, T(0),
                o + b * R * hq + h * hd, hq);
  });
}

template <class T>
void attention_rows_backward(const AttentionShape& s, const QueryRows& rows, const T* q, int64_t ldq, const T* kv,
                             int64_t ldkv, const T* o, const T* lse, const T* d_o, T* dq, T* dkv,
                             const int32_t* key_positions) {
  const int64_t hd = s.head_dim, group = s.heads / s.kv_heads, hq = s.heads * hd, S = s.seq, R = rows.count;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  // One task per (batch, K/V head): it owns that head's dK and dV, so no two tasks write the same
  // gradient and the sums run in a fixed order.
  tbb::parallel_for(int64_t(0), s.batch * s.kv_heads, [&](int64_t bg) {
    const int64_t b = bg / s.kv_heads, g = bg % s.kv_heads;
    const T* qb = q + b * R * ldq;
    const T* k = kv + b * S * ldkv + g * hd;
    const T* v = kv + b * S * ldkv + s.kv_heads * hd + g * hd;
    std::vector<T> p(static_cast<size_t>(R * S)), dp(p.size());
    std::vector<T> dk(static_cast<size_t>(S * hd), T(0)), dv(dk.size(), T(0));
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const T* qh = qb + h * hd;
      const T* doh = d_o + b * R * hq + h * hd;
      const T* oh = o + b * R * hq + h * hd;
      gemm_serial(false, true, R, S, hd, scale, qh, ldq, k, ldkv, T(0), p.data(), S);
      probabilities_from_lse(p.data(), lse + (b * s.heads + h) * R, rows, S, key_positions);
      gemm_serial(false, true, R, S, hd, T(1), doh, hq, v, ldkv, T(0), dp.data(), S);  // dP = dO V^T
      for (int64_t i = 0; i < R; ++i) {
        double delta = 0;  // sum_j p_ij dp_ij = dO_i . O_i
        for (int64_t c = 0; c < hd; ++c) delta += double(doh[i * hq + c]) * oh[i * hq + c];
        T* ds = dp.data() + i * S;
        const T* pi = p.data() + i * S;
        for (int64_t j = 0; j < S; ++j) ds[j] = T(pi[j] * (ds[j] - delta));  // zero past the row's position
      }
      gemm_serial(false, false, R, hd, S, scale, dp.data(), S, k, ldkv, T(0), dq + b * R * ldq + h * hd, ldq);  // dQ
      gemm_serial(true, false, S, hd, R, scale, dp.data(), S, qh, ldq, T(1), dk.data(), hd);  // dK
      gemm_serial(true, false, S, hd, R, T(1), p.data(), S, doh, hq, T(1), dv.data(), hd);    // dV
    }
    T* dkb = dkv + b * S * ldkv;
    for (int64_t j = 0; j < S; ++j)
      for (int64_t c = 0; c < hd; ++c) {
        dkb[j * ldkv + g * hd + c] = dk[size_t(j * hd + c)];
        dkb[j * ldkv + s.kv_heads * hd + g * hd + c] = dv[size_t(j * hd + c)];
      }
  });
}

template <class T>
void merge_attention_block(const AttentionShape& s, int64_t count, T* o, T* lse, const T* o_block, const T* lse_block) {
  const int64_t hd = s.head_dim, hq = s.heads * hd;
  tbb::parallel_for(int64_t(0), s.batch * s.heads, [&](int64_t bh) {
    const int64_t b = bh / s.heads, h = bh % s.heads;
    for (int64_t i = 0; i < count; ++i) {
      T& l = lse[bh * count + i];
      const double a = double(l), c = double(lse_block[bh * count + i]);
      if (c == -std::numeric_limits<double>::infinity()) continue;  // the block is hidden from the row
      const double merged = std::max(a, c) + std::log1p(std::exp(-std::abs(a - c)));
      const double wa = std::exp(a - merged), wc = std::exp(c - merged);
      T* oi = o + (b * count + i) * hq + h * hd;
      const T* ci = o_block + (b * count + i) * hq + h * hd;
      for (int64_t k = 0; k < hd; ++k) oi[k] = T(wa * double(oi[k]) + wc * double(ci[k]));
      l = T(merged);
    }
  });
}

template <class T>
void attention_forward(const AttentionShape& s, const T* qkv, T* o, T* lse) {
  const int64_t ld = s.ld();
  attention_rows_forward(s, QueryRows{s.seq}, qkv, ld, qkv + s.heads * s.head_dim, ld, o, lse);
}

template <class T>
void attention_backward(const AttentionShape& s, const T* qkv, const T* o, const T* lse, const T* d_o, T* dqkv) {
  const int64_t ld = s.ld(), hq = s.heads * s.head_dim;
  attention_rows_backward(s, QueryRows{s.seq}, qkv, ld, qkv + hq, ld, o, lse, d_o, dqkv, dqkv + hq);
}

#define PALMSIM_ATTENTION(T)                                                                                         \
  template void attention_forward<T>(const AttentionShape&, const T*, T*, T*);                                       \
  template void attention_backward<T>(const AttentionShape&, const T*, const T*, const T*, const T*, T*);            \
  template void attention_rows_forward<T>(const AttentionShape&, const QueryRows&, const T*, int64_t, const T*,      \
                                          int64_t, T*, T*, const int32_t*);                                          \
  template void attention_rows_backward<T>(const AttentionShape&, const QueryRows&, const T*, int64_t, const T*,     \
                                           int64_t, const T*, const T*, const T*, T*, T*, const int32_t*);           \
  template void merge_attention_block<T>(const AttentionShape&, int64_t, T*, T*, const T*, const T*);
PALMSIM_ATTENTION(float)
PALMSIM_ATTENTION(double)
#undef PALMSIM_ATTENTION

}  // namespace palmsim::cpu
