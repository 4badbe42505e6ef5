// Layers and zoo models against PyTorch 1.13 (tests/golden/make_layer_golden.py):
// the PyTorch state dict loads by name, then output, parameter gradients and
// updated buffers must match.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "neurite/layers/layers.h"
#include "neurite/layers/models.h"
#include "support/golden.h"

namespace neurite::layers {
namespace {

using testing::expect_close;
using testing::golden;

struct Files {
  std::map<std::string, Tensor> state, grads, buffers;
};

Files files(const std::string& test_case) {
  Files f;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(NEURITE_GOLDEN_DIR) + "/" + test_case)) {
    const std::string stem = entry.path().stem().string();
    auto with = [&](const char* prefix, std::map<std::string, Tensor>& into) {
      if (stem.rfind(prefix, 0) == 0) into.emplace(stem.substr(2), golden(test_case, stem));
    };
    with("s.", f.state);
    with("d.", f.grads);
    with("b.", f.buffers);
  }
  return f;
}

// Loads the PyTorch state into `m`, runs `forward`, backpropagates g and compares.
void expect_matches_pytorch(Module& m, const std::string& name, bool training,
                            const std::function<Variable(const Variable&)>& forward, double rtol = 1e-4,
                            double atol = 1e-5) {
  const std::string test_case = "layer_" + name;
  const Files f = files(test_case);
  m.load_state_dict(f.state);
  m.train(training);
  const Tensor x = golden(test_case, "x");
  Variable y = forward(Variable(x, x.dtype() == autograd::Dtype::f32));
  expect_close(y.data(), golden(test_case, "y"), name + " output", rtol, atol);
  y.backward(golden(test_case, "g"));
  for (const auto& [param, p] : m.named_parameters()) {
    ASSERT_TRUE(f.grads.count(param)) << name << ": PyTorch has no parameter " << param;
    expect_close(p->value().grad(), f.grads.at(param), name + " gradient of " + param, rtol * 10, atol * 10);
  }
  for (const auto& [buffer, b] : m.named_buffers())
    if (b.dtype() == autograd::Dtype::f32) expect_close(b, f.buffers.at(buffer), name + " buffer " + buffer);
}

TEST(LayersGolden, Linear) {
  Linear m(5, 7);
  expect_matches_pytorch(m, "linear", true, [&](const Variable& x) { return m.forward(x); });
}

TEST(LayersGolden, Conv2dWithGroupsAndStride) {
  Conv2d m(4, 6, 3, {.stride = 2, .padding = 1, .groups = 2});
  expect_matches_pytorch(m, "conv2d", true, [&](const Variable& x) { return m.forward(x); });
}

TEST(LayersGolden, BatchNorm2dUpdatesRunningStatistics) {
  BatchNorm2d m(3);
  expect_matches_pytorch(m, "batch_norm2d", true, [&](const Variable& x) { return m.forward(x); });
  EXPECT_EQ(m.num_batches_tracked.data<int64_t>()[0], 1);
}

TEST(LayersGolden, LayerNorm) {
  LayerNorm m(8);
  expect_matches_pytorch(m, "layer_norm", true, [&](const Variable& x) { return m.forward(x); });
}

TEST(LayersGolden, Embedding) {
  Embedding m(11, 4);
  expect_matches_pytorch(m, "embedding", true, [&](const Variable& x) { return m.forward(x); });
}

TEST(LayersGolden, MultiheadAttentionWithPaddingMask) {
  MultiheadAttention m(8, 2);
  const Tensor mask = golden("layer_multihead_attention", "mask");
  expect_matches_pytorch(m, "multihead_attention", true, [&](const Variable& x) { return m.forward(x, mask); });
}

TEST(LayersGolden, TransformerEncoderLayerPostNorm) {
  TransformerEncoderLayer m({.d_model = 8, .num_heads = 2, .ffn_dim = 16, .dropout = 0.0f});
  const Tensor mask = golden("layer_encoder_post_norm", "mask");
  expect_matches_pytorch(m, "encoder_post_norm", true, [&](const Variable& x) { return m.forward(x, mask); });
}

TEST(LayersGolden, TransformerEncoderLayerPreNormGelu) {
  TransformerEncoderLayer m(
      {.d_model = 8, .num_heads = 2, .ffn_dim = 16, .dropout = 0.0f, .activation = Activation::gelu, .norm_first = true});
  const Tensor mask = golden("layer_encoder_pre_norm_gelu", "mask");
  expect_matches_pytorch(m, "encoder_pre_norm_gelu", true, [&](const Variable& x) { return m.forward(x, mask); });
}

struct ZooCase {
  std::string model, folder;
  models::ModelOptions options;
  bool training;
};

TEST(LayersGolden, ZooModelsMatchTheirPyTorchTwins) {
  const std::vector<ZooCase> cases = {
      {"cnn", "model_cnn", {.image_size = 12}, false},
      {"resnet20", "model_resnet20", {.in_channels = 3, .image_size = 16}, true},
      {"mobilenet", "model_mobilenet", {.image_size = 12}, true},
      {"vit-tiny", "model_vit_tiny", {.image_size = 8, .dropout = 0.0f}, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    auto m = models::make_model(c.model, c.options);
    expect_matches_pytorch(*m, c.folder, c.training, [&](const Variable& x) { return m->forward(x); }, 2e-4, 2e-5);
  }
}

}  // namespace
}  // namespace neurite::layers
