#include "kernels/cuda/device_info.h"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/gemm.h"

#include <random>
#include <vector>

namespace palmsim::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

double datasheet_bf16_flops(const std::string& name) {
  // NVIDIA datasheets, dense (no sparsity); see hwmodels/hardware.md for the H100 and H200 rows.
  if (name.find("H100 PCIe") != std::string::npos) return 756e12;
  if (name.find("H100 NVL") != std::string::npos) return 835e12;
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return 989.4e12;
  if (name.find("A100") != std::string::npos) return 312e12;
  return 0;
}

double measured_cublas_bf16_flops(int n, int repetitions) {
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));
  const size_t elements = size_t(n) * size_t(n);
  std::vector<bf16> host(elements);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (bf16& v : host) v = __float2bfloat16(normal(rng));  // never zeros: they run faster than data
  DeviceBuffer<bf16> a, b;
  a.upload(host, stream);
  b.upload(host, stream);
  DeviceBuffer<float> c(elements);
  Gemm gemm(stream);
  gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start, stream));
  for (int r = 0; r < repetitions; ++r) gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  CUDA_CHECK(cudaEventRecord(stop, stream));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return 2.0 * double(n) * n * n * repetitions / (1e-3 * ms);
}

}  // namespace palmsim::cuda
