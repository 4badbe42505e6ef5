#include <gtest/gtest.h>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"

namespace neurite::autograd {
namespace {

TEST(Variable, BackwardFromAScalarGivesTheAnalyticGradient) {
  Variable x(Tensor::from_data({3}, std::vector<float>{1, 2, 3}), true);
  Variable y = sum(x * x * 2.0f);  // dy/dx = 4x
  y.backward();
  EXPECT_EQ(std::vector<float>(x.grad().data<float>(), x.grad().data<float>() + 3), (std::vector<float>{4, 8, 12}));
}

TEST(Variable, BackwardWithAGivenOutputGradient) {
  Variable x(Tensor::from_data({2}, std::vector<float>{1, 2}), true);
  Variable y = x * 3.0f;
  y.backward(Tensor::from_data({2}, std::vector<float>{10, 100}));
  EXPECT_FLOAT_EQ(x.grad().data<float>()[0], 30);
  EXPECT_FLOAT_EQ(x.grad().data<float>()[1], 300);
  EXPECT_THROW((x * 3.0f).backward(Tensor::ones({3})), ShapeError);
}

TEST(Variable, GradientsAccumulateAcrossPassesUntilZeroed) {
  Variable x(Tensor::ones({2}), true);
  sum(x * 2.0f).backward();
  sum(x * 3.0f).backward();
  EXPECT_FLOAT_EQ(x.grad().data<float>()[0], 5);
  x.zero_grad();
  EXPECT_FALSE(x.has_grad());
}

TEST(Variable, AVariableUsedTwiceSumsBothPaths) {
  Variable x(Tensor::full({1}, 3), true);
  Variable h = exp(x);
  sum(h * h + h).backward();  // d/dx (e^2x + e^x) = 2e^2x + e^x
  EXPECT_NEAR(x.grad().item(), 2 * std::exp(6.0) + std::exp(3.0), 1e-2);
}

TEST(Variable, NoGradGuardRecordsNothing) {
  Variable x(Tensor::ones({2}), true);
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    EXPECT_FALSE((x * 2.0f).requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE((x * 2.0f).requires_grad());
}

TEST(Variable, DetachCutsTheGraph) {
  Variable x(Tensor::ones({2}), true);
  Variable d = (x * 2.0f).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  Variable y = sum(d * x);
  y.backward();
  EXPECT_FLOAT_EQ(x.grad().data<float>()[0], 2);  // only through the second factor
}

TEST(Variable, InputsThatNeedNoGradientGetNone) {
  Variable w(Tensor::ones({2}), true), c(Tensor::ones({2}), false);
  sum(w * c).backward();
  EXPECT_TRUE(w.has_grad());
  EXPECT_FALSE(c.has_grad());
  EXPECT_THROW(sum(c * c).backward(), StateError);
}

TEST(Variable, ALongChainNeitherRecursesInBackwardNorInDestruction) {
  Variable x(Tensor::ones({1}), true);
  {
    Variable y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0001f;
    y.backward();
    const double want = std::pow(1.0001, 100000);  // float rounding over 1e5 steps: ~1e-2 relative
    EXPECT_NEAR(x.grad().item(), want, 0.02 * want);
  }
  Variable y = x;  // destroyed without backward
  for (int i = 0; i < 100000; ++i) y = y + 1.0f;
}

TEST(Variable, BackwardFreesTheGraph) {
  Variable x(Tensor::ones({2}), true);
  Variable y = sum(exp(x));
  y.backward();
  EXPECT_THROW(y.backward(), StateError);
}

}  // namespace
}  // namespace neurite::autograd
