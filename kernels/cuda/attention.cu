#include "kernels/cuda/attention.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"

#include <mma.h>

#include <cmath>
#include <type_traits>

namespace palmsim::cuda {

namespace {

using namespace nvcuda;

constexpr int kTile = 64;    // queries and keys per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kPadH = 8;     // bf16 row padding (16 bytes) against shared-memory bank conflicts
constexpr int kPadF = 4;     // fp32 row padding (16 bytes)

// Shared-memory strides (elements) and a bump allocator that keeps every buffer 128-byte aligned
// (WMMA needs 32-byte aligned tile pointers).
template <int D>
struct Strides {
  static constexpr int head = D + kPadH;      // bf16 tiles of 64 x D (Q, K, V, dO)
  static constexpr int score = kTile + kPadF; // fp32 64 x 64 (S, dP)
  static constexpr int prob = kTile + kPadH;  // bf16 64 x 64 (P, dS)
  static constexpr int acc = D + kPadF;       // fp32 64 x D accumulators (O, dQ, dK, dV)
};

struct SmemCursor {
  unsigned char* base;
  size_t used = 0;
  template <class T>
  __device__ __host__ T* take(size_t count) {
    T* p = reinterpret_cast<T*>(base + used);
    used += (count * sizeof(T) + 127) / 128 * 128;
    return p;
  }
};

template <int D>
constexpr size_t round128(size_t bytes) { return (bytes + 127) / 128 * 128; }
template <int D>
constexpr size_t head_tile_bytes() { return round128<D>(kTile * Strides<D>::head * 2); }
template <int D>
constexpr size_t score_bytes() { return round128<D>(kTile * Strides<D>::score * 4); }
template <int D>
constexpr size_t prob_bytes() { return round128<D>(kTile * Strides<D>::prob * 2); }
template <int D>
constexpr size_t acc_bytes() { return round128<D>(kTile * Strides<D>::acc * 4); }
constexpr size_t row_bytes() { return kTile * 4; }

template <int D>
constexpr size_t forward_smem() { return 3 * head_tile_bytes<D>() + score_bytes<D>() + prob_bytes<D>() + acc_bytes<D>() + 2 * row_bytes(); }
template <int D>
constexpr size_t backward_kv_smem() { return 4 * head_tile_bytes<D>() + 2 * score_bytes<D>() + 2 * prob_bytes<D>() + 2 * acc_bytes<D>() + 2 * row_bytes(); }
template <int D>
constexpr size_t backward_q_smem() { return 4 * head_tile_bytes<D>() + 2 * score_bytes<D>() + prob_bytes<D>() + acc_bytes<D>() + 2 * row_bytes(); }

// Copies 64 rows of D bf16 (global stride ld) into a padded shared tile, 16 bytes per access.
template <int D>
__device__ void load_tile(bf16* dst, const bf16* src, int64_t ld) {
  constexpr int vectors = D / 8;
  for (int i = threadIdx.x; i < kTile * vectors; i += blockDim.x) {
    const int r = i / vectors, c = (i % vectors) * 8;
    *reinterpret_cast<uint4*>(dst + r * Strides<D>::head + c) = *reinterpret_cast<const uint4*>(src + r * ld + c);
  }
}

template <int Cols>
__device__ void zero_rows(float* dst, int ld) {
  for (int i = threadIdx.x; i < kTile * Cols; i += blockDim.x) dst[(i / Cols) * ld + i % Cols] = 0.0f;
}

// C (M x N, fp32, overwritten) = A (M x K, row-major) * B^T, B stored N x K row-major.
template <int M, int N, int K>
__device__ void product_abt(float* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb) {
  constexpr int tiles_n = N / 16, tiles = (M / 16) * tiles_n;
  for (int t = threadIdx.x / 32; t < tiles; t += kWarps) {
    const int tm = t / tiles_n, tn = t % tiles_n;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
#pragma unroll
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
      wmma::load_matrix_sync(a, A + tm * 16 * lda + k, lda);
      wmma::load_matrix_sync(b, B + tn * 16 * ldb + k, ldb);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(C + tm * 16 * ldc + tn * 16, acc, ldc, wmma::mem_row_major);
  }
}

// C (M x N, fp32) += op(A) * B, B stored K x N row-major; op(A) = A (M x K row-major) or, with
// TransA, A^T where A is stored K x M row-major.
template <int M, int N, int K, bool TransA>
__device__ void product_accumulate(float* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb) {
  constexpr int tiles_n = N / 16, tiles = (M / 16) * tiles_n;
  using LayoutA = typename std::conditional<TransA, wmma::col_major, wmma::row_major>::type;
  for (int t = threadIdx.x / 32; t < tiles; t += kWarps) {
    const int tm = t / tiles_n, tn = t % tiles_n;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, C + tm * 16 * ldc + tn * 16, ldc, wmma::mem_row_major);
#pragma unroll
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LayoutA> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
      if constexpr (TransA)
        wmma::load_matrix_sync(a, A + k * lda + tm * 16, lda);
      else
        wmma::load_matrix_sync(a, A + tm * 16 * lda + k, lda);
      wmma::load_matrix_sync(b, B + k * ldb + tn * 16, ldb);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(C + tm * 16 * ldc + tn * 16, acc, ldc, wmma::mem_row_major);
  }
}

struct Geometry {
  int64_t seq, heads, kv_heads, ld, hq;
  float scale;
};

template <int D>
__global__ void __launch_bounds__(kThreads) forward_kernel(const bf16* qkv, bf16* o, float* lse, Geometry g) {
  using St = Strides<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  SmemCursor cur{smem};
  bf16* Qs = cur.take<bf16>(kTile * St::head);
  bf16* Ks = cur.take<bf16>(kTile * St::head);
  bf16* Vs = cur.take<bf16>(kTile * St::head);
  float* Ss = cur.take<float>(kTile * St::score);
  bf16* Ps = cur.take<bf16>(kTile * St::prob);
  float* Os = cur.take<float>(kTile * St::acc);
  float* row_max = cur.take<float>(kTile);
  float* row_sum = cur.take<float>(kTile);

  const int64_t tiles = g.seq / kTile;
  const int64_t qt = tiles - 1 - blockIdx.x;  // longest rows first: better balance at the tail
  const int64_t b = blockIdx.y / g.heads, h = blockIdx.y % g.heads, kv = h / (g.heads / g.kv_heads);
  const bf16* base = qkv + b * g.seq * g.ld;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  load_tile<D>(Qs, base + qt * kTile * g.ld + h * D, g.ld);
  zero_rows<D>(Os, St::acc);
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) row_max[r] = -INFINITY, row_sum[r] = 0.0f;

