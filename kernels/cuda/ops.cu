#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"
#include "kernels/palm_choices.h"

#include <cmath>

namespace palmsim::cuda {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__global__ void cast_kernel(const float* in, bf16* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(in[i]);
}

__global__ void add_kernel(float* into, const float* add, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) into[i] += add[i];
}

__global__ void scale_kernel(float* data, float factor, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) data[i] *= factor;
}

__global__ void embedding_forward_kernel(const float* E, const int32_t* tokens, float* x, int64_t d) {
  const int64_t row = blockIdx.x;
  const float* src = E + int64_t(tokens[row]) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) x[row * d + i] = src[i];
}

__global__ void embedding_backward_kernel(const int32_t* group_tokens, const int32_t* group_starts,
                                          const int32_t* positions, const float* dx, float* dE, int64_t d) {
  const int64_t group = blockIdx.x;
  float* row = dE + int64_t(group_tokens[group]) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float acc = 0;
    for (int32_t p = group_starts[group]; p < group_starts[group + 1]; ++p) acc += dx[int64_t(positions[p]) * d + i];
    row[i] += acc;
  }
}

__global__ void layernorm_forward_kernel(const float* x, const float* g, bf16* y, float* mean, float* rstd, int64_t d,
                                         float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * d;
  float sum = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) sum += xr[i];
  const float mu = block_sum(sum, scratch) / float(d);
  float var = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) var += (xr[i] - mu) * (xr[i] - mu);
  const float rs = rsqrtf(block_sum(var, scratch) / float(d) + eps);
  if (threadIdx.x == 0) mean[row] = mu, rstd[row] = rs;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) y[row * d + i] = __float2bfloat16((xr[i] - mu) * rs * g[i]);
}

__global__ void layernorm_backward_kernel(const float* x, const float* g, const float* mean, const float* rstd,
                                          const float* dy, float* dx, int64_t d) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * d;
  const float* dyr = dy + row * d;
  const float mu = mean[row], rs = rstd[row];
  float s1 = 0, s2 = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float dxhat = dyr[i] * g[i];
    s1 += dxhat;
    s2 += dxhat * (xr[i] - mu) * rs;
  }
  const float sum_dxhat = block_sum(s1, scratch) / float(d);
  const float sum_dxhat_xhat = block_sum(s2, scratch) / float(d);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float xhat = (xr[i] - mu) * rs;
    dx[row * d + i] += rs * (dyr[i] * g[i] - sum_dxhat - xhat * sum_dxhat_xhat);
  }
}

// dg in two fixed-order stages: each block sums kLnChunkRows rows of 32 columns (8 row lanes, then
// the lanes in order), then one thread per column adds the chunks in order.
constexpr int64_t kLnChunkRows = 256;

__global__ void layernorm_scale_partials_kernel(const float* x, const float* mean, const float* rstd, const float* dy,
                                                float* partials, int64_t rows, int64_t d) {
  __shared__ float lanes[8][33];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t chunk = blockIdx.y, begin = chunk * kLnChunkRows;
  const int64_t end = min(rows, begin + kLnChunkRows);
  float acc = 0;
  if (col < d)
    for (int64_t r = begin + threadIdx.y; r < end; r += 8) acc += dy[r * d + col] * (x[r * d + col] - mean[r]) * rstd[r];
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < d) {
    float total = 0;
    for (int lane = 0; lane < 8; ++lane) total += lanes[lane][threadIdx.x];
    partials[chunk * d + col] = total;
  }
}

__global__ void layernorm_scale_sum_kernel(const float* partials, float* dg, int64_t chunks, int64_t d) {
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= d) return;
  float total = 0;
  for (int64_t c = 0; c < chunks; ++c) total += partials[c * d + col];
  dg[col] += total;
}

__global__ void rope_kernel(bf16* x, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq, double sign,
                            double base) {
  const int64_t half = q / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * heads * half) return;
  const int64_t i = idx % half, h = (idx / half) % heads, r = idx / (half * heads);
  const double angle = sign * double(r % seq) * pow(base, -2.0 * double(i) / double(q));
  double s, c;
  sincos(angle, &s, &c);
  bf16* v = x + r * ld + h * q;
  const double a = __bfloat162float(v[i]), b = __bfloat162float(v[i + half]);
  v[i] = __float2bfloat16(float(a * c - b * s));
  v[i + half] = __float2bfloat16(float(a * s + b * c));
}

__device__ inline float sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }

