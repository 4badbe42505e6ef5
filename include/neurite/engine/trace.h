// neurite/engine/trace.h — a Module's forward pass as a Graph.
//
//   auto model = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
//   engine::Graph g = engine::trace(*model, Tensor::randn({1, 3, 32, 32}, 0));
//   engine::save_onnx(g, "resnet20.onnx");
//
// The pass runs in eval mode with dense kernels; every autograd op it runs
// becomes ONNX nodes (autograd/trace.h records them), parameters and buffers
// become initializers under their dotted names (masks are already multiplied
// into pruned weights), other tensors the pass reads become constants. The
// batch dimension stays dynamic: the pass runs at the example's batch size and
// at one more, and every size that follows the batch is written as -1 (Reshape)
// or computed from the input's shape (Expand). Throws ValueError naming the op
// for an op the graph IR cannot express (a loss, exp, clamp, ...), and for a
// forward pass that reads a tensor whose shape follows the batch but which no
// op made (build it with expand() from a parameter instead).
#pragma once

#include <string>

#include "neurite/engine/graph.h"
#include "neurite/layers/module.h"

namespace neurite::engine {

struct TraceOptions {
  std::string input_name = "input", output_name = "output";
  bool dynamic_batch = true;  // false: the example's batch size is fixed in the graph
};

// `example` is one batch of the model's input (N, ...); the module's mode
// (train/eval) and kernel policy are restored afterwards.
Graph trace(layers::UnaryModule& module, const Tensor& example, const TraceOptions& options = {});

// A model's layers with weights (convolutions and products), from its trace
// on `example`: output shape, parameters, multiply-adds counted as 2 FLOPs
// each, and the weight's sparsity (the FLOPs a sparse kernel skips).
struct LayerSummary {
  std::string name, op;  // the layer's path (its weight's name without ".weight") and ONNX op
  Shape output;
  int64_t parameters = 0;
  double flops = 0, sparsity = 0;
};
struct ModelSummary {
  std::vector<LayerSummary> layers;
  int64_t parameters = 0;  // the whole model's
  double flops = 0;        // of those layers, dense
  double sparse_flops = 0; // the same with every weight's zeros skipped
  std::string to_string() const;  // a table, one row per layer, and the totals
};
ModelSummary summarize(layers::UnaryModule& module, const Tensor& example);

}  // namespace neurite::engine
