#pragma once
// Causal multi-query (and grouped-query, multi-head) attention on the GPU as fused flash-style
// kernels: tiles of 64 queries and 64 keys in shared memory, bf16 tensor-core products through
// WMMA with fp32 accumulation, the online softmax in fp32, and only the per-row log-sum-exp saved
// for backward. Same layout as kernels/cpu/attention.h: `qkv` rows [Q heads | K heads | V heads].
//
// Backward is deterministic: one kernel owns each (sequence, K/V head, key tile) and sums dK and
// dV over its query heads and query tiles in a fixed order; a second owns each (sequence, query
// head, query tile) for dQ. No atomics.
#include "kernels/cuda/ops.h"

#include <string>

namespace palmsim::cuda {

struct AttentionDims {
  int64_t batch = 0, seq = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t ld() const { return (heads + 2 * kv_heads) * head_dim; }
};

// Empty when supported, else why not (seq a multiple of 64; head_dim 64 or 128).
std::string attention_unsupported_reason(const AttentionDims& dims);

// o: [rows, heads * head_dim]; lse: [batch, heads, seq] of the scaled scores.
void attention_forward(const AttentionDims& dims, const bf16* qkv, bf16* o, float* lse, cudaStream_t stream);
// dqkv (layout of qkv) is overwritten with dQ, dK, dV. `delta` holds batch * heads * seq floats.
void attention_backward(const AttentionDims& dims, const bf16* qkv, const bf16* o, const float* lse, const bf16* d_o,
                        float* delta, bf16* dqkv, cudaStream_t stream);

}  // namespace palmsim::cuda
