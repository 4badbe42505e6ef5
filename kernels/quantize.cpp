#include "neurite/kernels/quantize.h"

#include <algorithm>
#include <cmath>

namespace neurite::kernels {

void fake_quantize(const QuantGrid& g, const float* x, float* y, int64_t n) {
  const float inverse = 1.0f / g.scale, zp = static_cast<float>(g.zero_point);
  const float lo = static_cast<float>(g.qmin), hi = static_cast<float>(g.qmax);
  for (int64_t i = 0; i < n; ++i) y[i] = (grid_value(x[i], inverse, zp, lo, hi) - zp) * g.scale;
}

void fake_quantize_grad(const QuantGrid& g, const float* x, const float* dy, float* dx, int64_t n) {
  const float inverse = 1.0f / g.scale, zp = static_cast<float>(g.zero_point);
  const float lo = static_cast<float>(g.qmin), hi = static_cast<float>(g.qmax);
  for (int64_t i = 0; i < n; ++i) {
    const float q = grid_position(x[i], inverse, zp, lo, hi);
    dx[i] = q >= lo && q <= hi ? dy[i] : 0.0f;
  }
}

namespace {

template <typename Q>
void quantize_to(const QuantGrid& g, const float* x, Q* q, int64_t n) {
  const float inverse = 1.0f / g.scale, zp = static_cast<float>(g.zero_point);
  const float lo = static_cast<float>(g.qmin), hi = static_cast<float>(g.qmax);
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<Q>(grid_value(x[i], inverse, zp, lo, hi));
}

template <typename Q>
void dequantize_from(const QuantGrid& g, const Q* q, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<int32_t>(q[i]) - g.zero_point) * g.scale;
}

}  // namespace

void quantize(const QuantGrid& g, const float* x, int8_t* q, int64_t n) { quantize_to(g, x, q, n); }
void quantize(const QuantGrid& g, const float* x, uint8_t* q, int64_t n) { quantize_to(g, x, q, n); }
void dequantize(const QuantGrid& g, const int8_t* q, float* y, int64_t n) { dequantize_from(g, q, y, n); }
void dequantize(const QuantGrid& g, const uint8_t* q, float* y, int64_t n) { dequantize_from(g, q, y, n); }

}  // namespace neurite::kernels