  for (int64_t kt = 0; kt <= qt; ++kt) {
    const bf16* keys = base + kt * kTile * g.ld + g.hq;
    load_tile<D>(Ks, keys + kv * D, g.ld);
    load_tile<D>(Vs, keys + g.kv_heads * D + kv * D, g.ld);
    __syncthreads();
    product_abt<kTile, kTile, D>(Ss, St::score, Qs, St::head, Ks, St::head);
    __syncthreads();
    // Online softmax: each warp owns 16 rows, each lane two columns of a row.
    for (int r = warp * 16; r < warp * 16 + 16; ++r) {
      const int64_t i = qt * kTile + r;
      float s0 = Ss[r * St::score + lane] * g.scale, s1 = Ss[r * St::score + lane + 32] * g.scale;
      if (kt * kTile + lane > i) s0 = -INFINITY;
      if (kt * kTile + lane + 32 > i) s1 = -INFINITY;
      const float old_max = row_max[r];
      const float new_max = fmaxf(old_max, warp_max(fmaxf(s0, s1)));  // finite: key kt*64 <= i
      const float p0 = expf(s0 - new_max), p1 = expf(s1 - new_max);
      const float sum = warp_sum(p0 + p1);
      const float rescale = expf(old_max - new_max);
      Ps[r * St::prob + lane] = __float2bfloat16(p0);
      Ps[r * St::prob + lane + 32] = __float2bfloat16(p1);
      for (int c = lane; c < D; c += 32) Os[r * St::acc + c] *= rescale;
      __syncwarp();
      if (lane == 0) row_max[r] = new_max, row_sum[r] = row_sum[r] * rescale + sum;
    }
    __syncthreads();
    product_accumulate<kTile, D, kTile, false>(Os, St::acc, Ps, St::prob, Vs, St::head);
    __syncthreads();
  }
  for (int r = warp * 16; r < warp * 16 + 16; ++r) {
    const int64_t i = qt * kTile + r;
    const float inv = 1.0f / row_sum[r];
    bf16* out = o + (b * g.seq + i) * g.hq + h * D;
    for (int c = lane; c < D; c += 32) out[c] = __float2bfloat16(Os[r * St::acc + c] * inv);
    if (lane == 0) lse[(b * g.heads + h) * g.seq + i] = row_max[r] + logf(row_sum[r]);
  }
}

