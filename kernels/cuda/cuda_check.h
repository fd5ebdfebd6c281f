#pragma once
// One check macro per API (as llm.c does): a failed CUDA or cuBLAS call throws with the call's
// text, file and line, so a broken device or a bad launch never goes unnoticed.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace palmsim::cuda {

[[noreturn]] inline void throw_api_error(const char* api, const char* message, const char* call, const char* file,
                                         int line) {
  throw std::runtime_error(std::string(api) + " error '" + message + "' in " + call + " at " + file + ":" +
                           std::to_string(line));
}

}  // namespace palmsim::cuda

#define CUDA_CHECK(call)                                                                         \
  do {                                                                                           \
    const cudaError_t status_ = (call);                                                          \
    if (status_ != cudaSuccess)                                                                  \
      palmsim::cuda::throw_api_error("CUDA", cudaGetErrorString(status_), #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: launch-configuration errors surface here, not at a later sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                          \
  do {                                                                                              \
    const cublasStatus_t status_ = (call);                                                          \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                           \
      palmsim::cuda::throw_api_error("cuBLAS", cublasGetStatusString(status_), #call, __FILE__, __LINE__); \
  } while (0)
