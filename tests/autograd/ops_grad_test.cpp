// Every op's backward against central differences (tests/support/gradcheck.h),
// on random shapes including broadcasting.
#include <gtest/gtest.h>

#include "neurite/autograd/ops.h"
#include "support/gradcheck.h"

namespace neurite::autograd {
namespace {

using testing::away_from;
using testing::expect_gradients_match;
using testing::GradCheckOptions;

Tensor randn(const Shape& s, uint64_t seed) { return Tensor::randn(s, seed); }
Tensor positive(const Shape& s, uint64_t seed) { return Tensor::rand(s, seed, 0.5f, 2.0f); }

TEST(ElementwiseGrad, BroadcastingArithmetic) {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{5}, {}}, {{2, 3, 4, 5}, {1, 3, 1, 1}}};
  uint64_t seed = 1;
  for (const auto& [a, b] : shapes) {
    SCOPED_TRACE(to_string(a) + " with " + to_string(b));
    const Tensor x = randn(a, seed++), y = randn(b, seed++), yp = positive(b, seed++);
    expect_gradients_match([](auto& in) { return in[0] + in[1]; }, {x, y});
    expect_gradients_match([](auto& in) { return in[0] - in[1]; }, {x, y});
    expect_gradients_match([](auto& in) { return in[0] * in[1]; }, {x, y});
    expect_gradients_match([](auto& in) { return in[0] / in[1]; }, {x, yp});
  }
}

TEST(ElementwiseGrad, ScalarArithmetic) {
  const Tensor x = randn({3, 5}, 7);
  expect_gradients_match([](auto& in) { return in[0] * 2.5f + 1.0f; }, {x});
  expect_gradients_match([](auto& in) { return 3.0f * in[0] / 2.0f - 1.0f; }, {x});
  expect_gradients_match([](auto& in) { return -in[0]; }, {x});
}

