// neurite/kernels/elementwise.h — elementwise kernels over runs of floats:
// unary maps (activations and math functions in vectorised polynomial forms)
// and binary ops whose operands are each a run or one broadcast scalar. The
// engine's elementwise steps run them over numpy-broadcast tensors.
//
//   kernels::unary(kernels::Unary{kernels::UnaryOp::gelu}, x, y, n);
//   kernels::binary(kernels::BinaryOp::add, a, false, b, true, y, n);  // y = a + b[0]
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace neurite::kernels {

enum class UnaryOp { relu, sigmoid, tanh, sqrt, erf, exp, neg, abs, reciprocal, gelu, gelu_tanh, clip, power };

// A unary map and its parameters: clip's bounds [lo, hi], power's exponent.
struct Unary {
  UnaryOp op = UnaryOp::relu;
  float lo = 0, hi = 0, exponent = 1;
};
std::string_view to_string(UnaryOp op);

// y[i] = f(x[i]) for i < n; in place when y == x. Accuracy: within 2e-7
// relative (exp, sigmoid, tanh) or 3e-7 absolute (erf, gelu) of the exact value.
void unary(const Unary& f, const float* x, float* y, int64_t n);

enum class BinaryOp { add, sub, mul, div, pow, max, min };
std::string_view to_string(BinaryOp op);

// y[i] = a[i] op b[i] for i < n, where an operand flagged `scalar` is a[0]
// (b[0]) throughout; y may alias either operand.
void binary(BinaryOp op, const float* a, bool a_scalar, const float* b, bool b_scalar, float* y, int64_t n);

// exp(x) as 2^n · 2^f, f in [-0.5, 0.5], with a degree-6 polynomial for 2^f:
// relative error below 2e-7, and plain float arithmetic the compiler
// vectorises (std::exp it does not). Below -87.3 it gives 2^-126, not 0;
// above 88.7, inf.
inline float exp_approx(float x) {
  const float t = std::min(std::max(x * 1.44269504f, -126.0f), 128.0f);
  const float n = (t + 12582912.0f) - 12582912.0f, f = t - n;  // round to nearest: 1.5 * 2^23
  float p = 1.5403530e-4f;
  p = p * f + 1.3333558e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  // n is NaN when x is: clamped to a bound for the exponent bits (a NaN to
  // int conversion is undefined), the result stays NaN through p.
  const int32_t bits = (static_cast<int32_t>(std::max(-126.0f, std::min(n, 128.0f))) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace neurite::kernels