__global__ void swiglu_forward_kernel(const bf16* u, bf16* h, int64_t rows, int64_t f) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * f) return;
  const int64_t r = idx / f, i = idx % f;
  const float a = __bfloat162float(u[r * 2 * f + i]), b = __bfloat162float(u[r * 2 * f + f + i]);
  h[idx] = __float2bfloat16(a * sigmoid(a) * b);
}

__global__ void swiglu_backward_kernel(const bf16* u, const bf16* dh, bf16* du, int64_t rows, int64_t f) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * f) return;
  const int64_t r = idx / f, i = idx % f;
  const float a = __bfloat162float(u[r * 2 * f + i]), b = __bfloat162float(u[r * 2 * f + f + i]);
  const float g = __bfloat162float(dh[idx]), sig = sigmoid(a);
  du[r * 2 * f + i] = __float2bfloat16(g * b * (sig + a * sig * (1.0f - sig)));
  du[r * 2 * f + f + i] = __float2bfloat16(g * a * sig);
}

// One block per row: a running (max, sum) per thread, merged in a fixed tree.
__global__ void cross_entropy_forward_kernel(const float* logits, const int32_t* targets, float* log_z,
                                             float* row_loss, float* row_ce, int64_t vocab, float w) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* z = logits + row * vocab;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, z[i]);
  // The block's max first, then one pass of exp sums against it (two passes, no rescaling).
  m = block_max(m, scratch, -INFINITY);
  float s = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(z[i] - m);
  const float lz = m + logf(block_sum(s, scratch));
  if (threadIdx.x == 0) {
    const float ce = lz - z[targets[row]];
    log_z[row] = lz;
    row_ce[row] = ce;
    row_loss[row] = ce + w * lz * lz;
  }
}

__global__ void cross_entropy_backward_kernel(const float* logits, const int32_t* targets, const float* log_z,
                                              bf16* dlogits, int64_t rows, int64_t vocab, float w, float scale) {
  const int64_t row = blockIdx.x;
  const float lz = log_z[row];
  const float factor = (1.0f + 2.0f * w * lz) * scale / float(rows);
  const float* z = logits + row * vocab;
  const int32_t target = targets[row];
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float g = expf(z[i] - lz) * factor;
    if (i == target) g -= scale / float(rows);
    dlogits[row * vocab + i] = __float2bfloat16(g);
  }
}

__global__ void chunk_sums_of_squares_kernel(const float* values, const int64_t* chunk_begin, double* out) {
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x;
  double acc = 0;
  for (int64_t i = chunk_begin[c] + threadIdx.x; i < chunk_begin[c + 1]; i += blockDim.x) {
    const double v = values[i];
    acc += v * v;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[c] = acc;
}

__global__ void adafactor_kernel(float* params, bf16* params_bf16, const float* grads, float* m_state, float* v_state,
                                 const int64_t* tensor_begin, const double* tensor_scale, int64_t tensors, int64_t n,
                                 AdafactorStep step) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  // The tensor holding element i: the last t with tensor_begin[t] <= i.
  int64_t lo = 0, hi = tensors - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (tensor_begin[mid] <= i) lo = mid; else hi = mid - 1;
  }
  // The arithmetic of kernels/adafactor.cpp, in double as there.
  const double g = double(grads[i]) * step.clip_scale;
  const double v = step.beta2 * v_state[i] + (1.0 - step.beta2) * (g * g + step.epsilon);
  const double m = step.beta1 * m_state[i] + (1.0 - step.beta1) * g;
  v_state[i] = float(v);
  m_state[i] = float(m);
  const double p = params[i], lr = step.lr;
  const float updated = float(p - tensor_scale[lo] * m / sqrt(v) - lr * lr * p);
  params[i] = updated;
  params_bf16[i] = __float2bfloat16(updated);
}

}  // namespace

void cast_to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  cast_kernel<<<grid_for(n), kThreads, 0, stream>>>(in, out, n);
  CUDA_CHECK_LAUNCH();
}

void add_in_place(float* into, const float* add, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, stream>>>(into, add, n);
  CUDA_CHECK_LAUNCH();
}

void scale_in_place(float* data, float factor, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, stream>>>(data, factor, n);
  CUDA_CHECK_LAUNCH();
}

void embedding_forward(const float* E, const int32_t* tokens, float* x, int64_t rows, int64_t d, cudaStream_t stream) {
  embedding_forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(E, tokens, x, d);
  CUDA_CHECK_LAUNCH();
}

