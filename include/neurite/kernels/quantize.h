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

#include <cstdint>

namespace neurite::kernels {

struct QuantGrid {
  float scale = 1;
  int32_t zero_point = 0;
  int32_t qmin = -128, qmax = 127;
};

// y = x' for i < n (y may be x).
void fake_quantize(const QuantGrid& g, const float* x, float* y, int64_t n);
// The straight-through gradient: dx = dy where round(x / scale) + zero_point
// lies inside [qmin, qmax], else 0 (dx may be dy).
void fake_quantize_grad(const QuantGrid& g, const float* x, const float* dy, float* dx, int64_t n);
// q for i < n, widened to int64 (the engine holds 8-bit tensors as int64).
void quantize(const QuantGrid& g, const float* x, int64_t* q, int64_t n);
// (q - zero_point) * scale for i < n.
void dequantize(const QuantGrid& g, const int64_t* q, float* y, int64_t n);

}  // namespace neurite::kernels
