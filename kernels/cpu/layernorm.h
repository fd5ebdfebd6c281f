#pragma once
// LayerNorm with a scale and no bias (PaLM: "no biases" anywhere), over the last dim of x [rows, d].
#include <cstdint>

namespace palmsim::cpu {

// y = (x - mean) * rstd * g; saves mean and rstd per row for backward.
template <class T>
void layernorm_forward(const T* x, const T* g, T* y, T* mean, T* rstd, int64_t rows, int64_t d);
// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * g; dg += sum dy * xhat.
// dx is accumulated into (+=), so a residual gradient can already sit there.
template <class T>
void layernorm_backward(const T* x, const T* g, const T* mean, const T* rstd, const T* dy, T* dx,
                        T* dg, int64_t rows, int64_t d);

}  // namespace palmsim::cpu
