// The memory training holds for a model's parameters, split by what holds it.
// Each part scales with density for a parameter in its sparse form, so a
// pruned model's figure shows what sparse training saves.
//
//   loss.backward();
//   sgd.step();
//   const optim::TrainingMemory m = optim::training_memory(*model, sgd);
//   fmt::print("{:.1f} MiB\n", static_cast<double>(m.total_bytes()) / (1 << 20));
#pragma once

#include <cstdint>

#include "neurite/layers/module.h"
#include "neurite/optim/optimizer.h"

namespace neurite::optim {

struct TrainingMemory {
  int64_t parameter_bytes = 0;        // trainable values: a dense tensor, or a sparse form's kept values
  int64_t gradient_bytes = 0;         // gradients held now (none before the first backward)
  int64_t optimizer_state_bytes = 0;  // momentum, Adam moments and step counters
  int64_t sparse_index_bytes = 0;     // the index arrays of parameters in their sparse form
  int64_t total_bytes() const {
    return parameter_bytes + gradient_bytes + optimizer_state_bytes + sparse_index_bytes;
  }
};

// Counts every parameter of `model` and the state `optimizer` holds now.
TrainingMemory training_memory(const layers::Module& model, const Optimizer& optimizer);

}  // namespace neurite::optim
