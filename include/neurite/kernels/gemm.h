// Dense matrix products, row-major. The one home of GEMM: every op that
// multiplies matrices (matmul, linear, conv2d) calls this.
#pragma once

#include <cstdint>

namespace neurite::kernels {

struct GemmShape {
  int64_t m, n, k;
  bool trans_a = false;  // A is stored (k, m) instead of (m, k)
  bool trans_b = false;  // B is stored (n, k) instead of (k, n)
};

// C (m, n) = alpha * op(A) * op(B) + beta * C, with leading dimensions lda,
// ldb, ldc. `threads` caps the threads it uses: callers already inside a
// parallel loop pass 1. Runs oneDNN's JIT sgemm (80-86 GFLOP/s per core here
// against Eigen's 50; bench/gemm.cpp measures both).
void gemm(const GemmShape& s, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
          float* c, int64_t ldc, int threads);

// The naive twin that tests compare gemm with.
void gemm_reference(const GemmShape& s, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc);

}  // namespace neurite::kernels
