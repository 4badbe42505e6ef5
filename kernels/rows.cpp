#include "neurite/kernels/rows.h"

#include "neurite/kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace neurite::kernels {


float lane_max(const float* x, int64_t n) {
  constexpr int64_t kLanes = 16;
  float m[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) m[l] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) m[l] = std::max(m[l], x[i + l]);
  for (; i < n; ++i) m[0] = std::max(m[0], x[i]);
  return *std::max_element(m, m + kLanes);
}

void softmax_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * n;
    float* out = y + r * n;
    const float m = lane_max(in, n);
    for (int64_t i = 0; i < n; ++i) out[i] = exp_approx(in[i] - m);
    const auto inv = static_cast<float>(1.0 / lane_sum(n, [out](int64_t i) { return out[i]; }));
    for (int64_t i = 0; i < n; ++i) out[i] *= inv;
  }
}

void mean_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * n;
    y[r] = static_cast<float>(lane_sum(n, [in](int64_t i) { return in[i]; }) / static_cast<double>(n));
  }
}

void layer_norm_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1, const float* scale,
                     const float* bias, float epsilon) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * n;
    float* out = y + r * n;
    const auto mean = static_cast<float>(lane_sum(n, [in](int64_t i) { return in[i]; }) / static_cast<double>(n));
    const double var =
        lane_sum(n, [in, mean](int64_t i) { return (in[i] - mean) * (in[i] - mean); }) / static_cast<double>(n);
    const auto inv = static_cast<float>(1.0 / std::sqrt(var + epsilon));
    for (int64_t i = 0; i < n; ++i) out[i] = (in[i] - mean) * inv * scale[i] + bias[i];
  }
}

}  // namespace neurite::kernels
