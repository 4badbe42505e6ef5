#include "neurite/layers/init.h"

#include <atomic>
#include <cmath>

namespace neurite::layers {

namespace {
std::atomic<uint64_t> g_state{0x5EED};
}

void manual_seed(uint64_t seed) { g_state = seed; }
uint64_t next_seed() { return g_state.fetch_add(0x9E3779B97F4A7C15ull); }
uint64_t generator_state() { return g_state; }
void set_generator_state(uint64_t state) { g_state = state; }

autograd::Tensor kaiming_uniform(const autograd::Shape& shape, int64_t fan_in) {
  // gain sqrt(2 / (1 + a^2)) with a = sqrt(5), times sqrt(3 / fan_in), is 1 / sqrt(fan_in).
  const float bound = fan_in > 0 ? 1.0f / std::sqrt(static_cast<float>(fan_in)) : 0.0f;
  return autograd::Tensor::rand(shape, next_seed(), -bound, bound);
}

autograd::Tensor xavier_uniform(const autograd::Shape& shape, int64_t fan_in, int64_t fan_out) {
  const float a = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
  return autograd::Tensor::rand(shape, next_seed(), -a, a);
}

autograd::Tensor normal(const autograd::Shape& shape, float stddev) {
  return autograd::Tensor::randn(shape, next_seed(), 0.0f, stddev);
}

}  // namespace neurite::layers
