// Writes the ONNX files the engine benchmark runs in Neurite and in ONNX
// Runtime: resnet20 (3x32x32), mlp (784-1024-1024-10) and transformer
// (4 layers, d 256, seq 128), each dense, 90 % unstructured and 90 % 4x1.
//   bench_engine_models OUT_DIR   ->  OUT_DIR/resnet20_dense.onnx, ..._u90.onnx, ..._b90.onnx
#include <fmt/format.h>

#include <filesystem>

#include "neurite/engine/onnx.h"
#include "neurite/engine/trace.h"
#include "neurite/layers/models.h"
#include "neurite/pruning/pruning.h"

using namespace neurite;

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
    for (const auto& [tag, mask] : {std::pair{"dense", ""}, {"u90", "unstructured"}, {"b90", "4x1"}}) {
      auto model = models::make_model(name, o);
      uint64_t seed = 1;
      for (auto& [buffer, t] : model->named_buffers())  // trained-looking batch-norm statistics
        if (t.dtype() == autograd::Dtype::f32) t.copy_from_(autograd::Tensor::rand(t.shape(), ++seed, 0.5f, 1.5f));
      if (*mask) {
        pruning::prune(*model, pruning::linear_conv_and_attention_weights(*model), 0.9, pruning::MaskType::parse(mask),
                       false);
      }
      model->eval();
      const autograd::Tensor example =
          models::takes_tokens(name) ? autograd::Tensor::randint({1, o.seq_len}, 1, 0, o.vocab_size)
                                     : autograd::Tensor::randn({1, o.in_channels, o.image_size, o.image_size}, 1);
      const auto path = out / fmt::format("{}_{}.onnx", name, tag);
      engine::save_onnx(engine::trace(*model, example), path.string());
      fmt::print("{}\n", path.string());
    }
  }
}
