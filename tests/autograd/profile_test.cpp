// The op profile that `neurite bench-train --profile` prints: each op kind's
// forward results counted and timed, its backward closures timed.
#include <gtest/gtest.h>

#include "neurite/autograd/ops.h"
#include "neurite/autograd/profile.h"
#include "neurite/error.h"

namespace neurite::autograd {
namespace {

TEST(Profile, CountsAndTimesEachOpKindForwardAndBackward) {
  Variable w(Tensor::randn({64, 64}, 1), true);
  const Variable x(Tensor::randn({32, 64}, 2));
  OpProfile profile;
  {
    ProfileGuard guard(profile);
    Variable h = relu(matmul(x, w));
    Variable loss = sum(relu(h));
    loss.backward();
  }
  ASSERT_EQ(profile.ops.count("matmul"), 1u);
  EXPECT_EQ(profile.ops.at("matmul").calls, 1);
  EXPECT_EQ(profile.ops.at("relu").calls, 2);
  EXPECT_EQ(profile.ops.at("sum").calls, 1);
  EXPECT_GT(profile.ops.at("matmul").forward_ms, 0.0);
  EXPECT_GT(profile.ops.at("matmul").backward_ms, 0.0);
  EXPECT_EQ(profile.ops.count("other"), 0u) << "every op here names itself";
  // Outside the guard nothing is added; a second guard on the same thread while one lives is refused.
  relu(matmul(x, w));
  EXPECT_EQ(profile.ops.at("matmul").calls, 1);
  ProfileGuard guard(profile);
  EXPECT_THROW(ProfileGuard again(profile), StateError);
}

TEST(Profile, OpsThatTheTracerSkipsNameThemselves) {
  Variable logits(Tensor::randn({8, 5}, 3), true);
  OpProfile profile;
  {
    ProfileGuard guard(profile);
    cross_entropy(logits, Tensor::randint({8}, 4, 0, 5)).backward();
  }
  EXPECT_EQ(profile.ops.count("other"), 0u);
  EXPECT_EQ(profile.ops.count("nll_loss"), 1u);
}

}  // namespace
}  // namespace neurite::autograd
