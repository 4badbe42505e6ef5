// The layers models are built from, with PyTorch's parameter names and
// default initialisations. Shapes: images (N, C, H, W); sequences (N, L, E)
// (batch first).
//
//   auto net = std::make_shared<layers::Sequential>();
//   net->push_back(std::make_shared<layers::Flatten>());
//   net->push_back(std::make_shared<layers::Linear>(784, 10));
//   Variable logits = net->forward(images);
#pragma once

#include <memory>
#include <vector>

#include "neurite/autograd/ops.h"
#include "neurite/layers/module.h"
#include "neurite/layers/quantize.h"

namespace neurite::layers {

// y = x W^T + b; weight (out, in), bias (out).
class Linear : public QuantizableLayer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Variable forward(const Variable& x) override;
  Parameter& weight;
  Parameter* bias;  // null without bias

 protected:
  Parameter& quantized_parameter() override { return weight; }
};

class BatchNorm2d;

struct Conv2dLayerOptions {
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};
// weight (out, in/groups, k, k), bias (out).
class Conv2d : public QuantizableLayer {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv2dLayerOptions& options = {});
  Variable forward(const Variable& x) override;
  const autograd::Conv2dOptions& options() const { return options_; }
  // Quantisation-aware training with the batch norm that follows, as
  // PyTorch's ConvBn2d: the weight is fake-quantised scaled by the norm's
  // factors gamma / sqrt(running_var + eps) and the output divided back, so
  // the quantised weight is the one inference folds the norm into. The norm
  // still runs after (the model calls it). Not a child: its state is a
  // buffer `folds_batch_norm` (1), so that restore_quantizers links the norm
  // again when a checkpoint is loaded.
  void fold_for_quantization(std::shared_ptr<BatchNorm2d> bn);
  bool folds_batch_norm() const { return folded_bn_ != nullptr; }
  Parameter& weight;
  Parameter* bias;

 protected:
  Parameter& quantized_parameter() override { return weight; }

 private:
  autograd::Conv2dOptions options_;
  std::shared_ptr<BatchNorm2d> folded_bn_;
};

// Buffers running_mean, running_var and num_batches_tracked, as PyTorch's.
class BatchNorm2d : public UnaryModule {
 public:
  explicit BatchNorm2d(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  Variable forward(const Variable& x) override;
  float eps() const { return eps_; }
  // Frozen, it normalises with its running statistics in training too and
  // stops updating them (quantisation-aware training's freeze_bn_stats).
  void freeze_statistics(bool on = true) { frozen_ = on; }
  bool statistics_frozen() const { return frozen_; }
  // Synchronised batch norm: training normalises with the statistics of the
  // whole batch that `sum_across` adds up over the processes sharing it
  // (autograd::BatchNormOptions; dist::synchronize_batch_norms sets it). Empty: off.
  void synchronize(std::function<void(std::span<double>)> sum_across) { sum_across_ = std::move(sum_across); }
  bool synchronized() const { return static_cast<bool>(sum_across_); }
  Parameter& weight;
  Parameter& bias;
  Tensor& running_mean;
  Tensor& running_var;
  Tensor& num_batches_tracked;

 private:
  float eps_, momentum_;
  bool frozen_ = false;
  std::function<void(std::span<double>)> sum_across_;
};

// Normalises over the last dimension (size `features`).
class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(int64_t features, float eps = 1e-5f);
  Variable forward(const Variable& x) override;
  float eps() const { return eps_; }
  Parameter& weight;
  Parameter& bias;

 private:
  float eps_;
};

// int64 indices of any shape -> (..., dim); weight (num_embeddings, dim) ~ N(0, 1).
class Embedding : public UnaryModule {
 public:
  Embedding(int64_t num_embeddings, int64_t dim);
  Variable forward(const Variable& indices) override;
  Parameter& weight;
};

// Active in training only; each call draws a fresh mask from next_seed().
class Dropout : public UnaryModule {
 public:
  explicit Dropout(float p = 0.5f);
  Variable forward(const Variable& x) override;
  float p() const { return p_; }

