// Sparse training against dense masked training: the same pruned models,
// seeds and data, one on sparse kernels and one on dense masked kernels,
// must take the same steps; a pruning step in the middle rebuilds the sparse
// form and moves the optimizer state with it. After each step the dense run
// takes the sparse run's weights: two summation orders otherwise drift apart
// chaotically over a few steps of a batch-norm net (even the reference
// kernels against the vector ones), which would hide what is compared here:
// each step's update and the optimizer state it carries.
#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>

#include <random>

#include "neurite/autograd/ops.h"
#include "neurite/layers/init.h"
#include "neurite/layers/models.h"
#include "neurite/optim/optimizer.h"

namespace neurite::optim {
namespace {

using autograd::Variable;
using kernels::SparseKernels;

// Prunes every 2-D and 4-D weight further: each kept entry drops with
// probability `drop` (masks only grow), in 4x1 blocks when rows4 is set.
void prune_more(layers::Module& model, double drop, uint64_t seed, bool rows4) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution cut(drop);
  for (auto& [name, p] : model.named_parameters()) {
    if (p->shape().size() != 2 && p->shape().size() != 4) continue;
    if (name.find("embedding") != std::string::npos) continue;
    Tensor mask = p->has_mask() ? p->mask().clone() : Tensor::ones(p->shape());
    const int64_t rows = p->shape()[0], cols = p->numel() / rows;
    const int br = rows4 && rows % 4 == 0 ? 4 : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += br)
      for (int64_t c = 0; c < cols; ++c)
        if (cut(rng))
          for (int r = 0; r < br; ++r) mask.data<float>()[(r0 + r) * cols + c] = 0;
    p->set_mask(mask);
  }
}

struct TrainingRun {
  std::shared_ptr<layers::UnaryModule> model;
  std::unique_ptr<Optimizer> optimizer;
};

TrainingRun make_run(const std::string& name, const layers::models::ModelOptions& o, bool adam, double lr) {
  layers::manual_seed(7);
  TrainingRun r{layers::models::make_model(name, o), nullptr};
  std::vector<ParamGroup> groups{{.params = r.model->parameters(), .lr = lr, .weight_decay = 1e-3}};
  if (adam) r.optimizer = std::make_unique<AdamW>(groups);
  else r.optimizer = std::make_unique<Sgd>(groups, SgdOptions{.momentum = 0.9, .nesterov = true});
  return r;
}

float step(TrainingRun& r, SparseKernels kernels, const Tensor& x, const Tensor& y, uint64_t seed) {
  r.model->set_kernel_policy({.sparse = kernels});
  layers::manual_seed(seed);  // the same dropout masks in both runs
  Variable loss = autograd::cross_entropy(r.model->forward(Variable(x)), y);
  r.optimizer->zero_grad();
  loss.backward();
  clip_grad_norm(r.model->parameters(), 10.0);
  r.optimizer->step();
  return loss.item();
}

template <typename Dict>
void expect_same(const Dict& got, const Dict& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [name, value] : got) {
    const Tensor& t = value;
    const Tensor& u = want.at(name);
    if (t.dtype() != autograd::Dtype::f32) continue;
    for (int64_t k = 0; k < t.numel(); ++k)
      ASSERT_NEAR(t.data<float>()[k], u.data<float>()[k], 5e-4 * (1 + std::abs(u.data<float>()[k])))
          << what << ": " << name << " at " << k;
  }
}

void expect_same_steps(const std::string& name, const layers::models::ModelOptions& o, bool adam, bool rows4,
                       double lr) {
  TrainingRun sparse = make_run(name, o, adam, lr), dense = make_run(name, o, adam, lr);
  prune_more(*sparse.model, 0.8, 1, rows4);
  prune_more(*dense.model, 0.8, 1, rows4);
  const bool tokens = layers::models::takes_tokens(name);
  const int64_t batch = 6;
  for (int t = 0; t < 20; ++t) {
    if (t == 10) {  // a pruning step in the middle of training
      prune_more(*sparse.model, 0.5, 2, rows4);
      prune_more(*dense.model, 0.5, 2, rows4);
    }
    const Tensor x = tokens ? Tensor::randint({batch, o.seq_len}, 100 + t, 0, o.vocab_size)
                            : Tensor::randn({batch, o.in_channels, o.image_size, o.image_size}, 100 + t);
    const Tensor y = Tensor::randint({batch}, 200 + t, 0, o.num_classes);
    const float ls = step(sparse, SparseKernels::always, x, y, 300 + t), ld = step(dense, SparseKernels::never, x, y, 300 + t);
    ASSERT_NEAR(ls, ld, 1e-4 * (1 + std::abs(ld))) << name << " loss at step " << t;
    int64_t sparse_tensors = 0;
    for (const auto& p : sparse.model->parameters()) {
      sparse_tensors += p->is_sparse();
      if (p->is_sparse()) {  // the form follows the current mask, and trains its kept values only
        ASSERT_NEAR(p->sparse_form()->density(), p->density(), 1e-9) << name << " step " << t;
        ASSERT_EQ(p->trainable().numel(), p->sparse_form()->nnz());
      }
    }
    ASSERT_GT(sparse_tensors, 0) << name;
    for (const auto& p : dense.model->parameters()) ASSERT_FALSE(p->is_sparse());
    expect_same(sparse.model->state_dict(), dense.model->state_dict(), fmt::format("{} weights after step {}", name, t));
    dense.model->load_state_dict(sparse.model->state_dict());
  }
  // Optimizer state, in the dense layout: zero at pruned positions and equal to the dense run's.
  expect_same(sparse.optimizer->state_dict(), dense.optimizer->state_dict(), name + " optimizer state");
}

TEST(SparseTraining, MlpFollowsTheDenseMaskedRun) {
  expect_same_steps("mlp", {}, false, false, 0.05);
  expect_same_steps("mlp", {}, true, true, 1e-3);
}

TEST(SparseTraining, ConvNetFollowsTheDenseMaskedRun) {
  expect_same_steps("resnet20", {.in_channels = 3, .image_size = 12}, false, false, 0.01);
  expect_same_steps("cnn", {.image_size = 12}, true, true, 1e-3);
}

TEST(SparseTraining, TransformerFollowsTheDenseMaskedRun) {
  expect_same_steps("transformer", {.vocab_size = 50, .seq_len = 8}, true, false, 1e-3);
}

TEST(SparseTraining, StateDictsAreDenseAndLoadingReturnsToDense) {
  TrainingRun r = make_run("mlp", {}, false, 0.05);
  r.model->set_kernel_policy({.sparse = SparseKernels::always});
  prune_more(*r.model, 0.9, 3, false);
  r.model->forward(Variable(Tensor::randn({2, 1, 28, 28}, 1)));
  auto fc = r.model->named_parameters().front().second;
  ASSERT_TRUE(fc->is_sparse());
  const auto state = r.model->state_dict();
  const Tensor& w = state.at(r.model->named_parameters().front().first);
  for (int64_t k = 0; k < w.numel(); ++k)
    if (fc->mask().data<float>()[k] == 0) { ASSERT_EQ(w.data<float>()[k], 0.0f); }
  auto changed = state;
  for (auto& [name, t] : changed) t = t.clone();
  changed.begin()->second.data<float>()[0] += 1;  // any change must land
  r.model->load_state_dict(changed);
  EXPECT_FALSE(fc->is_sparse());
  EXPECT_EQ(r.model->state_dict().begin()->second.data<float>()[0], changed.begin()->second.data<float>()[0]);
}

}  // namespace
}  // namespace neurite::optim
