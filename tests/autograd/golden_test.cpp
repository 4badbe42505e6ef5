// Whole ops against PyTorch 1.13: outputs and the gradients of sum(y * g).
// The values come from tests/golden/make_golden.py.
#include <gtest/gtest.h>

#include "neurite/autograd/ops.h"
#include "support/golden.h"

namespace neurite::autograd {
namespace {

using testing::expect_close;
using testing::golden;

// Runs f on the case's named inputs, compares y with the case's y, backpropagates
// the case's g and compares each input's gradient with d<name>.
void check_case(const std::string& c, const std::vector<std::string>& names,
                const std::function<Variable(std::vector<Variable>&)>& f, double rtol = 1e-4, double atol = 1e-5) {
  SCOPED_TRACE(c);
  std::vector<Variable> in;
  for (const auto& n : names) in.emplace_back(golden(c, n), true);
  Variable y = f(in);
  expect_close(y.data(), golden(c, "y"), c + " y", rtol, atol);
  y.backward(golden(c, "g"));
  for (size_t i = 0; i < names.size(); ++i) expect_close(in[i].grad(), golden(c, "d" + names[i]), c + " d" + names[i], rtol, atol);
}

TEST(Golden, Conv2dMatchesPyTorch) {
  const std::vector<std::pair<std::string, Conv2dOptions>> cases = {
      {"conv_basic", {}},
      {"conv_stride_pad", {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
      {"conv_dilation_rect", {.stride_h = 1, .stride_w = 2, .pad_h = 2, .pad_w = 0, .dilation_h = 2, .dilation_w = 1}},
      {"conv_groups", {.pad_h = 1, .pad_w = 1, .groups = 3}},
      {"conv_depthwise", {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 8}},
      {"conv_pointwise", {}},
  };
  for (const auto& [c, o] : cases)
    check_case(c, {"x", "w", "b"}, [o = o](auto& in) { return conv2d(in[0], in[1], in[2], o); }, 1e-4, 1e-4);
}

TEST(Golden, BatchNormMatchesPyTorchIncludingRunningStatistics) {
  for (const auto* c : {"batch_norm_train", "batch_norm_eval"}) {
    const bool training = std::string(c) == "batch_norm_train";
    Tensor rm = golden(c, "running_mean_in"), rv = golden(c, "running_var_in");
    check_case(c, {"x", "w", "b"}, [&](auto& in) {
      return batch_norm(in[0], in[1], in[2], rm, rv, {.training = training});
    }, 1e-4, 1e-4);
    expect_close(rm, golden(c, "running_mean"), std::string(c) + " running_mean");
    expect_close(rv, golden(c, "running_var"), std::string(c) + " running_var");
  }
}

TEST(Golden, LayerNormMatchesPyTorch) {
  check_case("layer_norm_last", {"x", "w", "b"}, [](auto& in) { return layer_norm(in[0], {16}, in[1], in[2]); }, 1e-4, 1e-4);
  check_case("layer_norm_two", {"x", "w", "b"}, [](auto& in) { return layer_norm(in[0], {4, 6}, in[1], in[2]); }, 1e-4, 1e-4);
}

TEST(Golden, AttentionMatchesPyTorch) {
  const Tensor pad = golden("attention_padding", "key_padding_mask");
  check_case("attention_padding", {"q", "k", "v"}, [&](auto& in) {
    return scaled_dot_product_attention(in[0], in[1], in[2], {.key_padding_mask = pad});
  }, 1e-4, 1e-5);
  check_case("attention_causal", {"q", "k", "v"}, [](auto& in) {
    return scaled_dot_product_attention(in[0], in[1], in[2], {.causal = true});
  }, 1e-4, 1e-5);
}

TEST(Golden, CrossEntropyMatchesPyTorch) {
  for (const auto& [c, smoothing] : std::vector<std::pair<std::string, float>>{{"cross_entropy", 0.0f},
                                                                                {"cross_entropy_smoothed", 0.1f}}) {
    Variable logits(golden(c, "logits"), true);
    Variable loss = cross_entropy(logits, golden(c, "target"), {.label_smoothing = smoothing});
    expect_close(loss.data(), golden(c, "y"), c + " loss");
    loss.backward();
    expect_close(logits.grad(), golden(c, "dlogits"), c + " dlogits");
  }
}

TEST(Golden, PoolingAndGeluMatchPyTorch) {
  check_case("max_pool", {"x"}, [](auto& in) {
    return max_pool2d(in[0], {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  });
  check_case("avg_pool", {"x"}, [](auto& in) {
    return avg_pool2d(in[0], {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  });
  check_case("adaptive_avg_pool", {"x"}, [](auto& in) { return adaptive_avg_pool2d(in[0], 4, 3); });
  check_case("gelu", {"x"}, [](auto& in) { return gelu(in[0]); });
  check_case("gelu_tanh", {"x"}, [](auto& in) { return gelu(in[0], GeluApproximation::tanh); });
}

// Bit for bit: the same rounding (half to even), the same reciprocal, and the
// gradient zero exactly where the value fell outside the grid.
TEST(Golden, FakeQuantizeMatchesPyTorch) {
  for (const auto& [c, axis] : {std::pair{"fake_quant_tensor", int64_t{-1}}, std::pair{"fake_quant_channel", int64_t{0}}}) {
    const Tensor scale = golden(c, "scale"), zp = golden(c, "zero_point");
    check_case(c, {"x"}, [&, axis = axis](auto& in) { return fake_quantize(in[0], scale, zp, -128, 127, axis); }, 0, 0);
  }
}

}  // namespace
}  // namespace neurite::autograd
