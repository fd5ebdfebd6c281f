#pragma once
// Shared by the GPU tests: skip cleanly without a device, move fp32 vectors to and from bf16 device
// buffers, random data (never zeros: they hide unwritten outputs), and the relative error that
// METHOD-style checks use: ||out - ref|| / ||ref||.
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#define PALMSIM_REQUIRE_GPU()                                                           \
  do {                                                                                  \
    if (palmsim::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (0)

namespace palmsim::cuda::testing {

inline std::vector<float> random_vector(size_t n, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Rounds through bf16, so CPU references see exactly the GPU's inputs.
inline std::vector<float> round_to_bf16(std::vector<float> v) {
  for (float& x : v) x = __bfloat162float(__float2bfloat16(x));
  return v;
}

inline DeviceBuffer<bf16> to_device_bf16(const std::vector<float>& v) {
  std::vector<bf16> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = __float2bfloat16(v[i]);
  DeviceBuffer<bf16> d;
  d.upload(h, nullptr);
  return d;
}

inline DeviceBuffer<float> to_device(const std::vector<float>& v) {
  DeviceBuffer<float> d;
  d.upload(v, nullptr);
  return d;
}

inline std::vector<float> to_host(const DeviceBuffer<bf16>& d) {
  const std::vector<bf16> h = d.download(nullptr);
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = __bfloat162float(h[i]);
  return v;
}

inline std::vector<float> to_host(const DeviceBuffer<float>& d) { return d.download(nullptr); }

// Fills a buffer with NaN so that any element a kernel fails to write fails the check.
template <class T>
void poison(DeviceBuffer<T>& d) {
  CUDA_CHECK(cudaMemset(d.data(), 0xff, d.bytes()));
}

inline double relative_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    diff += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

}  // namespace palmsim::cuda::testing
