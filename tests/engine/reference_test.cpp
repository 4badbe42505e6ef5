// The reference executor against the same computation written with the
// autograd ops directly.
#include <gtest/gtest.h>

#include <cmath>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/engine/reference.h"
#include "support/expect_error.h"
#include "tests/engine/sample_graphs.h"

namespace neurite::engine {
namespace {

using autograd::Variable;

TEST(ReferenceExecutor, RunsAConvNetAsTheAutogradOpsDo) {
  Graph g = small_cnn();
  uint64_t seed = 1;
  for (auto& [name, t] : g.initializers) t = Tensor::rand(t.shape(), ++seed, 0.5f, 1.5f);
  const Tensor x = Tensor::randn({2, 3, 32, 32}, 99);
  const Tensor y = run_reference(g, {{"x", x}}).at("logits");

  autograd::NoGradGuard no_grad;
  auto p = [&](const char* name) { return Variable(g.initializers.at(name)); };
  Tensor mean = g.initializers.at("bn.running_mean"), var = g.initializers.at("bn.running_var");
  Variable c = conv2d(Variable(x), p("conv.weight"), {}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  Variable b = batch_norm(c, p("bn.weight"), p("bn.bias"), mean, var, {.training = false});
  Variable d = conv2d(Variable(x), p("down.weight"), {}, {.stride_h = 2, .stride_w = 2});
  Variable s = add(relu(b), d);
  Variable want = linear(flatten(adaptive_avg_pool2d(s, 1, 1), 1), p("fc.weight"), p("fc.bias"));
  ASSERT_EQ(y.shape(), want.shape());
  for (int64_t i = 0; i < y.numel(); ++i)
    EXPECT_NEAR(y.data<float>()[i], want.data().data<float>()[i], 1e-4 * (1 + std::abs(want.data().data<float>()[i])));
}

TEST(ReferenceExecutor, RejectsInputsThatDoNotFit) {
  const Graph g = small_cnn();
  testing::expect_error<ShapeError>([&] { run_reference(g, {}); }, {"input 'x' is not given"});
  testing::expect_error<ShapeError>([&] { run_reference(g, {{"x", Tensor::zeros({2, 4, 32, 32})}}); },
                                    {"'x' is [2,4,32,32]", "[-1,3,32,32]"});
}

}  // namespace
}  // namespace neurite::engine
