#include "neurite/layers/layers.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/sparse_kernels.h"

namespace neurite::layers {

using namespace autograd;

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias)
    : weight(register_parameter("weight", kaiming_uniform({out_features, in_features}, in_features))),
      bias(with_bias ? &register_parameter("bias", kaiming_uniform({out_features}, in_features)) : nullptr) {}

namespace {
// x·Wᵀ + b, on the sparse form of W when the policy picks it.
Variable linear_of(Parameter& weight, Parameter* bias, const Variable& x, detail::KernelContext& kernels) {
  const Variable b = bias != nullptr ? bias->value() : Variable();
  if (detail::use_sparse(weight, x, nullptr, kernels))
    return sparse_linear(x, weight.sparse_form(), weight.trainable(), b, kernels.policy.resolved_isa());
  return linear(x, weight.value(), b);
}
}  // namespace

Variable Linear::forward(const Variable& x) {
  if (!quantized()) return linear_of(weight, bias, x, kernel_context());
  return quantized_linear(x, bias != nullptr ? bias->value() : Variable());
}

namespace {
int64_t conv_fan_in(int64_t in_channels, int64_t groups, int64_t kernel_size) {
  return in_channels / std::max<int64_t>(groups, 1) * kernel_size * kernel_size;
}
}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv2dLayerOptions& o)
    : weight(register_parameter(
          "weight", kaiming_uniform({out_channels, in_channels / std::max<int64_t>(o.groups, 1), kernel_size, kernel_size},
                                    conv_fan_in(in_channels, o.groups, kernel_size)))),
      bias(o.bias ? &register_parameter("bias", kaiming_uniform({out_channels},
                                                                conv_fan_in(in_channels, o.groups, kernel_size)))
                  : nullptr),
      options_{o.stride, o.stride, o.padding, o.padding, o.dilation, o.dilation, o.groups} {
  check(o.groups >= 1 && in_channels % o.groups == 0 && out_channels % o.groups == 0,
        "Conv2d: {} input and {} output channels must divide into {} groups", in_channels, out_channels, o.groups);
}

void Conv2d::fold_for_quantization(std::shared_ptr<BatchNorm2d> bn) {
  if (folded_bn_ == nullptr) register_buffer("folds_batch_norm", Tensor::ones({}, Dtype::i64));
  folded_bn_ = std::move(bn);
}

Variable Conv2d::forward(const Variable& x) {
  const Variable b = bias != nullptr ? bias->value() : Variable();
  if (quantized() && folded_bn_ != nullptr) {
    weight.to_dense();  // fake quantisation runs on the dense weight
    const int64_t f = weight.shape()[0];
    const Variable factor =
        folded_bn_->weight.value() / sqrt(Variable(folded_bn_->running_var) + folded_bn_->eps());  // gamma / std
    const Variable scaled = weight.value() * reshape(factor, {f, 1, 1, 1});
    Variable y = conv2d(quantized_input(x), weight_quant ? weight_quant->forward(scaled) : scaled, {}, options_) /
                 reshape(factor, {1, f, 1, 1});
    if (bias != nullptr) y = y + reshape(b, {1, f, 1, 1});
    return quantized_output(y);
  }
  if (quantized()) {
    weight.to_dense();  // fake quantisation runs on the dense weight
    return quantized_output(conv2d(quantized_input(x), quantized_weight(), b, options_));
  }
  if (detail::use_sparse(weight, x, &options_, kernel_context()))
    return sparse_conv2d(x, weight.sparse_form(), weight.trainable(), b, kernel_context().policy.resolved_isa());
  return conv2d(x, weight.value(), b, options_);
}

BatchNorm2d::BatchNorm2d(int64_t channels, float eps, float momentum)
    : weight(register_parameter("weight", Tensor::ones({channels}))),
      bias(register_parameter("bias", Tensor::zeros({channels}))),
      running_mean(register_buffer("running_mean", Tensor::zeros({channels}))),
      running_var(register_buffer("running_var", Tensor::ones({channels}))),
      num_batches_tracked(register_buffer("num_batches_tracked", Tensor::zeros({}, Dtype::i64))),
      eps_(eps),
      momentum_(momentum) {}

Variable BatchNorm2d::forward(const Variable& x) {
  const bool batch_statistics = is_training() && !frozen_;
  if (batch_statistics) ++num_batches_tracked.data<int64_t>()[0];
  return batch_norm(x, weight.value(), bias.value(), running_mean, running_var,
                    {.training = batch_statistics, .momentum = momentum_, .eps = eps_, .sum_across = sum_across_});
}

LayerNorm::LayerNorm(int64_t features, float eps)
    : weight(register_parameter("weight", Tensor::ones({features}))),
      bias(register_parameter("bias", Tensor::zeros({features}))),
      eps_(eps) {}

