#pragma once
// The training step's own kernels (everything but the GEMMs and attention), each the GPU twin of a
// kernels/cpu op with the same layout. Activations that feed GEMMs are bf16; the residual stream,
// statistics, losses, gradients and parameters are fp32. Every reduction runs in a fixed order
// (fixed trees inside a block, fixed chunks between blocks), so a step gives the same bits every run.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace palmsim::cuda {

using bf16 = __nv_bfloat16;

// ---- elementwise ----
void cast_to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t stream);
void add_in_place(float* into, const float* add, int64_t n, cudaStream_t stream);  // into += add
void scale_in_place(float* data, float factor, int64_t n, cudaStream_t stream);

// ---- embedding ----
// x[n, :] = E[tokens[n], :] (fp32 rows of the master embedding).
void embedding_forward(const float* E, const int32_t* tokens, float* x, int64_t rows, int64_t d, cudaStream_t stream);
// dE[token, :] += sum of dx rows with that token, in position order. The host groups positions by
// token (see EmbeddingGroups): one block per distinct token, so no two blocks touch the same row.
void embedding_backward(const int32_t* group_tokens, const int32_t* group_starts, const int32_t* positions,
                        int64_t groups, const float* dx, float* dE, int64_t d, cudaStream_t stream);

// ---- LayerNorm without bias (PaLM) ----
void layernorm_forward(const float* x, const float* g, bf16* y, float* mean, float* rstd, int64_t rows, int64_t d,
                       cudaStream_t stream);
// dx += d(x)/dy-chain; dg += sum over rows of dy * xhat. `partials` holds layernorm_partials_size().
void layernorm_backward(const float* x, const float* g, const float* mean, const float* rstd, const float* dy,
                        float* dx, float* dg, float* partials, int64_t rows, int64_t d, cudaStream_t stream);
int64_t layernorm_partials_size(int64_t rows, int64_t d);

// ---- RoPE (in place on bf16 heads of width q inside rows of stride ld; position = row % seq) ----
void rope(bf16* x, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq, bool inverse, cudaStream_t stream);

// ---- SwiGLU: u rows are [a | b] (2f), h = swish(a) * b ----
void swiglu_forward(const bf16* u, bf16* h, int64_t rows, int64_t f, cudaStream_t stream);
void swiglu_backward(const bf16* u, const bf16* dh, bf16* du, int64_t rows, int64_t f, cudaStream_t stream);

// ---- softmax cross-entropy with PaLM's z-loss (w log^2 Z) ----
// Per row: log_z, loss = ce + w log_z^2 and plain ce; the host sums rows in order.
void cross_entropy_forward(const float* logits, const int32_t* targets, float* log_z, float* row_loss,
                           float* row_ce, int64_t rows, int64_t vocab, float w, cudaStream_t stream);
// dlogits = (softmax * (1 + 2 w log_z) - onehot) * scale / rows, in bf16 for the GEMMs that follow.
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* log_z, bf16* dlogits,
                            int64_t rows, int64_t vocab, float w, float scale, cudaStream_t stream);

// ---- optimizer ----
// Sums of squares of fixed chunks (never crossing a tensor): chunk c covers [chunk_begin[c],
// chunk_begin[c+1]). The host adds chunks of a tensor in order, in double.
void chunk_sums_of_squares(const float* values, const int64_t* chunk_begin, int64_t chunks, double* out,
                           cudaStream_t stream);
// Adafactor as kernels/adafactor.cpp, for every parameter at once: element i belongs to the tensor
// t with tensor_begin[t] <= i < tensor_begin[t+1] and is scaled by tensor_scale[t] (lr * max(1e-3,
// RMS)). Also refreshes the bf16 working copy.
struct AdafactorStep {
  double lr = 0, beta1 = 0, beta2 = 0, clip_scale = 1, epsilon = 0;
};
void adafactor_update(float* params, bf16* params_bf16, const float* grads, float* m, float* v,
                      const int64_t* tensor_begin, const double* tensor_scale, int64_t tensors, int64_t n,
                      const AdafactorStep& step, cudaStream_t stream);

}  // namespace palmsim::cuda
