#include "neurite/optim/memory.h"

namespace neurite::optim {

TrainingMemory training_memory(const layers::Module& model, const Optimizer& optimizer) {
  TrainingMemory m{.optimizer_state_bytes = optimizer.state_bytes()};
  for (const auto& [name, p] : model.named_parameters()) {
    autograd::Variable& trainable = p->trainable();
    m.parameter_bytes += static_cast<int64_t>(trainable.data().nbytes());
    if (trainable.has_grad()) m.gradient_bytes += static_cast<int64_t>(trainable.grad().nbytes());
    if (p->is_sparse()) m.sparse_index_bytes += p->sparse_form()->index_bytes();
  }
  return m;
}

}  // namespace neurite::optim
