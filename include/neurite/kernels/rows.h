// neurite/kernels/rows.h — kernels over contiguous rows: lane sums, the
// softmax / layer-norm / mean row kernels, and the epilogue that adds a bias,
// a residual and an activation to a row. Training's ops and the engine's
// steps both run these.
//
//   kernels::softmax_rows(x, y, n, 0, rows);          // rows of (rows, n)
//   double s = kernels::lane_sum(n, [&](int64_t i) { return x[i] * x[i]; });
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace neurite::kernels {

// The sum of term(i) for i in [0, n): float partial sums in 16 lanes (so the
// compiler vectorises it without reassociation flags; a double accumulator
// would serialise the loop), combined in double.
template <typename Term>
double lane_sum(int64_t n, Term&& term) {
  constexpr int64_t kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] += term(i + l);
  double total = 0;
  for (; i < n; ++i) total += term(i);
  for (float lane : lanes) total += lane;
  return total;
}

// The maximum of x[0, n) (-inf for n = 0), in 16 lanes.
float lane_max(const float* x, int64_t n);

// Rows [r0, r1) of x (rows, n) into y, in place when y == x:
// softmax: y = exp(x - max) / sum;
// layer_norm: y = (x - mean) / sqrt(var + epsilon) * scale + bias (biased variance);
// mean_rows: y[r] = the mean of row r.
void softmax_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1);
void layer_norm_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1, const float* scale,
                     const float* bias, float epsilon);
void mean_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1);

// What an epilogue applies last: nothing, max(v, 0), or min(max(v, 0), 6)
// (ReLU6, which exporters write as Clip).
enum class Activation { none, relu, relu6 };

// to[i] = act(from[i] + add (+ residual[i])) for i < n; in place when to == from;
// residual may be null. Inline: kernels call it once per output row of a few
// dozen floats, and the call cost 7-12 % of a 4x1-sparse ResNet-20 in the engine.
// One branch-free loop per case, so that each vectorises.
inline void bias_activation_row(float* to, const float* from, int64_t n, float add, const float* __restrict residual,
                                Activation activation) {
  if (activation == Activation::none) {
    if (residual != nullptr) {
      for (int64_t i = 0; i < n; ++i) to[i] = from[i] + add + residual[i];
    } else {
      for (int64_t i = 0; i < n; ++i) to[i] = from[i] + add;
    }
    return;
  }
  const float hi = activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity();
  if (residual != nullptr) {
    for (int64_t i = 0; i < n; ++i) to[i] = std::min(std::max(from[i] + add + residual[i], 0.0f), hi);
  } else {
    for (int64_t i = 0; i < n; ++i) to[i] = std::min(std::max(from[i] + add, 0.0f), hi);
  }
}

// act(v) for one value.
inline float activate(float v, Activation activation) {
  if (activation == Activation::none) return v;
  return std::min(std::max(v, 0.0f), activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity());
}

}  // namespace neurite::kernels
