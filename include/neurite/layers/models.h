// The model zoo: every model builds from a name plus options, so the command
// line and C++ programs share them.
//
//   auto model = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
//   Variable logits = model->forward(images);  // (N, num_classes)
//
// Names: mlp (784-1024-1024-10), cnn, resnet20, resnet32, resnet56, mobilenet,
// vit-tiny, transformer. Image models take (N, C, H, W) float32; transformer
// takes (N, L) int64 token ids. Each model's registry entry also carries the
// inputs and training choices it starts from:
//
//   const auto& d = layers::models::model_defaults("resnet20");  // 3x32x32, sgd, batch 128
//   auto model = layers::models::make_model("resnet20", d.options);
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "neurite/layers/module.h"

namespace neurite::layers::models {

struct ModelOptions {
  int64_t in_channels = 1, image_size = 28;  // image models
  int64_t num_classes = 10;
  int64_t vocab_size = 8192, seq_len = 128;  // transformer
  float dropout = 0.1f;                      // transformer, vit-tiny
};

// What programs start from when the user does not say otherwise, so the
// command line, examples and benchmarks make the same choices.
struct ModelDefaults {
  bool takes_tokens = false;  // (N, L) int64 token ids rather than (N, C, H, W) images
  ModelOptions options;       // usual inputs: 3x32x32 (CIFAR) for resnets, 1x28x28 (MNIST) otherwise
  // SGD with momentum suits conv nets and the mlp; transformers train with AdamW.
  std::string optimizer = "sgd";
  // A batch that keeps the cores busy within memory: 256 for the mlp, 32
  // sequences of 128 tokens for the transformer, 128 otherwise.
  int64_t batch_size = 128;
};

// Throws ValueError naming the known models for an unknown name.
const ModelDefaults& model_defaults(const std::string& name);

// Throws ValueError naming the known models for an unknown name, and for
// options a model cannot take (an image too small for its strides).
std::shared_ptr<UnaryModule> make_model(const std::string& name, const ModelOptions& options = {});
std::vector<std::string> model_names();
// Adds a model of one's own to the names make_model knows, and so to
// checkpoints (train::build_model, resume, --init in programs that register
// it): `build` makes it from ModelOptions. Register at start-up, before
// threads; ValueError for a name already taken.
void register_model(const std::string& name, std::function<std::shared_ptr<UnaryModule>(const ModelOptions&)> build,
                    ModelDefaults defaults = {});
// True for models whose input is int64 token ids rather than images.
bool takes_tokens(const std::string& name);

}  // namespace neurite::layers::models
