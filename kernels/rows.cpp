#include "neurite/kernels/rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace neurite::kernels {

namespace {
// exp(x) for x <= 0 (softmax's shifted inputs): 2^(x·log2 e) as 2^n · 2^f with
// a degree-6 polynomial on f in [-0.5, 0.5]; relative error below 2e-7, and
// plain float arithmetic the compiler vectorises (std::exp it does not).
inline float exp_nonpositive(float x) {
  const float t = std::max(x * 1.44269504f, -126.0f);
  const float n = (t + 12582912.0f) - 12582912.0f, f = t - n;  // round to nearest: 1.5 * 2^23
  float p = 1.5403530e-4f;
  p = p * f + 1.3333558e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
}  // namespace

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
    for (int64_t i = 0; i < n; ++i) out[i] = exp_nonpositive(in[i] - m);
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
