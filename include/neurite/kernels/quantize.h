// neurite/kernels/quantize.h — affine 8-bit quantisation over runs of floats,
// as ONNX's QuantizeLinear and DequantizeLinear and PyTorch's fake_quantize
// define it:
//   q  = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
//   x' = (q - zero_point) * scale
// x / scale is x times the float reciprocal of the scale, as PyTorch computes
// it (ONNX Runtime divides; the two differ only where x / scale is within
// one float step of a rounding tie).
//
//   kernels::QuantGrid g{.scale = 0.02f, .zero_point = -128, .qmin = -128, .qmax = 127};
//   kernels::fake_quantize(g, x, y, n);
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace neurite::kernels {

struct QuantGrid {
  float scale = 1;
  int32_t zero_point = 0;
  int32_t qmin = -128, qmax = 127;
};

// round_half_even(x · inverse) + zero_point before the clamp, limited to
// [lo - 1, hi + 1] (out of range stays out of range): plain float arithmetic
// that vectorises; std::nearbyint is a libm call without SSE4.1. Adding and
// subtracting 1.5 · 2^23 rounds half to even in the default rounding mode.
// The clamps take NaN to the low end (std::max(a, NaN) is a). Ranges must
// stay within ±2^20 for the rounding.
inline float grid_position(float x, float inverse, float zero_point, float lo, float hi) {
  const float v = std::min(hi - zero_point + 1.0f, std::max(lo - zero_point - 1.0f, x * inverse));
  return ((v + 12582912.0f) - 12582912.0f) + zero_point;
}
// The clamped grid value of x: q in [lo, hi].
inline float grid_value(float x, float inverse, float zero_point, float lo, float hi) {
  return std::min(hi, std::max(lo, grid_position(x, inverse, zero_point, lo, hi)));
}

// y = x' for i < n (y may be x).
void fake_quantize(const QuantGrid& g, const float* x, float* y, int64_t n);
// The straight-through gradient: dx = dy where round(x / scale) + zero_point
// lies inside [qmin, qmax], else 0 (dx may be dy).
void fake_quantize_grad(const QuantGrid& g, const float* x, const float* dy, float* dx, int64_t n);
// q for i < n; the grid's range must fit the type.
void quantize(const QuantGrid& g, const float* x, int8_t* q, int64_t n);
void quantize(const QuantGrid& g, const float* x, uint8_t* q, int64_t n);
// (q - zero_point) * scale for i < n.
void dequantize(const QuantGrid& g, const int8_t* q, float* y, int64_t n);
void dequantize(const QuantGrid& g, const uint8_t* q, float* y, int64_t n);

// A tensor of `shape` as runs of one channel of `axis` (-1: the whole tensor,
// channel 0): calls f(channel, offset, length) for each run, in memory order
// within a channel.
template <typename F>
void for_each_channel_run(const std::vector<int64_t>& shape, int64_t axis, F&& f) {
  int64_t outer = 1, channels = 1, inner = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const int64_t at = static_cast<int64_t>(d);
    if (axis < 0 || at > axis) inner *= shape[d];
    else if (at < axis) outer *= shape[d];
    else channels = shape[d];
  }
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t o = 0; o < outer; ++o) f(c, (o * channels + c) * inner, inner);
}

}  // namespace neurite::kernels