TEST(ElementwiseGrad, UnaryFunctions) {
  const Tensor x = randn({4, 6}, 3), p = positive({4, 6}, 4);
  expect_gradients_match([](auto& in) { return exp(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return log(in[0]); }, {p});
  expect_gradients_match([](auto& in) { return sqrt(in[0]); }, {p});
  expect_gradients_match([](auto& in) { return pow(in[0], 3.0f); }, {x});
  expect_gradients_match([](auto& in) { return pow(in[0], -1.5f); }, {p});
  expect_gradients_match([](auto& in) { return sigmoid(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return tanh(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return gelu(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return gelu(in[0], GeluApproximation::tanh); }, {x});
}

TEST(ElementwiseGrad, Kinks) {
  const Tensor x = randn({5, 7}, 5);
  expect_gradients_match([](auto& in) { return relu(in[0]); }, {away_from(x, 0)});
  expect_gradients_match([](auto& in) { return clamp(in[0], -0.5f, 0.7f); }, {away_from(away_from(x, -0.5f), 0.7f)});
  expect_gradients_match([](auto& in) { return clamp(in[0], std::nullopt, 0.2f); }, {away_from(x, 0.2f)});
}

TEST(ElementwiseGrad, ErfAbsExtremaAndWhere) {
  const Tensor x = randn({4, 6}, 21);
  expect_gradients_match([](auto& in) { return erf(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return abs(in[0]); }, {away_from(x, 0)});
  // Broadcast operands, kept apart so that no pair ties.
  const Tensor b = randn({3, 1}, 23);
  Tensor a = randn({2, 3, 4}, 22);
  for (int64_t i = 0; i < 3; ++i) a = away_from(a, b.data<float>()[i]);
  expect_gradients_match([](auto& in) { return maximum(in[0], in[1]); }, {a, b});
  expect_gradients_match([](auto& in) { return minimum(in[0], in[1]); }, {a, b});
  const Tensor cond = Tensor::randint({2, 1, 4}, 24, 0, 2);
  expect_gradients_match([cond](auto& in) { return where(cond, in[0], in[1]); }, {a, b});
  // Values: the branch each element took, -inf passing through untouched.
  const Variable y = where(cond, Variable(a), Variable(Tensor::full({1}, -INFINITY)));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        const float got = y.data().data<float>()[(i * 3 + j) * 4 + k];
        if (cond.data<int64_t>()[i * 4 + k] != 0) {
          EXPECT_EQ(got, a.data<float>()[(i * 3 + j) * 4 + k]);
        } else {
          EXPECT_EQ(got, -INFINITY);
        }
      }
  // Ties split the gradient evenly, as PyTorch's maximum.
  Variable p(Tensor::full({3}, 1.0f), true), q(Tensor::full({3}, 1.0f), true);
  sum(maximum(p, q)).backward();
  EXPECT_EQ(p.grad().data<float>()[0], 0.5f);
  EXPECT_EQ(q.grad().data<float>()[2], 0.5f);
}

TEST(ReduceGrad, SumMeanMax) {
  const Tensor x = randn({3, 4, 5}, 11);
  expect_gradients_match([](auto& in) { return sum(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return sum(in[0], {1}); }, {x});
  expect_gradients_match([](auto& in) { return sum(in[0], {0, 2}, true); }, {x});
  expect_gradients_match([](auto& in) { return mean(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return mean(in[0], {-1}); }, {x});
  expect_gradients_match([](auto& in) { return mean(in[0], {0, 1}, true); }, {x});
  expect_gradients_match([](auto& in) { return max(in[0], 1); }, {x});
  expect_gradients_match([](auto& in) { return max(in[0], -1, true); }, {x});
}

TEST(ReduceGrad, SoftmaxFamily) {
  const Tensor x = randn({3, 4, 5}, 13);
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE(dim);
    expect_gradients_match([dim](auto& in) { return softmax(in[0], dim); }, {x});
    expect_gradients_match([dim](auto& in) { return log_softmax(in[0], dim); }, {x});
  }
}

TEST(LinalgGrad, Matmul) {
  expect_gradients_match([](auto& in) { return matmul(in[0], in[1]); }, {randn({3, 4}, 1), randn({4, 5}, 2)});
  expect_gradients_match([](auto& in) { return matmul(in[0], in[1]); }, {randn({2, 3, 4}, 3), randn({2, 4, 5}, 4)});
  expect_gradients_match([](auto& in) { return matmul(in[0], in[1]); }, {randn({2, 2, 3, 4}, 5), randn({2, 2, 4, 2}, 6)});
  expect_gradients_match([](auto& in) { return matmul(in[0], in[1]); }, {randn({2, 3, 4}, 7), randn({4, 5}, 8)});
}

TEST(LinalgGrad, Linear) {
  expect_gradients_match([](auto& in) { return linear(in[0], in[1], in[2]); },
                         {randn({6, 4}, 1), randn({3, 4}, 2), randn({3}, 3)});
  expect_gradients_match([](auto& in) { return linear(in[0], in[1]); }, {randn({2, 5, 4}, 4), randn({3, 4}, 5)});
}

TEST(ConvGrad, StridesPaddingDilationGroups) {
  struct Case {
    Shape x, w;
    Conv2dOptions o;
  };
  const std::vector<Case> cases = {
      {{2, 3, 6, 6}, {4, 3, 3, 3}, {}},
      {{2, 3, 7, 6}, {4, 3, 3, 3}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
      {{1, 2, 7, 7}, {3, 2, 3, 2}, {.stride_h = 1, .stride_w = 2, .pad_h = 2, .pad_w = 0, .dilation_h = 2}},
      {{2, 4, 5, 5}, {6, 2, 3, 3}, {.pad_h = 1, .pad_w = 1, .groups = 2}},
      {{2, 4, 6, 6}, {4, 1, 3, 3}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 4}},  // depthwise
      {{2, 5, 4, 4}, {3, 5, 1, 1}, {}},                                                                   // pointwise
  };
  uint64_t seed = 100;
  for (const auto& c : cases) {
    SCOPED_TRACE(to_string(c.x) + " * " + to_string(c.w));
    const Conv2dOptions o = c.o;
    expect_gradients_match([o](auto& in) { return conv2d(in[0], in[1], in[2], o); },
                           {randn(c.x, seed), randn(c.w, seed + 1), randn({c.w[0]}, seed + 2)});
    seed += 3;
  }
}

TEST(PoolGrad, MaxAverageAdaptive) {
  // Distinct values at least 0.1 apart, so that every window's maximum is unique.
  Tensor x = Tensor::empty({2, 3, 7, 6});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i * 37 % x.numel()) * 0.1f - 12.0f;
  expect_gradients_match([](auto& in) { return max_pool2d(in[0], {.kernel_h = 2, .kernel_w = 2}); }, {x});
  expect_gradients_match([](auto& in) {
    return max_pool2d(in[0], {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  }, {x});
  expect_gradients_match([](auto& in) { return avg_pool2d(in[0], {.kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 1}); }, {x});
  expect_gradients_match([](auto& in) {
    return avg_pool2d(in[0], {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1,
                              .count_include_pad = false});
  }, {x});
  expect_gradients_match([](auto& in) { return adaptive_avg_pool2d(in[0], 3, 4); }, {x});
  expect_gradients_match([](auto& in) { return global_avg_pool2d(in[0]); }, {x});
}

TEST(NormGrad, BatchNormTrainingAndEval) {
  const Tensor x = randn({4, 3, 3, 2}, 21), w = randn({3}, 22), b = randn({3}, 23);
  expect_gradients_match([](auto& in) {
    Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
    return batch_norm(in[0], in[1], in[2], rm, rv, {.training = true});
  }, {x, w, b});
  expect_gradients_match([](auto& in) {
    Tensor rm = Tensor::full({3}, 0.2f), rv = Tensor::full({3}, 1.5f);
    return batch_norm(in[0], in[1], in[2], rm, rv, {.training = false});
  }, {x, w, b});
  expect_gradients_match([](auto& in) {  // (N, C) input, no affine parameters
    Tensor rm = Tensor::zeros({5}), rv = Tensor::ones({5});
    return batch_norm(in[0], {}, {}, rm, rv, {.training = true});
  }, {randn({6, 5}, 24)});
}

TEST(NormGrad, LayerNorm) {
  expect_gradients_match([](auto& in) { return layer_norm(in[0], {6}, in[1], in[2]); },
                         {randn({2, 3, 6}, 31), randn({6}, 32), randn({6}, 33)});
  expect_gradients_match([](auto& in) { return layer_norm(in[0], {3, 4}, in[1], in[2]); },
                         {randn({2, 3, 4}, 34), randn({3, 4}, 35), randn({3, 4}, 36)});
  expect_gradients_match([](auto& in) { return layer_norm(in[0], {5}); }, {randn({4, 5}, 37)});
}

TEST(LossGrad, CrossEntropy) {
  const Tensor logits = randn({6, 5}, 41);
  const Tensor target = Tensor::from_data({6}, std::vector<int64_t>{0, 4, 2, -100, 1, 3});
  expect_gradients_match([&](auto& in) { return cross_entropy(in[0], target); }, {logits});
  expect_gradients_match([&](auto& in) { return cross_entropy(in[0], target, {.label_smoothing = 0.1f}); }, {logits});
  expect_gradients_match([&](auto& in) { return cross_entropy(in[0], target, {.reduction = Reduction::sum}); }, {logits});
  expect_gradients_match([&](auto& in) { return cross_entropy(in[0], target, {.reduction = Reduction::none}); }, {logits});
}

TEST(LossGrad, MeanSquaredError) {
  expect_gradients_match([](auto& in) { return mse_loss(in[0], in[1]); }, {randn({4, 3}, 51), randn({4, 3}, 52)});
  expect_gradients_match([](auto& in) { return mse_loss(in[0], in[1], Reduction::sum); }, {randn({7}, 53), randn({7}, 54)});
}

TEST(NetworkGrad, Embedding) {
  const Tensor idx = Tensor::from_data({2, 3}, std::vector<int64_t>{0, 3, 3, 1, 4, 0});
  expect_gradients_match([&](auto& in) { return embedding(in[0], idx); }, {randn({5, 4}, 61)});
}

TEST(NetworkGrad, DropoutIsAFixedMaskForAFixedSeed) {
  expect_gradients_match([](auto& in) { return dropout(in[0], 0.3f, true, 99); }, {randn({8, 8}, 62)});
}

// Inverted dropout: each output is 0 or x / (1 - p), so the expectation is
// kept; about p of them are dropped; eval mode passes x through.
TEST(Dropout, KeepsTheExpectationAndDropsAboutP) {
  const Tensor x = Tensor::ones({100, 100});
  for (float p : {0.1f, 0.5f, 0.8f}) {
    const Tensor y = dropout(Variable(x), p, true, 7).data();
    int64_t dropped = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float v = y.data<float>()[i];
      if (v == 0.0f) {
        ++dropped;
      } else {
        ASSERT_FLOAT_EQ(v, 1.0f / (1.0f - p)) << "p " << p;
      }
    }
    EXPECT_NEAR(static_cast<double>(dropped) / 1e4, p, 0.02) << "p " << p;
    EXPECT_EQ(dropout(Variable(x), p, false, 7).data().data<float>()[0], 1.0f);
  }
}

TEST(NetworkGrad, Attention) {
  const Tensor q = randn({2, 2, 3, 4}, 71), k = randn({2, 2, 5, 4}, 72), v = randn({2, 2, 5, 3}, 73);
  expect_gradients_match([](auto& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); }, {q, k, v});
  const Tensor pad = Tensor::from_data({2, 5}, std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 1});
  expect_gradients_match([&](auto& in) {
    return scaled_dot_product_attention(in[0], in[1], in[2], {.key_padding_mask = pad});
  }, {q, k, v});
  const Tensor qs = randn({1, 2, 4, 4}, 74), ks = randn({1, 2, 4, 4}, 75), vs = randn({1, 2, 4, 4}, 76);
  expect_gradients_match([](auto& in) {
    return scaled_dot_product_attention(in[0], in[1], in[2], {.causal = true});
  }, {qs, ks, vs});
}

TEST(ShapeGrad, MovementOps) {
  const Tensor x = randn({2, 3, 4}, 81);
  expect_gradients_match([](auto& in) { return reshape(in[0], {4, -1}); }, {x});
  expect_gradients_match([](auto& in) { return flatten(in[0]); }, {x});
  expect_gradients_match([](auto& in) { return flatten(in[0], 0, 1); }, {x});
  expect_gradients_match([](auto& in) { return permute(in[0], {2, 0, 1}); }, {x});
  expect_gradients_match([](auto& in) { return transpose(in[0], 0, 2); }, {x});
  expect_gradients_match([](auto& in) { return slice(in[0], 2, 1, 4, 2); }, {x});
  expect_gradients_match([](auto& in) { return slice(in[0], 1, -2, 100); }, {x});
  expect_gradients_match([](auto& in) { return concat({in[0], in[1]}, 1); }, {x, randn({2, 2, 4}, 82)});
  const Tensor idx = Tensor::from_data({4}, std::vector<int64_t>{2, 0, 2, 1});
  expect_gradients_match([&](auto& in) { return index_select(in[0], 1, idx); }, {x});
  expect_gradients_match([](auto& in) { return expand(in[0], {2, 3, 4}); }, {randn({1, 3, 1}, 83)});
  expect_gradients_match([](auto& in) { return expand(in[0], {5, 3, 4}); }, {randn({4}, 84)});
}

TEST(CompositeGrad, ASmallNetworkEndToEnd) {
  const Tensor x = randn({4, 2, 6, 6}, 91);
  const Tensor target = Tensor::from_data({4}, std::vector<int64_t>{0, 2, 1, 2});
  expect_gradients_match([&](auto& in) {
    Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
    Variable h = conv2d(in[0], in[1], in[2], {.pad_h = 1, .pad_w = 1});
    h = gelu(batch_norm(h, {}, {}, rm, rv, {.training = true}));
    h = flatten(avg_pool2d(h, {.kernel_h = 2, .kernel_w = 2}));
    return cross_entropy(linear(h, in[3]), target, {.label_smoothing = 0.05f});
  }, {x, randn({3, 2, 3, 3}, 92), randn({3}, 93), randn({3, 27}, 94)});
}

}  // namespace
}  // namespace neurite::autograd
