// The sparse kernels for AVX2 + FMA (8 floats a vector); built with -mavx2 -mfma.
#define NEURITE_ISA_NAMESPACE avx2
#include "autograd/kernels/sparse_kernels.inl"

namespace neurite::autograd::kernels::avx2 {
using V = float __attribute__((vector_size(32)));
void spmm_entry(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0,
                int64_t rb1, int64_t p0, int64_t p1) {
  spmm<V, 8, 2>(a, values, b, y, ldy, rb0, rb1, p0, p1);
}
void sddmm_entry(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0,
                 int64_t rb1, int64_t p0, int64_t p1) {
  sddmm<V>(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
}
}  // namespace neurite::autograd::kernels::avx2
