// The sparse kernels for AVX2 + FMA: 8 floats a vector, 16 registers; built with -mavx2 -mfma.
#include <immintrin.h>

#include <cstdint>

namespace neurite::kernels::avx2 {
using Vector = float __attribute__((vector_size(32)));
inline __m256i first_lanes(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
inline Vector load_first(const float* p, int n) { return reinterpret_cast<Vector>(_mm256_maskload_ps(p, first_lanes(n))); }
inline void store_first(float* p, Vector v, int n) { _mm256_maskstore_ps(p, first_lanes(n), reinterpret_cast<__m256>(v)); }
}  // namespace neurite::kernels::avx2

#define NEURITE_ISA_NAMESPACE avx2
#define NEURITE_ISA_TILE_CSR 8
#define NEURITE_ISA_TILE_ROWS4 2
#include "kernels/sparse_kernels.inl"
