#pragma once
// SwiGLU (Shazeer 2020; PaLM Sec. 2): h = Swish(xW) * (xV). `u` holds [xW | xV] per row (2f wide).
#include <cstdint>

namespace palmsim::cpu {

template <class T>
void swiglu_forward(const T* u, T* h, int64_t rows, int64_t f);
// du = [dh * xV * swish'(xW) | dh * swish(xW)]; overwrites du.
template <class T>
void swiglu_backward(const T* u, const T* dh, T* du, int64_t rows, int64_t f);

}  // namespace palmsim::cpu
