// Transformer models: vit-tiny (images as patch tokens) and transformer (a
// text classifier over token ids).
#include "layers/models/zoo.h"

#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/layers.h"

namespace neurite::layers::models::detail {

using namespace autograd;

namespace {

// Encoder layers named layers.0, layers.1, ...
class Encoder : public Module {
 public:
  Encoder(int64_t count, const TransformerLayerOptions& o) {
    for (int64_t i = 0; i < count; ++i)
      layers_.push_back(register_module(std::to_string(i), std::make_shared<TransformerEncoderLayer>(o)));
  }
  Variable forward(const Variable& x, const Tensor& key_padding_mask = {}) {
    Variable y = x;
    for (auto& layer : layers_) y = layer->forward(y, key_padding_mask);
    return y;
  }

 private:
  std::vector<std::shared_ptr<TransformerEncoderLayer>> layers_;
};

// patch_embed (conv, kernel = stride = patch) - class token + position
// embedding - pre-norm encoder (GELU) - norm - head on the class token.
// Sized for small images on a CPU: patch 4, width 96, 4 layers, 3 heads, FFN 192.
class VitTiny : public UnaryModule {
 public:
  static constexpr int64_t kPatch = 4, kWidth = 96, kDepth = 4, kHeads = 3, kFfn = 192;
  explicit VitTiny(const ModelOptions& o)
      : tokens_(1 + (o.image_size / kPatch) * (o.image_size / kPatch)),
        patch_embed(register_module("patch_embed", std::make_shared<Conv2d>(o.in_channels, kWidth, kPatch,
                                                                             Conv2dLayerOptions{.stride = kPatch}))),
        cls_token(register_parameter("cls_token", Tensor::zeros({1, 1, kWidth}))),
        pos_embed(register_parameter("pos_embed", normal({1, tokens_, kWidth}, 0.02f))),
        layers(register_module("layers", std::make_shared<Encoder>(
                                             kDepth, TransformerLayerOptions{.d_model = kWidth,
                                                                             .num_heads = kHeads,
                                                                             .ffn_dim = kFfn,
                                                                             .dropout = o.dropout,
                                                                             .activation = Activation::gelu,
                                                                             .norm_first = true}))),
        norm(register_module("norm", std::make_shared<LayerNorm>(kWidth))),
        head(register_module("head", std::make_shared<Linear>(kWidth, o.num_classes))) {
    check<ValueError>(o.image_size >= kPatch, "vit-tiny: image size {} is smaller than its patch size {}",
                      o.image_size, kPatch);
  }
  Variable forward(const Variable& x) override {
    const int64_t n = x.size(0);
    Variable patches = transpose(flatten(patch_embed->forward(x), 2), 1, 2);  // (N, P, W)
    check<ShapeError>(patches.size(1) + 1 == tokens_, "vit-tiny: input {} gives {} patches, the model was built for {}",
                      to_string(x.shape()), patches.size(1), tokens_ - 1);
    Variable cls = expand(cls_token.value(), {n, 1, kWidth});
    Variable y = layers->forward(concat({cls, patches}, 1) + pos_embed.value());
    return head->forward(reshape(slice(norm->forward(y), 1, 0, 1), {n, kWidth}));
  }

 private:
  int64_t tokens_;

 public:
  std::shared_ptr<Conv2d> patch_embed;
  Parameter& cls_token;
  Parameter& pos_embed;
  std::shared_ptr<Encoder> layers;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> head;
};

// embedding + position embedding - post-norm encoder (ReLU) - mean over
// tokens - head. 4 layers, d_model 256, 4 heads, FFN 1024.
class TextTransformer : public UnaryModule {
 public:
  static constexpr int64_t kWidth = 256, kDepth = 4, kHeads = 4, kFfn = 1024;
  explicit TextTransformer(const ModelOptions& o)
      : embedding(register_module("embedding", std::make_shared<Embedding>(o.vocab_size, kWidth))),
        position(register_module("position", std::make_shared<Embedding>(o.seq_len, kWidth))),
        layers(register_module("layers", std::make_shared<Encoder>(kDepth, TransformerLayerOptions{
                                                                               .d_model = kWidth,
                                                                               .num_heads = kHeads,
                                                                               .ffn_dim = kFfn,
                                                                               .dropout = o.dropout}))),
        head(register_module("head", std::make_shared<Linear>(kWidth, o.num_classes))) {}
  // tokens (N, L) int64, L <= seq_len
  Variable forward(const Variable& tokens) override {
    check<DtypeError>(tokens.dtype() == Dtype::i64 && tokens.dim() == 2,
                      "transformer: input must be int64 token ids (N, L), got {} {}",
                      tokens.dtype() == Dtype::i64 ? "int64" : "float32", to_string(tokens.shape()));
    const int64_t length = tokens.size(1), limit = position->weight.shape()[0];
    check<ShapeError>(length <= limit, "transformer: sequence of {} tokens, the model was built for {}", length, limit);
    Variable positions(Tensor::arange(0, static_cast<double>(length), 1, Dtype::i64));
    Variable y = embedding->forward(tokens) + position->forward(positions);  // (N, L, W)
    return head->forward(mean(layers->forward(y), {1}));
  }
  std::shared_ptr<Embedding> embedding, position;
  std::shared_ptr<Encoder> layers;
  std::shared_ptr<Linear> head;
};

}  // namespace

std::shared_ptr<UnaryModule> make_vit_tiny(const ModelOptions& o) { return std::make_shared<VitTiny>(o); }
std::shared_ptr<UnaryModule> make_transformer(const ModelOptions& o) { return std::make_shared<TextTransformer>(o); }

}  // namespace neurite::layers::models::detail
