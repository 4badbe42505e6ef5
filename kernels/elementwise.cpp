#include "neurite/kernels/elementwise.h"

#include <cmath>

namespace neurite::kernels {

namespace {

// tanh(x) = 1 - 2 / (exp(2x) + 1), and its Taylor series below |x| = 0.25,
// where the subtraction would cancel (error there below 1e-7 absolute).
inline float tanh_approx(float x) {
  const float e = exp_approx(2.0f * x);
  const float big = 1.0f - 2.0f / (e + 1.0f);
  const float x2 = x * x;
  const float small = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
  return std::fabs(x) < 0.25f ? small : big;
}

// Abramowitz & Stegun 7.1.26: erf(x) = 1 - t·P(t)·exp(-x²), t = 1/(1 + p|x|);
// absolute error below 1.5e-7 (plus exp_approx's).
inline float erf_approx(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float r = 1.0f - poly * exp_approx(-a * a);
  return std::copysign(r, x);
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// One loop per op, each branch-free in its body so that it vectorises.
template <typename F>
void map(const float* x, float* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <typename F>
void zip(const float* a, bool a_scalar, const float* b, bool b_scalar, float* y, int64_t n, F f) {
  if (a_scalar && b_scalar) {
    const float v = f(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  } else if (a_scalar) {
    const float s = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(s, b[i]);
  } else if (b_scalar) {
    const float s = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], s);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  }
}

}  // namespace

std::string_view to_string(UnaryOp op) {
  constexpr std::string_view names[] = {"relu", "sigmoid", "tanh", "sqrt", "erf", "exp", "neg",
                                        "abs", "reciprocal", "gelu", "gelu_tanh", "clip", "power"};
  return names[static_cast<int>(op)];
}

std::string_view to_string(BinaryOp op) {
  constexpr std::string_view names[] = {"add", "sub", "mul", "div", "pow", "max", "min"};
  return names[static_cast<int>(op)];
}

void unary(const Unary& f, const float* x, float* y, int64_t n) {
  switch (f.op) {
    case UnaryOp::relu: return map(x, y, n, [](float v) { return std::max(v, 0.0f); });
    case UnaryOp::sigmoid: return map(x, y, n, sigmoid_approx);
    case UnaryOp::tanh: return map(x, y, n, tanh_approx);
    case UnaryOp::sqrt: return map(x, y, n, [](float v) { return std::sqrt(v); });
    case UnaryOp::erf: return map(x, y, n, erf_approx);
    case UnaryOp::exp: return map(x, y, n, exp_approx);
    case UnaryOp::neg: return map(x, y, n, [](float v) { return -v; });
    case UnaryOp::abs: return map(x, y, n, [](float v) { return std::fabs(v); });
    case UnaryOp::reciprocal: return map(x, y, n, [](float v) { return 1.0f / v; });
    case UnaryOp::gelu:  // x/2 · (1 + erf(x/√2))
      return map(x, y, n, [](float v) { return 0.5f * v * (1.0f + erf_approx(v * 0.70710678f)); });
    case UnaryOp::gelu_tanh:  // x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
      return map(x, y, n, [](float v) { return 0.5f * v * (1.0f + tanh_approx(0.7978845608f * (v + 0.044715f * v * v * v))); });
    case UnaryOp::clip: return map(x, y, n, [lo = f.lo, hi = f.hi](float v) { return std::min(std::max(v, lo), hi); });
    case UnaryOp::power:
      if (f.exponent == 2.0f) return map(x, y, n, [](float v) { return v * v; });
      if (f.exponent == 0.5f) return map(x, y, n, [](float v) { return std::sqrt(v); });
      if (f.exponent == 3.0f) return map(x, y, n, [](float v) { return v * v * v; });
      if (f.exponent == -1.0f) return map(x, y, n, [](float v) { return 1.0f / v; });
      return map(x, y, n, [e = f.exponent](float v) { return std::pow(v, e); });
  }
}

void binary(BinaryOp op, const float* a, bool a_scalar, const float* b, bool b_scalar, float* y, int64_t n) {
  switch (op) {
    case BinaryOp::add: return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return u + v; });
    case BinaryOp::sub: return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return u - v; });
    case BinaryOp::mul: return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return u * v; });
    case BinaryOp::div: return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return u / v; });
    case BinaryOp::max: return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return std::max(u, v); });
    case BinaryOp::min: return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return std::min(u, v); });
    case BinaryOp::pow:
      if (b_scalar && !a_scalar && (b[0] == 2.0f || b[0] == 0.5f || b[0] == 3.0f || b[0] == -1.0f))
        return unary({.op = UnaryOp::power, .exponent = b[0]}, a, y, n), void();
      if (b_scalar && !a_scalar && b[0] == 1.0f) return map(a, y, n, [](float v) { return v; });
      return zip(a, a_scalar, b, b_scalar, y, n, [](float u, float v) { return std::pow(u, v); });
  }
}

}  // namespace neurite::kernels
