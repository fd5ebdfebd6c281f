#pragma once
// Deterministic block-wide sums: a fixed xor-shuffle tree inside each warp, then warp 0 adds the
// warps' results in warp order. The same inputs give the same bits on every run.
#include <cuda_runtime.h>

namespace palmsim::cuda {

template <class T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <class T>
__device__ inline T warp_max(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Every thread of the block must call these; every thread gets the result. `scratch` holds 32 T.
// `identity` fills the lanes of warp 0 beyond the block's warp count.
template <class T, class WarpReduce>
__device__ inline T block_reduce(T v, T* scratch, T identity, WarpReduce warp_reduce) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  v = warp_reduce(v);
  __syncthreads();  // scratch may still be read by an earlier call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T total = lane < warps ? scratch[lane] : identity;
    total = warp_reduce(total);
    if (lane == 0) scratch[0] = total;
  }
  __syncthreads();
  return scratch[0];
}

template <class T>
__device__ inline T block_sum(T v, T* scratch) {
  return block_reduce(v, scratch, T(0), [](T x) { return warp_sum(x); });
}

template <class T>
__device__ inline T block_max(T v, T* scratch, T lowest) {
  return block_reduce(v, scratch, lowest, [](T x) { return warp_max(x); });
}

}  // namespace palmsim::cuda
