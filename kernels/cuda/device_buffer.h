#pragma once
// Device memory owned by one object. resize() keeps the allocation when it is large enough, so the
// step's buffers are allocated once (cudaMalloc in the step would synchronize the device).
#include "kernels/cuda/cuda_check.h"

#include <cstddef>
#include <utility>
#include <vector>

namespace palmsim::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }

  void resize(size_t n) {
    if (n > capacity_) {
      release();
      CUDA_CHECK(cudaMalloc(&data_, n * sizeof(T)));
      capacity_ = n;
    }
    size_ = n;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }

  void upload(const T* host, size_t n, cudaStream_t stream) {
    resize(n);
    CUDA_CHECK(cudaMemcpyAsync(data_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  void upload(const std::vector<T>& host, cudaStream_t stream) { upload(host.data(), host.size(), stream); }
  // Synchronous: the host vector is ready when this returns.
  std::vector<T> download(cudaStream_t stream) const {
    std::vector<T> host(size_);
    CUDA_CHECK(cudaMemcpyAsync(host.data(), data_, bytes(), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return host;
  }
  void zero(cudaStream_t stream) { CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes(), stream)); }

 private:
  void swap(DeviceBuffer& o) {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }
  void release() {
    if (data_) cudaFree(data_);  // no check: destructors must not throw
    data_ = nullptr;
    size_ = capacity_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0, capacity_ = 0;
};

}  // namespace palmsim::cuda
