// The engine's pooling kernel.
#include <algorithm>
#include <limits>

#include "engine/kernels.h"

namespace neurite::engine::detail {

void pool_planes(const ConvGeometry& g, bool is_max, bool include_pad, const float* x, float* y, int64_t p0,
                 int64_t p1) {
  const bool two_by_two = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.pad_top == 0 && g.pad_left == 0 &&
                          g.out_h * 2 <= g.height && g.out_w * 2 <= g.width;
  for (int64_t p = p0; p < p1; ++p) {
    const float* in = x + p * g.height * g.width;
    float* out = y + p * g.out_h * g.out_w;
    if (two_by_two) {  // the common case, as one loop the compiler vectorises
      for (int64_t oy = 0; oy < g.out_h; ++oy) {
        const float* __restrict a = in + 2 * oy * g.width;
        const float* __restrict b = a + g.width;
        float* __restrict o = out + oy * g.out_w;
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          const float m = is_max ? std::max(std::max(a[2 * ox], a[2 * ox + 1]), std::max(b[2 * ox], b[2 * ox + 1]))
                                 : 0.25f * (a[2 * ox] + a[2 * ox + 1] + b[2 * ox] + b[2 * ox + 1]);
          o[ox] = m;
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      const int64_t y0 = oy * g.sh - g.pad_top, ya = std::max<int64_t>(y0, 0), yb = std::min(y0 + g.kh, g.height);
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        const int64_t x0 = ox * g.sw - g.pad_left, xa = std::max<int64_t>(x0, 0), xb = std::min(x0 + g.kw, g.width);
        float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
        for (int64_t iy = ya; iy < yb; ++iy)
          for (int64_t ix = xa; ix < xb; ++ix) acc = is_max ? std::max(acc, in[iy * g.width + ix]) : acc + in[iy * g.width + ix];
        if (!is_max) acc /= static_cast<float>(include_pad ? g.kh * g.kw : std::max<int64_t>(1, (yb - ya) * (xb - xa)));
        out[oy * g.out_w + ox] = acc;
      }
    }
  }
}

}  // namespace neurite::engine::detail
