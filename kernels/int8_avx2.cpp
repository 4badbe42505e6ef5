// The INT8 product on AVX2, without VNNI: a group's four weights and each
// item's four activations widened to int16, vpmaddwd summing pairs, one
// horizontal add for the quads (no vpmaddubsw: its int16 sums of uint8 times
// int8 saturate).
#include <immintrin.h>

#include "neurite/kernels/int8.h"

namespace neurite::kernels::avx2 {

namespace {

// The sums of 8 items' quads with one group, in the order hadd leaves them:
// items 0, 1, 4, 5, 2, 3, 6, 7.
inline __m256i quad_sums(const uint8_t* x, __m256i b) {
  const __m256i lo = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))), b);
  const __m256i hi = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16))), b);
  return _mm256_hadd_epi32(lo, hi);
}

}  // namespace

void int8_gemm_entry(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc,
                     int64_t n0, int64_t n1) {
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);  // undoes quad_sums' order
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t g0 = w.row_start[n], g1 = w.row_start[n + 1];
    int32_t* out = acc + n * items;
    for (int64_t m = 0; m < items; m += 16) {  // whole vectors of 16
      __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
      for (int64_t g = g0; g < g1; ++g) {
        const __m256i b = _mm256_cvtepi8_epi16(_mm_set1_epi32(w.weights[g]));
        const uint8_t* x = x4 + (quad_offset[w.quad[g]] + m) * 4;
        s0 = _mm256_add_epi32(s0, quad_sums(x, b));
        s1 = _mm256_add_epi32(s1, quad_sums(x + 32, b));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + m), _mm256_permutevar8x32_epi32(s0, order));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + m + 8), _mm256_permutevar8x32_epi32(s1, order));
    }
  }
}

}  // namespace neurite::kernels::avx2