Variable LayerNorm::forward(const Variable& x) {
  return layer_norm(x, weight.shape(), weight.value(), bias.value(), eps_);
}

Embedding::Embedding(int64_t num_embeddings, int64_t dim)
    : weight(register_parameter("weight", normal({num_embeddings, dim}, 1.0f))) {}

Variable Embedding::forward(const Variable& indices) { return embedding(weight.value(), indices.data()); }

Dropout::Dropout(float p) : p_(p) {
  check<ValueError>(p >= 0.0f && p < 1.0f, "Dropout: p is {}, expected a value in [0, 1)", p);
}

Variable Dropout::forward(const Variable& x) {
  if (!is_training() || p_ == 0.0f) return x;
  return dropout(x, p_, true, next_seed());
}

Pool2d::Pool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : options_{kernel_size, kernel_size, stride, stride, padding, padding} {}

Sequential::Sequential(std::vector<std::shared_ptr<UnaryModule>> layers) {
  for (auto& layer : layers) push_back(std::move(layer));
}

void Sequential::push_back(std::shared_ptr<UnaryModule> layer) {
  layers_.push_back(register_module(std::to_string(layers_.size()), std::move(layer)));
}

Variable Sequential::forward(const Variable& x) {
  Variable y = x;
  for (auto& layer : layers_) y = layer->forward(y);
  return y;
}

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads)
    : in_proj_weight(register_parameter("in_proj_weight", xavier_uniform({3 * embed_dim, embed_dim}, embed_dim,
                                                                         3 * embed_dim))),
      in_proj_bias(register_parameter("in_proj_bias", Tensor::zeros({3 * embed_dim}))),
      out_proj(register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim))),
      embed_dim_(embed_dim),
      num_heads_(num_heads) {
  check(num_heads >= 1 && embed_dim % num_heads == 0, "MultiheadAttention: embed_dim {} must divide into {} heads",
        embed_dim, num_heads);
  out_proj->bias->value().data().fill_(0.0f);  // as PyTorch
}

Variable MultiheadAttention::forward(const Variable& x, const Tensor& key_padding_mask) {
  check<ShapeError>(x.dim() == 3 && x.size(2) == embed_dim_, "MultiheadAttention: input must be (N, L, {}), got {}",
                    embed_dim_, to_string(x.shape()));
  const int64_t n = x.size(0), l = x.size(1), d = embed_dim_ / num_heads_;
  // (N, L, 3E) -> (3, N, H, L, D)
  const Variable projected = quantized() ? quantized_linear(x, in_proj_bias.value())
                                         : linear_of(in_proj_weight, &in_proj_bias, x, kernel_context());
  Variable qkv = permute(reshape(projected, {n, l, 3, num_heads_, d}), {2, 0, 3, 1, 4});
  auto head = [&](int64_t i) { return reshape(slice(qkv, 0, i, i + 1), {n, num_heads_, l, d}); };
  AttentionOptions options;
  options.key_padding_mask = key_padding_mask;
  Variable context = scaled_dot_product_attention(head(0), head(1), head(2), options);  // (N, H, L, D)
  return out_proj->forward(reshape(permute(context, {0, 2, 1, 3}), {n, l, embed_dim_}));
}

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& o)
    : self_attn(register_module("self_attn", std::make_shared<MultiheadAttention>(o.d_model, o.num_heads))),
      linear1(register_module("linear1", std::make_shared<Linear>(o.d_model, o.ffn_dim))),
      linear2(register_module("linear2", std::make_shared<Linear>(o.ffn_dim, o.d_model))),
      norm1(register_module("norm1", std::make_shared<LayerNorm>(o.d_model))),
      norm2(register_module("norm2", std::make_shared<LayerNorm>(o.d_model))),
      dropout(register_module("dropout", std::make_shared<Dropout>(o.dropout))),
      dropout1(register_module("dropout1", std::make_shared<Dropout>(o.dropout))),
      dropout2(register_module("dropout2", std::make_shared<Dropout>(o.dropout))),
      options_(o) {}

Variable TransformerEncoderLayer::feed_forward(const Variable& x) {
  Variable h = linear1->forward(x);
  h = options_.activation == Activation::relu ? relu(h) : gelu(h);
  return dropout2->forward(linear2->forward(dropout->forward(h)));
}

Variable TransformerEncoderLayer::forward(const Variable& x, const Tensor& key_padding_mask) {
  if (options_.norm_first) {
    Variable y = x + dropout1->forward(self_attn->forward(norm1->forward(x), key_padding_mask));
    return y + feed_forward(norm2->forward(y));
  }
  Variable y = norm1->forward(x + dropout1->forward(self_attn->forward(x, key_padding_mask)));
  return norm2->forward(y + feed_forward(y));
}

}  // namespace neurite::layers
