// The INT8 product on AVX-512 VNNI: one vpdpbusd per group and 16 items;
// its float epilogue with masked tails.
#include <immintrin.h>

#include <algorithm>
#include <limits>

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

void int8_epilogue_entry(const int32_t* sums, int64_t rows, int64_t cols, int64_t ld, float scale, int32_t correction,
                         float bias, const float* residual, Activation activation, float* to) {
  const __m512 s = _mm512_set1_ps(scale), b = _mm512_set1_ps(bias);
  const __m512i z = _mm512_set1_epi32(correction);
  const __m512 lo = _mm512_set1_ps(activation == Activation::none ? -std::numeric_limits<float>::infinity() : 0.0f);
  const __m512 hi = _mm512_set1_ps(activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* from = sums + r * ld;
    const float* res = residual != nullptr ? residual + r * cols : nullptr;
    float* out = to + r * cols;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 k = cols - c >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (cols - c)) - 1);
      __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_maskz_loadu_epi32(k, from + c), z));
      v = _mm512_add_ps(_mm512_mul_ps(s, v), b);
      if (res != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + c));
      // max(lo, v) and min(hi, v) return v where it is NaN, as std::max(v, lo) does.
      _mm512_mask_storeu_ps(out + c, k, _mm512_min_ps(hi, _mm512_max_ps(lo, v)));
    }
  }
}

namespace {

// r[i][j] <- r[j][i] for a 16 x 16 tile of 32-bit values.
void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // 32-bit pairs of rows 2i, 2i + 1
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // 64-bit pairs: each 128-bit lane now holds one column of four rows
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // u[4i + c] lane L: rows 4i..4i+3 of column 4L + c. Gather the lanes of
  // column j = 4L + c from u[c], u[4 + c], u[8 + c], u[12 + c].
  for (int c = 0; c < 4; ++c) {
    const __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), b = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i e = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), g = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_i32x4(a, e, 0x88);       // lane 0 of each: column c
    r[8 + c] = _mm512_shuffle_i32x4(a, e, 0xdd);   // lane 2: column 8 + c
    r[4 + c] = _mm512_shuffle_i32x4(b, g, 0x88);   // lane 1: column 4 + c
    r[12 + c] = _mm512_shuffle_i32x4(b, g, 0xdd);  // lane 3: column 12 + c
  }
}

}  // namespace

void int8_epilogue_rows_entry(const int32_t* sums, int64_t ld, int64_t features, int64_t rows, const float* scale,
                              const int32_t* correction, const float* bias, const float* residual, int64_t ldr,
                              Activation activation, float* out, int64_t ldo) {
  const __m512 lo = _mm512_set1_ps(activation == Activation::none ? -std::numeric_limits<float>::infinity() : 0.0f);
  const __m512 hi = _mm512_set1_ps(activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity());
  for (int64_t f0 = 0; f0 < features; f0 += 16) {
    const int64_t nf = std::min<int64_t>(16, features - f0);
    const __mmask16 k = nf == 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << nf) - 1);
    const __m512 s = _mm512_maskz_loadu_ps(k, scale + f0);
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(k, bias + f0) : _mm512_setzero_ps();
    const __m512i z = _mm512_maskz_loadu_epi32(k, correction + f0);
    for (int64_t m0 = 0; m0 < rows; m0 += 16) {
      __m512i r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = i < nf ? _mm512_loadu_si512(sums + (f0 + i) * ld + m0) : _mm512_setzero_si512();
      transpose16(r);  // r[j]: item m0 + j's features f0..f0+15
      for (int64_t j = 0; j < std::min<int64_t>(16, rows - m0); ++j) {
        __m512 v = _mm512_add_ps(_mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(r[j], z))), b);
        if (residual != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, residual + (m0 + j) * ldr + f0));
        _mm512_mask_storeu_ps(out + (m0 + j) * ldo + f0, k, _mm512_min_ps(hi, _mm512_max_ps(lo, v)));
      }
    }
  }
}

}  // namespace neurite::kernels::avx512
