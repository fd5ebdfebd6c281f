#include "kernels/cuda/gemm.h"

#include "kernels/cuda/cuda_check.h"

namespace palmsim::cuda {

Gemm::Gemm(cudaStream_t stream) {
  CUBLAS_CHECK(cublasCreate(&handle_));
  CUBLAS_CHECK(cublasSetStream(handle_, stream));
  CUBLAS_CHECK(cublasSetAtomicsMode(handle_, CUBLAS_ATOMICS_NOT_ALLOWED));
}

Gemm::~Gemm() {
  if (handle_) cublasDestroy(handle_);
}

void Gemm::call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                const bf16* b, int64_t ldb, float beta, void* c, cudaDataType c_type, int64_t ldc) {
  // Column-major C^T (n x m) = op(B)^T (n x k) * op(A)^T (k x m).
  CUBLAS_CHECK(cublasGemmEx(handle_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m),
                            int(k), &alpha, b, CUDA_R_16BF, int(ldb), a, CUDA_R_16BF, int(lda), &beta, c, c_type,
                            int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void Gemm::operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                      const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, CUDA_R_32F, ldc);
}

void Gemm::operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                      const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc) {
  call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, CUDA_R_16BF, ldc);
}

}  // namespace palmsim::cuda