 private:
  float p_;
};

// Square pooling windows; stride 0 means the kernel size, as PyTorch.
class Pool2d : public UnaryModule {
 public:
  const autograd::Pool2dOptions& options() const { return options_; }

 protected:
  Pool2d(int64_t kernel_size, int64_t stride, int64_t padding);
  autograd::Pool2dOptions options_;
};

class MaxPool2d : public Pool2d {
 public:
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0)
      : Pool2d(kernel_size, stride, padding) {}
  Variable forward(const Variable& x) override { return autograd::max_pool2d(x, options_); }
};

class AvgPool2d : public Pool2d {
 public:
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0)
      : Pool2d(kernel_size, stride, padding) {}
  Variable forward(const Variable& x) override { return autograd::avg_pool2d(x, options_); }
};

class AdaptiveAvgPool2d : public UnaryModule {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : out_h_(out_h), out_w_(out_w) {}
  Variable forward(const Variable& x) override { return autograd::adaptive_avg_pool2d(x, out_h_, out_w_); }
  int64_t out_h() const { return out_h_; }
  int64_t out_w() const { return out_w_; }

 private:
  int64_t out_h_, out_w_;
};

class Flatten : public UnaryModule {
 public:
  explicit Flatten(int64_t start_dim = 1) : start_dim_(start_dim) {}
  Variable forward(const Variable& x) override { return autograd::flatten(x, start_dim_); }

 private:
  int64_t start_dim_;
};

class ReLU : public UnaryModule {
 public:
  Variable forward(const Variable& x) override { return autograd::relu(x); }
};

class GELU : public UnaryModule {
 public:
  explicit GELU(autograd::GeluApproximation approximate = autograd::GeluApproximation::none)
      : approximate_(approximate) {}
  Variable forward(const Variable& x) override { return autograd::gelu(x, approximate_); }

 private:
  autograd::GeluApproximation approximate_;
};

// Children named "0", "1", ... as PyTorch's nn.Sequential.
class Sequential : public UnaryModule {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<UnaryModule>> layers);
  void push_back(std::shared_ptr<UnaryModule> layer);
  Variable forward(const Variable& x) override;
  size_t size() const { return layers_.size(); }
  UnaryModule& operator[](size_t i) const { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<UnaryModule>> layers_;
};

// Self-attention over (N, L, E), batch first: in_proj_weight (3E, E),
// in_proj_bias (3E), out_proj (Linear E -> E), as PyTorch's nn.MultiheadAttention.
// Quantisable as a layer: its input and in_proj_weight (the QKV projection;
// out_proj is a Linear of its own).
class MultiheadAttention : public QuantizableLayer {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads);
  // key_padding_mask (N, L), non-zero at padded positions, or undefined.
  Variable forward(const Variable& x, const Tensor& key_padding_mask);
  Variable forward(const Variable& x) override { return forward(x, Tensor()); }
  int64_t num_heads() const { return num_heads_; }
  Parameter& in_proj_weight;
  Parameter& in_proj_bias;
  std::shared_ptr<Linear> out_proj;

 protected:
  Parameter& quantized_parameter() override { return in_proj_weight; }

 private:
  int64_t embed_dim_, num_heads_;
};

enum class Activation { relu, gelu };
struct TransformerLayerOptions {
  int64_t d_model = 256, num_heads = 4, ffn_dim = 1024;
  float dropout = 0.1f;
  Activation activation = Activation::relu;
  bool norm_first = false;  // PyTorch's default: post-norm
};
// PyTorch's nn.TransformerEncoderLayer (batch_first): self_attn, linear1,
// linear2, norm1, norm2, dropout, dropout1, dropout2.
class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& options);
  Variable forward(const Variable& x, const Tensor& key_padding_mask = {});
  const TransformerLayerOptions& options() const { return options_; }
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dropout> dropout, dropout1, dropout2;

 private:
  Variable feed_forward(const Variable& x);
  TransformerLayerOptions options_;
};

}  // namespace neurite::layers
