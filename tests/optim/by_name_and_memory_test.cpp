// Optimizers by name with their defaults, and the training memory report.
#include <gtest/gtest.h>

#include "neurite/autograd/ops.h"
#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/models.h"
#include "neurite/optim/by_name.h"
#include "neurite/optim/memory.h"
#include "support/expect_error.h"

namespace neurite::optim {
namespace {

using autograd::Variable;

TEST(OptimizerByName, DefaultsAndTypesFollowTheName) {
  EXPECT_DOUBLE_EQ(default_hyperparameters("sgd").lr, 0.05);
  EXPECT_DOUBLE_EQ(default_hyperparameters("sgd").weight_decay, 5e-4);
  EXPECT_DOUBLE_EQ(default_hyperparameters("adam").lr, 1e-3);
  EXPECT_DOUBLE_EQ(default_hyperparameters("adam").weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(default_hyperparameters("adamw").lr, 1e-3);
  EXPECT_DOUBLE_EQ(default_hyperparameters("adamw").weight_decay, 0.05);
  auto model = layers::models::make_model("mlp");
  const std::vector<ParamGroup> groups{{.params = model->parameters(), .lr = 0.1}};
  EXPECT_NE(dynamic_cast<Sgd*>(make_optimizer("sgd", groups).get()), nullptr);
  auto adam = make_optimizer("adam", groups);
  EXPECT_NE(dynamic_cast<Adam*>(adam.get()), nullptr);
  EXPECT_EQ(dynamic_cast<AdamW*>(adam.get()), nullptr);
  EXPECT_NE(dynamic_cast<AdamW*>(make_optimizer("adamw", groups).get()), nullptr);
  EXPECT_FALSE(is_optimizer_name("lion"));
  testing::expect_error<ValueError>([&] { make_optimizer("lion", groups); }, {"'lion'", "sgd, adam or adamw"});
  EXPECT_THROW(default_hyperparameters("SGD"), ValueError);
}

void train_step(layers::UnaryModule& model, Optimizer& optimizer) {
  const Tensor x = Tensor::randn({4, 1, 28, 28}, 1), y = Tensor::randint({4}, 2, 0, 10);
  Variable loss = autograd::cross_entropy(model.forward(Variable(x)), y);
  optimizer.zero_grad();
  loss.backward();
  optimizer.step();
}

TEST(TrainingMemory, CountsValuesGradientsAndMomentumOfADenseModel) {
  layers::manual_seed(0);
  auto mlp = layers::models::make_model("mlp");
  Sgd sgd({{.params = mlp->parameters(), .lr = 0.01}}, {.momentum = 0.9});
  const int64_t bytes = 4 * mlp->parameter_count();
  TrainingMemory m = training_memory(*mlp, sgd);
  EXPECT_EQ(m.parameter_bytes, bytes);
  EXPECT_EQ(m.gradient_bytes + m.optimizer_state_bytes + m.sparse_index_bytes, 0);
  train_step(*mlp, sgd);
  m = training_memory(*mlp, sgd);
  EXPECT_EQ(m.parameter_bytes, bytes);
  EXPECT_EQ(m.gradient_bytes, bytes);
  EXPECT_EQ(m.optimizer_state_bytes, sgd.state_bytes());
  EXPECT_GE(m.optimizer_state_bytes, bytes);  // one momentum buffer per weight
  EXPECT_EQ(m.sparse_index_bytes, 0);
  EXPECT_EQ(m.total_bytes(), 3 * bytes + (m.optimizer_state_bytes - bytes));
}

TEST(TrainingMemory, SparseParametersCountTheirKeptValuesAndIndices) {
  layers::manual_seed(0);
  auto mlp = layers::models::make_model("mlp");
  int64_t pruned_weights = 0;
  for (auto& p : mlp->parameters())
    if (p->shape().size() == 2) {  // keep one weight in ten
      Tensor mask = Tensor::zeros(p->shape());
      for (int64_t k = 0; k < p->numel(); k += 10) mask.data<float>()[k] = 1;
      p->set_mask(mask);
      pruned_weights += p->numel();
    }
  mlp->set_kernel_policy({.sparse = kernels::SparseKernels::always});
  Sgd sgd({{.params = mlp->parameters(), .lr = 0.01}}, {.momentum = 0.9});
  train_step(*mlp, sgd);
  const TrainingMemory m = training_memory(*mlp, sgd);
  int64_t kept = 0, index_bytes = 0;
  for (auto& p : mlp->parameters()) {
    kept += p->trainable().numel();
    if (p->is_sparse()) index_bytes += p->sparse_form()->index_bytes();
  }
  ASSERT_GT(index_bytes, 0) << "no parameter switched to its sparse form";
  EXPECT_LT(kept, mlp->parameter_count() - pruned_weights / 2);
  EXPECT_EQ(m.parameter_bytes, 4 * kept);
  EXPECT_EQ(m.gradient_bytes, 4 * kept);
  EXPECT_EQ(m.sparse_index_bytes, index_bytes);
  EXPECT_EQ(m.optimizer_state_bytes, sgd.state_bytes());
}

}  // namespace
}  // namespace neurite::optim
