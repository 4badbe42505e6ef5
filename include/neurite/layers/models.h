// The model zoo: every model builds from a name plus options, so the command
// line and C++ programs share them.
//
//   auto model = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
//   Variable logits = model->forward(images);  // (N, num_classes)
//
// Names: mlp (784-1024-1024-10), cnn, resnet20, resnet32, resnet56, mobilenet,
// vit-tiny, transformer. Image models take (N, C, H, W) float32; transformer
// takes (N, L) int64 token ids.
#pragma once

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

// Throws ValueError naming the known models for an unknown name, and for
// options a model cannot take (an image too small for its strides).
std::shared_ptr<UnaryModule> make_model(const std::string& name, const ModelOptions& options = {});
std::vector<std::string> model_names();
// True for models whose input is int64 token ids rather than images.
bool takes_tokens(const std::string& name);

}  // namespace neurite::layers::models
