// The blocked transpose (kernels/transpose.h).
#include "neurite/kernels/transpose.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <xmmintrin.h>

#include <algorithm>

namespace neurite::kernels {

// dst (cols, rows) = src (rows, cols)ᵀ with leading dimensions lds and ldd:
// 32 x 32 tiles, 4 x 4 register transposes inside (SSE, which
// every x86-64 has). Inside a tile the walk runs along the rows of the side
// with the power-of-two stride (`along_src`), so that side keeps four cache
// lines live; the other side is the padded feature-major one, whose rows do
// not alias in cache.
void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd, bool along_src) {
  constexpr int64_t T = 32;
  auto block = [&](int64_t i, int64_t j) {
    __m128 a = _mm_loadu_ps(src + i * lds + j), b = _mm_loadu_ps(src + (i + 1) * lds + j);
    __m128 c = _mm_loadu_ps(src + (i + 2) * lds + j), d = _mm_loadu_ps(src + (i + 3) * lds + j);
    _MM_TRANSPOSE4_PS(a, b, c, d);
    _mm_storeu_ps(dst + j * ldd + i, a);
    _mm_storeu_ps(dst + (j + 1) * ldd + i, b);
    _mm_storeu_ps(dst + (j + 2) * ldd + i, c);
    _mm_storeu_ps(dst + (j + 3) * ldd + i, d);
  };
  auto tile = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    const int64_t i4 = i0 + (i1 - i0) / 4 * 4, j4 = j0 + (j1 - j0) / 4 * 4;
    if (along_src) {
      for (int64_t i = i0; i < i4; i += 4)
        for (int64_t j = j0; j < j4; j += 4) block(i, j);
    } else {
      for (int64_t j = j0; j < j4; j += 4)
        for (int64_t i = i0; i < i4; i += 4) block(i, j);
    }
    for (int64_t i = i0; i < i1; ++i)  // the ragged edges
      for (int64_t j = (i < i4 ? j4 : j0); j < j1; ++j) dst[j * ldd + i] = src[i * lds + j];
  };
  // Tasks of 64 K floats at least: per-task overhead dominated 32 x 32 tasks.
  const int64_t grain_rows = std::max<int64_t>(T, (int64_t{1} << 16) / std::max<int64_t>(cols, 1) / T * T);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain_rows), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i0 = r.begin(); i0 < r.end(); i0 += T)
      for (int64_t j0 = 0; j0 < cols; j0 += T) tile(i0, std::min(i0 + T, r.end()), j0, std::min(j0 + T, cols));
  });
}

}  // namespace neurite::kernels
