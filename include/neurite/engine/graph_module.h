// neurite/engine/graph_module.h — a trainable Module made from a Graph: the
// model a user brings as an ONNX file (PyTorch's torch.onnx.export) trains,
// prunes and quantises like a zoo model, and goes back to ONNX under its
// original names.
//
//   auto model = std::make_shared<engine::GraphModule>(engine::load_onnx("resnet18.onnx"));
//   for (auto& [name, p] : model->named_parameters()) ...   // "layer1.0.conv1.weight", as PyTorch names it
//   Variable logits = model->forward(x);                     // autograd: backward(), optimizers, masks
//   engine::save_onnx(model->exported(), "trained.onnx");
//
// What becomes trainable: every float initializer a node reads as a weight —
// Conv's and Gemm's weight and bias, MatMul's operands, BatchNormalization's
// scale and bias, LayerNormalization's, a Gather's table (an embedding) — and
// every other float initializer of more than one element, all finite, named
// as PyTorch names parameters (not "onnx::Op_N", its folded constants) and
// read by an op with a gradient: a Transpose of a Linear's weight, a bias
// added after a MatMul, a positional embedding. BatchNormalization's running
// mean and variance become buffers; everything else stays constant.
//
// Conv nodes that Conv2d can express (square kernel, equal strides, dilations
// and symmetric pads) with a weight named P.weight, Gemm nodes of PyTorch's
// Linear (transB = 1) with P.weight, and MatMul by a folded transposed weight
// followed by Add of P.bias (PyTorch's Linear on 3-D inputs) run as Conv2d and
// Linear children at P: pruned, they train on the sparse kernels, and
// quantisation-aware training wraps them as it wraps the zoo's layers. The
// rest runs node by node on the autograd ops; in training mode
// BatchNormalization normalises with the batch's statistics and updates its
// running ones, and Dropout drops.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "neurite/engine/graph.h"
#include "neurite/layers/module.h"

namespace neurite::engine {

using autograd::Variable;

class GraphModule : public layers::UnaryModule {
 public:
  // Throws ValueError naming the node when a weight flows through an op that
  // has no gradient, and when the graph has no float weight at all.
  explicit GraphModule(Graph graph);

  // The graph's one input (ValueError if it has more) to its first output.
  Variable forward(const Variable& x) override;
  // The graph's inputs in order to its first output.
  Variable forward_inputs(const std::vector<Variable>& inputs) override;
  std::vector<std::string> input_names() const;
  // Every graph input by name, to every output by name.
  std::map<std::string, Variable> run(const std::map<std::string, Variable>& inputs);

  // The graph as imported, for inference, with the current weights and
  // running statistics as its initializers under their original names
  // (masked weights hold their zeros) and each pruned weight's sparsity as
  // metadata. A training-mode export's BatchNormalization and Dropout nodes
  // become their inference forms.
  Graph exported() const;
  const Graph& graph() const { return graph_; }

  // The classifier: the last Linear child whose output is the graph's
  // output (through shape-only nodes). Replaces it with a freshly
  // initialised one of `classes` outputs under the same names; ValueError if
  // the graph's output does not come from such a layer.
  void replace_classifier(int64_t classes);
  int64_t num_classes() const;

 private:
  class Scope;
  struct Bound;  // a node run by a child layer

  Scope* scope(const std::string& prefix);
  void add_parameter(const std::string& name, const Tensor& value);
  void add_buffer(const std::string& name, const Tensor& value);
  template <typename Layer>
  std::shared_ptr<Layer> add_layer(const std::string& prefix, std::shared_ptr<Layer> layer);
  void bind_layers();
  void check_differentiable() const;
  void add_quantization(Graph& g) const;
  size_t classifier_node() const;

  Graph graph_;
  std::vector<size_t> order_;
  std::map<std::string, std::shared_ptr<Scope>> scopes_;     // by dotted prefix
  std::map<std::string, layers::ParameterPtr> parameters_;   // by initializer name (not the layers' own)
  std::map<std::string, Tensor*> buffers_;                   // by initializer name
  std::map<size_t, std::shared_ptr<Bound>> bound_;           // by node index: the node a layer runs
  std::map<size_t, size_t> absorbed_;                        // an Add a MatMul's Linear runs -> that MatMul
};

}  // namespace neurite::engine
