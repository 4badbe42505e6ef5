#include "neurite/kernels/layout.h"

#include <algorithm>
#include <cstring>

namespace neurite::kernels {

int64_t feature_major_ld(int64_t rows) {
  const int64_t ld = (rows + 15) / 16 * 16;
  return ld % 256 == 0 ? ld + 16 : ld;
}

std::pair<int64_t, int64_t> ConvGeometry::input_rows(int64_t r0, int64_t r1) const {
  const int64_t lo = r0 * sh - pad_top, hi = (r1 - 1) * sh - pad_top + (kh - 1) * dh + 1;
  return {std::clamp<int64_t>(lo, 0, height), std::clamp<int64_t>(hi, 0, height)};
}

PhasePlanes::PhasePlanes(const ConvGeometry& g, int64_t images, int64_t window) : g_(g), window_(window) {
  const int64_t wp = g.width + g.pad_left + g.pad_right;
  hq_ = (window + g.sh - 1) / g.sh, wq_ = (wp + g.sw - 1) / g.sw, plane_ = hq_ * wq_;
  front_ = shift(g.kh - 1, g.kw - 1);
  ld_ = images * plane_ + front_ + 16;
}

int64_t PhasePlanes::window_for(const ConvGeometry& g, int64_t out_rows) {
  return (out_rows - 1) * g.sh + (g.kh - 1) * g.dh + 1;
}

void PhasePlanes::column_offsets(std::vector<int64_t>& offsets) const {
  // Taps outside, channels inside: a tile makes these per run, and the
  // divisions of phase() per entry cost a microsecond of a 10 us tile.
  offsets.resize(static_cast<size_t>(g_.channels * g_.taps()));
  for (int64_t i = 0; i < g_.kh; ++i)
    for (int64_t j = 0; j < g_.kw; ++j) {
      const int64_t start = g_.phase(i, j) * g_.channels * ld_ + shift(i, j), tap = i * g_.kw + j;
      for (int64_t c = 0; c < g_.channels; ++c) offsets[static_cast<size_t>(c * g_.taps() + tap)] = start + c * ld_;
    }
}

template <typename F>
void PhasePlanes::for_each_input_row(int64_t count, int64_t first, F f) const {
  const int64_t lo = std::clamp<int64_t>(first - g_.pad_top, 0, g_.height);
  const int64_t hi = std::clamp<int64_t>(first + window_ - g_.pad_top, 0, g_.height);
  // Image and channel outside, rows inside: the input is read in its own
  // order, row after row of one plane (rows outside read planes H·W apart
  // and made a sparse ResNet-20 training step 5-10 % slower).
  for (int64_t s = 0; s < count; ++s)
    for (int64_t c = 0; c < g_.channels; ++c)
      for (int64_t iy = lo; iy < hi; ++iy) {
        const int64_t q = iy + g_.pad_top - first;
        f(iy, s, c, q / g_.sh, q % g_.sh);
      }
}

namespace {
// even[i] = src[2i], odd[i] = src[2i + 1]: the two column phases of a stride-2 row.
void deinterleave(const float* __restrict src, int64_t n, float* __restrict even, float* __restrict odd) {
  const int64_t pairs = n / 2;
  for (int64_t i = 0; i < pairs; ++i) {
    even[i] = src[2 * i];
    odd[i] = src[2 * i + 1];
  }
  if (n % 2 != 0) even[pairs] = src[n - 1];
}
}  // namespace

// Column phase b of a padded row starts at input column x0 = the first with
// (x0 + pad_left) % sw == b, which lands at (x0 + pad_left) / sw in the plane row.
void PhasePlanes::fill(const float* x, int64_t b0, int64_t count, int64_t first, float* planes) const {
  std::fill(planes, planes + size(), 0.0f);
  const ConvGeometry& g = g_;
  for_each_input_row(count, first, [&](int64_t iy, int64_t s, int64_t c, int64_t row, int64_t a) {
    const float* src = x + (((b0 + s) * g.channels + c) * g.height + iy) * g.width;
    float* base = planes + s * plane_ + row * wq_;
    auto phase_row = [&](int64_t b, int64_t x0) { return base + ((a * g.sw + b) * g.channels + c) * ld_ + (x0 + g.pad_left) / g.sw; };
    if (g.sw == 1) {  // the common cases without per-element index arithmetic
      std::memcpy(phase_row(0, 0), src, static_cast<size_t>(g.width) * sizeof(float));
      return;
    }
    const int64_t x_even = g.pad_left % 2;  // the phase of input column 0 when sw == 2
    if (g.sw == 2 && g.width >= 2) {
      deinterleave(src, g.width, phase_row(x_even, 0), phase_row(1 - x_even, 1));
      return;
    }
    for (int64_t b = 0; b < g.sw; ++b) {
      const int64_t x0 = ((b - g.pad_left) % g.sw + g.sw) % g.sw;
      float* at = phase_row(b, x0);
      for (int64_t ix = x0, i = 0; ix < g.width; ix += g.sw, ++i) at[i] = src[ix];
    }
  });
}

void PhasePlanes::read(const float* planes, int64_t b0, int64_t count, int64_t first, float* x) const {
  const ConvGeometry& g = g_;
  for_each_input_row(count, first, [&](int64_t iy, int64_t s, int64_t c, int64_t row, int64_t a) {
    float* dst = x + (((b0 + s) * g.channels + c) * g.height + iy) * g.width;
    const float* base = planes + s * plane_ + row * wq_;
    for (int64_t b = 0; b < g.sw; ++b) {
      const int64_t x0 = ((b - g.pad_left) % g.sw + g.sw) % g.sw;
      const float* at = base + ((a * g.sw + b) * g.channels + c) * ld_ + (x0 + g.pad_left) / g.sw;
      for (int64_t ix = x0, i = 0; ix < g.width; ix += g.sw, ++i) dst[ix] = at[i];
    }
  });
}

}  // namespace neurite::kernels