// delta[b, h, i] = dO_i . O_i: the row sums of P * dP that the softmax backward subtracts.
__global__ void delta_kernel(const bf16* o, const bf16* d_o, float* delta, int64_t rows, int64_t heads, int64_t seq,
                             int64_t head_dim) {
  const int64_t task = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // one warp per (row, head)
  const int lane = threadIdx.x % 32;
  if (task >= rows * heads) return;
  const int64_t row = task / heads, h = task % heads;
  const bf16* a = o + row * heads * head_dim + h * head_dim;
  const bf16* b = d_o + row * heads * head_dim + h * head_dim;
  float acc = 0;
  for (int64_t c = lane; c < head_dim; c += 32) acc += __bfloat162float(a[c]) * __bfloat162float(b[c]);
  acc = warp_sum(acc);
  if (lane == 0) delta[((row / seq) * heads + h) * seq + row % seq] = acc;
}

// P and dS of one (query tile, key tile) pair from S = Q K^T and dP = dO V^T.
template <int D>
__device__ void softmax_backward_tile(const float* Ss, const float* dPs, const float* lse_rows, const float* delta_rows,
                                      bf16* Ps, bf16* dSs, int64_t qt, int64_t kt, float scale) {
  using St = Strides<D>;
  for (int e = threadIdx.x; e < kTile * kTile; e += blockDim.x) {
    const int r = e / kTile, c = e % kTile;
    const bool visible = kt * kTile + c <= qt * kTile + r;
    const float p = visible ? expf(Ss[r * St::score + c] * scale - lse_rows[r]) : 0.0f;
    if (Ps) Ps[r * St::prob + c] = __float2bfloat16(p);
    dSs[r * St::prob + c] = __float2bfloat16(p * (dPs[r * St::score + c] - delta_rows[r]));
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads) backward_kv_kernel(const bf16* qkv, const bf16* d_o, const float* lse,
                                                               const float* delta, bf16* dqkv, Geometry g) {
  using St = Strides<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  SmemCursor cur{smem};
  bf16* Ks = cur.take<bf16>(kTile * St::head);
  bf16* Vs = cur.take<bf16>(kTile * St::head);
  bf16* Qs = cur.take<bf16>(kTile * St::head);
  bf16* dOs = cur.take<bf16>(kTile * St::head);
  float* Ss = cur.take<float>(kTile * St::score);
  float* dPs = cur.take<float>(kTile * St::score);
  bf16* Ps = cur.take<bf16>(kTile * St::prob);
  bf16* dSs = cur.take<bf16>(kTile * St::prob);
  float* dK = cur.take<float>(kTile * St::acc);
  float* dV = cur.take<float>(kTile * St::acc);
  float* lse_rows = cur.take<float>(kTile);
  float* delta_rows = cur.take<float>(kTile);

  const int64_t tiles = g.seq / kTile, kt = blockIdx.x;
  const int64_t b = blockIdx.y / g.kv_heads, kv = blockIdx.y % g.kv_heads, group = g.heads / g.kv_heads;
  const bf16* base = qkv + b * g.seq * g.ld;
  const bf16* keys = base + kt * kTile * g.ld + g.hq;
  load_tile<D>(Ks, keys + kv * D, g.ld);
  load_tile<D>(Vs, keys + g.kv_heads * D + kv * D, g.ld);
  zero_rows<D>(dK, St::acc);
  zero_rows<D>(dV, St::acc);

  for (int64_t h = kv * group; h < (kv + 1) * group; ++h)
    for (int64_t qt = kt; qt < tiles; ++qt) {
      __syncthreads();  // the previous iteration's products have read Qs, dOs, Ps and dSs
      load_tile<D>(Qs, base + qt * kTile * g.ld + h * D, g.ld);
      load_tile<D>(dOs, d_o + (b * g.seq + qt * kTile) * g.hq + h * D, g.hq);
      for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
        lse_rows[r] = lse[(b * g.heads + h) * g.seq + qt * kTile + r];
        delta_rows[r] = delta[(b * g.heads + h) * g.seq + qt * kTile + r];
      }
      __syncthreads();
      product_abt<kTile, kTile, D>(Ss, St::score, Qs, St::head, Ks, St::head);
      product_abt<kTile, kTile, D>(dPs, St::score, dOs, St::head, Vs, St::head);
      __syncthreads();
      softmax_backward_tile<D>(Ss, dPs, lse_rows, delta_rows, Ps, dSs, qt, kt, g.scale);
      __syncthreads();
      product_accumulate<kTile, D, kTile, true>(dV, St::acc, Ps, St::prob, dOs, St::head);   // dV += P^T dO
      product_accumulate<kTile, D, kTile, true>(dK, St::acc, dSs, St::prob, Qs, St::head);   // dK += dS^T Q
    }
  __syncthreads();
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, c = e % D;
    bf16* row = dqkv + (b * g.seq + kt * kTile + r) * g.ld + g.hq;
    row[kv * D + c] = __float2bfloat16(dK[r * St::acc + c] * g.scale);
    row[g.kv_heads * D + kv * D + c] = __float2bfloat16(dV[r * St::acc + c]);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads) backward_q_kernel(const bf16* qkv, const bf16* d_o, const float* lse,
                                                              const float* delta, bf16* dqkv, Geometry g) {
  using St = Strides<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  SmemCursor cur{smem};
  bf16* Qs = cur.take<bf16>(kTile * St::head);
  bf16* dOs = cur.take<bf16>(kTile * St::head);
  bf16* Ks = cur.take<bf16>(kTile * St::head);
  bf16* Vs = cur.take<bf16>(kTile * St::head);
  float* Ss = cur.take<float>(kTile * St::score);
  float* dPs = cur.take<float>(kTile * St::score);
  bf16* dSs = cur.take<bf16>(kTile * St::prob);
  float* dQ = cur.take<float>(kTile * St::acc);
  float* lse_rows = cur.take<float>(kTile);
  float* delta_rows = cur.take<float>(kTile);

  const int64_t tiles = g.seq / kTile, qt = tiles - 1 - blockIdx.x;
  const int64_t b = blockIdx.y / g.heads, h = blockIdx.y % g.heads, kv = h / (g.heads / g.kv_heads);
  const bf16* base = qkv + b * g.seq * g.ld;
  load_tile<D>(Qs, base + qt * kTile * g.ld + h * D, g.ld);
  load_tile<D>(dOs, d_o + (b * g.seq + qt * kTile) * g.hq + h * D, g.hq);
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
    lse_rows[r] = lse[(b * g.heads + h) * g.seq + qt * kTile + r];
    delta_rows[r] = delta[(b * g.heads + h) * g.seq + qt * kTile + r];
  }
  zero_rows<D>(dQ, St::acc);
  for (int64_t kt = 0; kt <= qt; ++kt) {
    __syncthreads();  // the previous iteration's product has read Ks and dSs
    const bf16* keys = base + kt * kTile * g.ld + g.hq;
    load_tile<D>(Ks, keys + kv * D, g.ld);
    load_tile<D>(Vs, keys + g.kv_heads * D + kv * D, g.ld);
    __syncthreads();
    product_abt<kTile, kTile, D>(Ss, St::score, Qs, St::head, Ks, St::head);
    product_abt<kTile, kTile, D>(dPs, St::score, dOs, St::head, Vs, St::head);
    __syncthreads();
    softmax_backward_tile<D>(Ss, dPs, lse_rows, delta_rows, nullptr, dSs, qt, kt, g.scale);
    __syncthreads();
    product_accumulate<kTile, D, kTile, false>(dQ, St::acc, dSs, St::prob, Ks, St::head);  // dQ += dS K
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, c = e % D;
    dqkv[(b * g.seq + qt * kTile + r) * g.ld + h * D + c] = __float2bfloat16(dQ[r * St::acc + c] * g.scale);
  }
}

