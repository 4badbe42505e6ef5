// Writes the ONNX files the engine benchmark runs in Neurite and in ONNX
// Runtime: resnet20 (3x32x32), mlp (784-1024-1024-10) and transformer
// (4 layers, d 256, seq 128), each dense, 90 % unstructured and 90 % 4x1; and
// the same trained quantisation-aware to 8 bits (QDQ pairs: every Linear and
// Conv2d's input and weight, ranges observed on random batches): dense, 90 %
// unstructured and 90 % in 1x4 blocks (along the reduction, the INT8 kernels' groups).
//   bench_engine_models OUT_DIR   ->  OUT_DIR/resnet20_dense.onnx, ..._u90.onnx, ..._b90.onnx,
//                                     ..._qdense.onnx, ..._qu90.onnx, ..._qb90.onnx
#include <fmt/format.h>

#include <filesystem>

#include "neurite/engine/onnx.h"
#include "neurite/engine/trace.h"
#include "neurite/layers/models.h"
#include "neurite/layers/quantize.h"
#include "neurite/pruning/pruning.h"

using namespace neurite;

namespace {

// Fake quantisers on every Linear and Conv2d (the default scheme), their
// ranges observed on four batches with the rest of the model in eval mode.
template <typename Batch>
void quantize(layers::Module& model, Batch batch) {
  auto walk = [](auto& self, layers::Module& m) -> void {
    if (auto* q = dynamic_cast<layers::QuantizableLayer*>(&m)) q->quantize({});
    for (auto& [name, child] : m.named_children()) self(self, *child);
  };
  walk(walk, model);
  const auto quantizers = layers::fake_quantizers(model);
  for (auto& [name, fq] : quantizers) fq->train();
  autograd::NoGradGuard no_grad;
  for (uint64_t seed = 50; seed < 54; ++seed) dynamic_cast<layers::UnaryModule&>(model).forward(autograd::Variable(batch(seed)));
  for (auto& [name, fq] : quantizers) fq->eval();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: {} OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out);
  namespace models = layers::models;
  for (const std::string name : {"resnet20", "mlp", "transformer"}) {
    const models::ModelOptions o = models::model_defaults(name).options;
    for (const auto& [tag, mask] : {std::pair{"dense", ""}, {"u90", "unstructured"}, {"b90", "4x1"}, {"qdense", ""},
                                    {"qu90", "unstructured"}, {"qb90", "1x4"}}) {
      auto model = models::make_model(name, o);
      uint64_t seed = 1;
      for (auto& [buffer, t] : model->named_buffers())  // trained-looking batch-norm statistics
        if (t.dtype() == autograd::Dtype::f32) t.copy_from_(autograd::Tensor::rand(t.shape(), ++seed, 0.5f, 1.5f));
      if (*mask) {
        pruning::prune(*model, pruning::linear_conv_and_attention_weights(*model), 0.9, pruning::MaskType::parse(mask),
                       false);
      }
      model->eval();
      auto batch = [&](int64_t n, uint64_t seed) {
        return models::takes_tokens(name) ? autograd::Tensor::randint({n, o.seq_len}, seed, 0, o.vocab_size)
                                          : autograd::Tensor::randn({n, o.in_channels, o.image_size, o.image_size}, seed);
      };
      if (tag[0] == 'q') quantize(*model, [&](uint64_t seed) { return batch(8, seed); });
      const autograd::Tensor example = batch(1, 1);
      const auto path = out / fmt::format("{}_{}.onnx", name, tag);
      engine::save_onnx(engine::trace(*model, example), path.string());
      fmt::print("{}\n", path.string());
    }
  }
}
