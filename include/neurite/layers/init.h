// Parameter initialisation as PyTorch does it, from one seeded generator.
// Every random draw of layers (initial weights, dropout masks) takes its seed
// from next_seed(), so a run is reproducible from manual_seed() and resumable
// from generator_state().
//
//   layers::manual_seed(42);
//   auto model = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
#pragma once

#include <cstdint>

#include "neurite/autograd/tensor.h"

namespace neurite::layers {

void manual_seed(uint64_t seed);
uint64_t next_seed();                // a fresh seed; advances the generator
uint64_t generator_state();          // for checkpoints
void set_generator_state(uint64_t state);

// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d
// weights (kaiming uniform with a = sqrt(5)) and for their biases alike.
autograd::Tensor kaiming_uniform(const autograd::Shape& shape, int64_t fan_in);
// U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
autograd::Tensor xavier_uniform(const autograd::Shape& shape, int64_t fan_in, int64_t fan_out);
autograd::Tensor normal(const autograd::Shape& shape, float stddev);

}  // namespace neurite::layers