void embedding_backward(const int32_t* group_tokens, const int32_t* group_starts, const int32_t* positions,
                        int64_t groups, const float* dx, float* dE, int64_t d, cudaStream_t stream) {
  if (groups == 0) return;
  embedding_backward_kernel<<<unsigned(groups), kThreads, 0, stream>>>(group_tokens, group_starts, positions, dx, dE, d);
  CUDA_CHECK_LAUNCH();
}

void layernorm_forward(const float* x, const float* g, bf16* y, float* mean, float* rstd, int64_t rows, int64_t d,
                       cudaStream_t stream) {
  layernorm_forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, g, y, mean, rstd, d,
                                                                    float(palm_choices::kLayerNormEpsilon));
  CUDA_CHECK_LAUNCH();
}

int64_t layernorm_partials_size(int64_t rows, int64_t d) { return (rows + kLnChunkRows - 1) / kLnChunkRows * d; }

void layernorm_backward(const float* x, const float* g, const float* mean, const float* rstd, const float* dy,
                        float* dx, float* dg, float* partials, int64_t rows, int64_t d, cudaStream_t stream) {
  layernorm_backward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, g, mean, rstd, dy, dx, d);
  CUDA_CHECK_LAUNCH();
  const int64_t chunks = (rows + kLnChunkRows - 1) / kLnChunkRows;
  layernorm_scale_partials_kernel<<<dim3(unsigned((d + 31) / 32), unsigned(chunks)), dim3(32, 8), 0, stream>>>(
      x, mean, rstd, dy, partials, rows, d);
  CUDA_CHECK_LAUNCH();
  layernorm_scale_sum_kernel<<<grid_for(d), kThreads, 0, stream>>>(partials, dg, chunks, d);
  CUDA_CHECK_LAUNCH();
}

void rope(bf16* x, int64_t rows, int64_t ld, int64_t heads, int64_t q, int64_t seq, bool inverse, cudaStream_t stream) {
  const int64_t n = rows * heads * (q / 2);
  if (n == 0) return;
  rope_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, rows, ld, heads, q, seq, inverse ? -1.0 : 1.0,
                                                    palm_choices::kRopeBase);
  CUDA_CHECK_LAUNCH();
}

void swiglu_forward(const bf16* u, bf16* h, int64_t rows, int64_t f, cudaStream_t stream) {
  swiglu_forward_kernel<<<grid_for(rows * f), kThreads, 0, stream>>>(u, h, rows, f);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward(const bf16* u, const bf16* dh, bf16* du, int64_t rows, int64_t f, cudaStream_t stream) {
  swiglu_backward_kernel<<<grid_for(rows * f), kThreads, 0, stream>>>(u, dh, du, rows, f);
  CUDA_CHECK_LAUNCH();
}

void cross_entropy_forward(const float* logits, const int32_t* targets, float* log_z, float* row_loss,
                           float* row_ce, int64_t rows, int64_t vocab, float w, cudaStream_t stream) {
  cross_entropy_forward_kernel<<<unsigned(rows), kThreads * 2, 0, stream>>>(logits, targets, log_z, row_loss, row_ce,
                                                                            vocab, w);
  CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* log_z, bf16* dlogits,
                            int64_t rows, int64_t vocab, float w, float scale, cudaStream_t stream) {
  cross_entropy_backward_kernel<<<unsigned(rows), kThreads * 2, 0, stream>>>(logits, targets, log_z, dlogits, rows,
                                                                             vocab, w, scale);
  CUDA_CHECK_LAUNCH();
}

void chunk_sums_of_squares(const float* values, const int64_t* chunk_begin, int64_t chunks, double* out,
                           cudaStream_t stream) {
  if (chunks == 0) return;
  chunk_sums_of_squares_kernel<<<unsigned(chunks), kThreads, 0, stream>>>(values, chunk_begin, out);
  CUDA_CHECK_LAUNCH();
}

void adafactor_update(float* params, bf16* params_bf16, const float* grads, float* m, float* v,
                      const int64_t* tensor_begin, const double* tensor_scale, int64_t tensors, int64_t n,
                      const AdafactorStep& step, cudaStream_t stream) {
  if (n == 0) return;
  adafactor_kernel<<<grid_for(n), kThreads, 0, stream>>>(params, params_bf16, grads, m, v, tensor_begin, tensor_scale,
                                                         tensors, n, step);
  CUDA_CHECK_LAUNCH();
}

}  // namespace palmsim::cuda
