// The INT8 product on AVX-512 VNNI: one vpdpbusd per group and 16 items.
#include <immintrin.h>

#include "neurite/kernels/int8.h"

namespace neurite::kernels::avx512 {

void int8_gemm_entry(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc,
                     int64_t n0, int64_t n1) {
  constexpr int64_t kTile = 4;  // vectors of 16 items per pass: four accumulators hide vpdpbusd's latency
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t g0 = w.row_start[n], g1 = w.row_start[n + 1];
    int32_t* out = acc + n * items;
    int64_t m = 0;
    for (; m + kTile * 16 <= items; m += kTile * 16) {
      __m512i s[kTile];
      for (auto& v : s) v = _mm512_setzero_si512();
      for (int64_t g = g0; g < g1; ++g) {
        const __m512i b = _mm512_set1_epi32(w.weights[g]);
        const uint8_t* x = x4 + (quad_offset[w.quad[g]] + m) * 4;
        for (int64_t t = 0; t < kTile; ++t) s[t] = _mm512_dpbusd_epi32(s[t], _mm512_loadu_si512(x + t * 64), b);
      }
      for (int64_t t = 0; t < kTile; ++t) _mm512_storeu_si512(out + m + t * 16, s[t]);
    }
    for (; m < items; m += 16) {  // whole vectors of 16
      __m512i s = _mm512_setzero_si512();
      for (int64_t g = g0; g < g1; ++g)
        s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(x4 + (quad_offset[w.quad[g]] + m) * 4),
                                _mm512_set1_epi32(w.weights[g]));
      _mm512_storeu_si512(out + m, s);
    }
  }
}

}  // namespace neurite::kernels::avx512
