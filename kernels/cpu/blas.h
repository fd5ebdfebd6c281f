#pragma once
// Row-major GEMM, C = alpha * op(A) op(B) + beta * C, for float and double. OpenBLAS runs single
// threaded and oneTBB splits C into fixed blocks of rows (or columns), one pool owning the cores:
// OpenBLAS's own idle workers spin after each call and slowed the oneTBB loops between GEMMs by
// 15-35 %. Blocks are fixed by the shape and thread count, so results are deterministic.
// Builds without OpenBLAS (the CUDA-toolkit-only build, where the CPU ops are only the GPU tests'
// reference) use a plain loop nest instead: same results up to rounding, far slower.
#include <cstdint>

namespace palmsim::cpu {

// Threads the GEMMs split over (set once by the trainer, bench-step and calibrate).
void set_gemm_threads(int threads);
int gemm_threads();

// The same GEMM on the calling thread only, for small products inside parallel loops.
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace palmsim::cpu