Geometry geometry(const AttentionDims& d) {
  return {d.seq, d.heads, d.kv_heads, d.ld(), d.heads * d.head_dim, float(1.0 / std::sqrt(double(d.head_dim)))};
}

template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <int D>
void forward(const AttentionDims& d, const bf16* qkv, bf16* o, float* lse, cudaStream_t stream) {
  allow_smem(forward_kernel<D>, forward_smem<D>());
  const dim3 grid(unsigned(d.seq / kTile), unsigned(d.batch * d.heads));
  forward_kernel<D><<<grid, kThreads, forward_smem<D>(), stream>>>(qkv, o, lse, geometry(d));
  CUDA_CHECK_LAUNCH();
}

template <int D>
void backward(const AttentionDims& d, const bf16* qkv, const bf16* d_o, const float* lse, const float* delta,
              bf16* dqkv, cudaStream_t stream) {
  allow_smem(backward_kv_kernel<D>, backward_kv_smem<D>());
  allow_smem(backward_q_kernel<D>, backward_q_smem<D>());
  const unsigned tiles = unsigned(d.seq / kTile);
  backward_kv_kernel<D><<<dim3(tiles, unsigned(d.batch * d.kv_heads)), kThreads, backward_kv_smem<D>(), stream>>>(
      qkv, d_o, lse, delta, dqkv, geometry(d));
  CUDA_CHECK_LAUNCH();
  backward_q_kernel<D><<<dim3(tiles, unsigned(d.batch * d.heads)), kThreads, backward_q_smem<D>(), stream>>>(
      qkv, d_o, lse, delta, dqkv, geometry(d));
  CUDA_CHECK_LAUNCH();
}

}  // namespace

