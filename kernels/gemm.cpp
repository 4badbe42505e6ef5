#include "neurite/kernels/gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <cassert>

namespace neurite::kernels {

void gemm(const GemmShape& s, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
          float* c, int64_t ldc, int threads) {
  if (s.m == 0 || s.n == 0) return;
  // oneDNN threads with OpenMP; its team size is a per-calling-thread setting.
  omp_set_num_threads(threads);
  const dnnl_status_t status = dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, alpha, a, lda,
                                          b, ldb, beta, c, ldc);
  assert(status == dnnl_success);
  (void)status;
}

void gemm_reference(const GemmShape& s, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < s.k; ++p) {
        const float av = s.trans_a ? a[p * lda + i] : a[i * lda + p];
        const float bv = s.trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += static_cast<double>(av) * bv;
      }
      float& out = c[i * ldc + j];
      out = static_cast<float>(alpha * acc + (beta == 0.0f ? 0.0 : beta * out));
    }
}

}  // namespace neurite::kernels
