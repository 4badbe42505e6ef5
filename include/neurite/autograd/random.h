// Counter-based random numbers: value i of stream `seed` is a pure function of
// (seed, i), so tensors fill in parallel and are the same on every machine and
// thread count.
#pragma once

#include <cmath>
#include <cstdint>

namespace neurite::autograd::detail {

inline uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t random_bits(uint64_t seed, uint64_t i) { return mix64(mix64(seed) ^ i); }

// 32 random bits for element i of a stream keyed by a 32-bit key (lowbias32,
// a 32-bit finaliser): 32-bit multiplies vectorise, so a loop over i runs 8
// elements at a time where random_bits runs one. For per-element decisions
// such as dropout's; a stream repeats after 2^32 elements.
inline uint32_t random_bits32(uint32_t key, uint32_t i) {
  uint32_t x = key ^ (i * 0x9E3779B9u);
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// Uniform in [0, 1) with 24 random bits.
inline float uniform01(uint64_t seed, uint64_t i) {
  return static_cast<float>(random_bits(seed, i) >> 40) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller from two independent draws.
inline float normal01(uint64_t seed, uint64_t i) {
  const uint64_t bits = random_bits(seed, i);
  const double u1 = (static_cast<double>(bits >> 40) + 1.0) / 16777217.0;  // (0, 1)
  const double u2 = static_cast<double>(bits & 0xFFFFFFull) / 16777216.0;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace neurite::autograd::detail