std::string attention_unsupported_reason(const AttentionDims& d) {
  if (d.seq % kTile != 0) return "the CUDA attention needs seq_len a multiple of 64, not " + std::to_string(d.seq);
  if (d.head_dim != 64 && d.head_dim != 128)
    return "the CUDA attention supports head_dim 64 or 128, not " + std::to_string(d.head_dim);
  if (d.kv_heads <= 0 || d.heads % d.kv_heads != 0) return "n_heads must be a multiple of n_kv_heads";
  return "";
}

void attention_forward(const AttentionDims& d, const bf16* qkv, bf16* o, float* lse, cudaStream_t stream) {
  if (d.head_dim == 64)
    forward<64>(d, qkv, o, lse, stream);
  else
    forward<128>(d, qkv, o, lse, stream);
}

void attention_backward(const AttentionDims& d, const bf16* qkv, const bf16* o, const float* lse, const bf16* d_o,
                        float* delta, bf16* dqkv, cudaStream_t stream) {
  const int64_t rows = d.batch * d.seq, warps = rows * d.heads;
  delta_kernel<<<unsigned((warps * 32 + 255) / 256), 256, 0, stream>>>(o, d_o, delta, rows, d.heads, d.seq, d.head_dim);
  CUDA_CHECK_LAUNCH();
  if (d.head_dim == 64)
    backward<64>(d, qkv, d_o, lse, delta, dqkv, stream);
  else
    backward<128>(d, qkv, d_o, lse, delta, dqkv, stream);
}

}  // namespace palmsim::cuda
