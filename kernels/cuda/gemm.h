#pragma once
// Row-major GEMMs on cuBLAS: C = alpha * op(A) op(B) + beta * C with bf16 A and B, fp32
// accumulation (CUBLAS_COMPUTE_32F) and C in fp32 (residual branches, weight gradients) or bf16
// (activations that feed the next GEMM). Row-major C = A B is column-major C^T = B^T A^T, so the
// operands are swapped rather than copied. cuBLAS picks the same algorithm for the same shape and
// uses no atomics by default: results are deterministic.
#include "kernels/cuda/ops.h"

#include <cublas_v2.h>

namespace palmsim::cuda {

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  void operator()(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                  int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc);
  void operator()(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                  int64_t lda, const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc);

 private:
  void call(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
            const bf16* b, int64_t ldb, float beta, void* c, cudaDataType c_type, int64_t ldc);
  cublasHandle_t handle_ = nullptr;
};

}  // namespace palmsim::cuda
