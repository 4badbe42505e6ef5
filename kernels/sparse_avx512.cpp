// The sparse kernels for AVX-512: 16 floats a vector, 32 registers; built
// with -mavx512f -mavx512vl -mfma.
#include <immintrin.h>

#include <cstdint>

namespace neurite::kernels::avx512 {
using Vector = float __attribute__((vector_size(64)));
inline Vector load_first(const float* p, int n) {
  return reinterpret_cast<Vector>(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p));
}
inline void store_first(float* p, Vector v, int n) {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), reinterpret_cast<__m512>(v));
}
}  // namespace neurite::kernels::avx512

#define NEURITE_ISA_NAMESPACE avx512
#define NEURITE_ISA_TILE_CSR 8
#define NEURITE_ISA_TILE_ROWS4 4
#include "kernels/sparse_kernels.inl"
