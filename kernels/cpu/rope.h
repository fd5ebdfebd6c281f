#pragma once
// Rotary position embedding (Su et al.; PaLM Sec. 2) on heads of width q stored in rows of a wider
// matrix: row r of `x` (stride ld) is token r % seq of its sequence, at position r % seq, or at
// positions[r % seq] when given (context parallelism: a rank's rows are chunks of the sequence);
// `heads` heads start at column 0. Dimension i pairs with i + q/2 (half rotation); angle
// pos * base^(-2i/q).
#include <cstdint>

namespace palmsim::cpu {

template <class T>
void rope_forward(T* x, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq,
                  const int32_t* positions = nullptr);
// The inverse rotation, applied to the gradient in place.
template <class T>
void rope_backward(T* dx, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq,
                   const int32_t* positions = nullptr);

}  // namespace palmsim::cpu
