#include "kernels/cpu/blas.h"

#ifdef PALMSIM_HAVE_OPENBLAS
#include <cblas.h>
#endif
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>

namespace palmsim::cpu {

namespace {

std::atomic<int> g_threads{1};

#ifdef PALMSIM_HAVE_OPENBLAS
inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
#else
// Reference loop nest: C = alpha op(A) op(B) + beta C, accumulating each element in double.
template <class T>
void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += double(ta ? a[p * lda + i] : a[i * lda + p]) * double(tb ? b[j * ldb + p] : b[p * ldb + j]);
      T& out = c[i * ldc + j];
      out = T(alpha * acc + (beta == T(0) ? 0.0 : double(beta) * out));
    }
}
#endif

template <class T>
void blocked(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
             int64_t ldb, T beta, T* c, int64_t ldc) {
  // Fixed blocks of kBlock rows (or columns) whatever the thread count, spread over the threads by
  // oneTBB: each block is one single-threaded OpenBLAS call, and OpenBLAS's result for a row depends
  // on the shape of the call it is in (its edge kernels), so blocks sized by the thread count made
  // the training losses differ in the 9th digit between 1, 2 and 4 threads.
  constexpr int64_t kBlock = 128;
  const bool by_rows = m >= n;
  const int64_t dim = by_rows ? m : n;
  const int64_t blocks = std::max<int64_t>(1, dim / kBlock);
  auto block = [&](int64_t i) {
    const int64_t lo = dim * i / blocks, hi = dim * (i + 1) / blocks;
    if (by_rows)  // rows lo..hi of op(A) and C; op(A) = A^T keeps them in columns of A
      call(ta, tb, hi - lo, n, k, alpha, ta ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
    else          // columns lo..hi of op(B) and C
      call(ta, tb, m, hi - lo, k, alpha, a, lda, tb ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
  };
  if (gemm_threads() == 1) {  // a rank that is itself one thread: the same blocks, in order
    for (int64_t i = 0; i < blocks; ++i) block(i);
    return;
  }
  tbb::parallel_for(int64_t(0), blocks, block, tbb::simple_partitioner());
}

}  // namespace

void set_gemm_threads(int threads) {
#ifdef PALMSIM_HAVE_OPENBLAS
  openblas_set_num_threads(1);
#endif
  g_threads = std::max(1, threads);
}

int gemm_threads() { return g_threads; }

void gemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  blocked(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  blocked(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace palmsim::cpu
