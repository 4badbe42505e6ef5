// neurite/kernels/layout.h — the operand layouts of the sparse products:
// feature-major activations for linear layers, and phase planes for direct
// convolutions. Training and the engine lay out their operands with these, so
// a fix or a tuning reaches both.
//
//   kernels::PhasePlanes p(geometry, images, kernels::PhasePlanes::window_for(geometry, out_rows));
//   std::vector<int64_t> offsets;
//   p.column_offsets(offsets);
//   p.fill(x, b0, images, r0 * geometry.sh, planes);       // planes: p.size() floats
//   kernels::spmm(w.pattern, w.values.data(), {planes, offsets.data()}, y, ldy, 0, w.pattern.row_blocks(), 0,
//                 pixels, kernels::best_isa());
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace neurite::kernels {

// The row stride of a feature-major copy (features, ld) of `rows` batch rows:
// whole 16-float vectors, and off a multiple of 1 KiB (a power-of-two stride
// maps every feature row to the same cache sets).
int64_t feature_major_ld(int64_t rows);

// A 2-D convolution of x (batch, channels, height, width) by `filters` filters
// of kh x kw, with strides, dilations and per-side padding.
struct ConvGeometry {
  int64_t batch, channels, height, width;
  int64_t filters, kh, kw, sh, sw, dh, dw;
  int64_t pad_top, pad_left, pad_bottom, pad_right;
  int64_t out_h, out_w;
  int64_t taps() const { return kh * kw; }
  int64_t phases() const { return sh * sw; }
  // The phase plane tap (i, j) reads (see PhasePlanes).
  int64_t phase(int64_t i, int64_t j) const { return (i * dh % sh) * sw + j * dw % sw; }
  // The input rows [lo, hi) that output rows [r0, r1) read.
  std::pair<int64_t, int64_t> input_rows(int64_t r0, int64_t r1) const;
};

// A direct convolution as one sparse-times-dense product over phase planes.
//
// The padded input is split into sh x sw phase planes: plane (a, b) holds
// padded rows a, a + sh, ... and padded columns b, b + sw, ..., as hq x wq
// floats. The planes hold a window of padded rows [first, first + window) of
// `images` images, stored channel-major with the images inside a row: row
// (phase, channel) holds the images' planes one after another, `ld` floats
// long. Tap (i, j) reads plane phase(i, j) shifted by shift(i, j), so output
// pixel p = n·plane + oy·wq + ox (oy counted from the window's first output
// row) reads element p + shift of that row: every (channel, tap) column of
// the weight is a dense row at a fixed offset, and the convolution of the
// window is one product over pixels. Pixels with ox >= out_w (or past the
// last output row) are scratch, computed and dropped. Each row ends with
// `front` + 16 floats of slack, because the last pixels' reads run past the
// last plane by up to the largest shift.
class PhasePlanes {
 public:
  PhasePlanes(const ConvGeometry& g, int64_t images, int64_t window);
  // The padded rows that `out_rows` consecutive output rows read.
  static int64_t window_for(const ConvGeometry& g, int64_t out_rows);

  int64_t shift(int64_t i, int64_t j) const { return i * g_.dh / g_.sh * wq_ + j * g_.dw / g_.sw; }
  int64_t hq() const { return hq_; }
  int64_t wq() const { return wq_; }
  int64_t plane() const { return plane_; }
  int64_t front() const { return front_; }  // the largest shift
  int64_t ld() const { return ld_; }
  int64_t size() const { return g_.phases() * g_.channels * ld_; }  // floats of the planes
  // Per weight column (c, i, j) at c·kh·kw + i·kw + j: where its dense row
  // starts. Into a caller's buffer (resized to channels·kh·kw), so a thread
  // running tile after tile allocates once.
  void column_offsets(std::vector<int64_t>& offsets) const;
  // Zeros, then images [b0, b0 + count) of x (N, C, H, W), padded rows from
  // `first` on (first = r0·sh for output rows from r0). count <= images.
  void fill(const float* x, int64_t b0, int64_t count, int64_t first, float* planes) const;
  // The inverse of fill for the input's own pixels: writes them to x.
  void read(const float* planes, int64_t b0, int64_t count, int64_t first, float* x) const;

 private:
  // Calls f(input row iy, image s, channel c, row of the planes it lands at, padded-row phase a).
  template <typename F>
  void for_each_input_row(int64_t count, int64_t first, F f) const;
  ConvGeometry g_;
  int64_t window_, hq_, wq_, plane_, front_, ld_;
};

}  // namespace neurite::kernels
