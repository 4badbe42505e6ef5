// neurite/engine/graph.h — the one graph IR: what tracing a Module and
// importing ONNX produce, and what ONNX export and the engine consume.
//
//   engine::Graph g;
//   g.inputs.push_back({"input", DataType::float32, {-1, 784}});      // -1: dynamic (the batch)
//   g.initializers.emplace("fc.weight", weight);                       // (10, 784)
//   g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"input", "fc.weight"},
//                      .outputs = {"logits"}, .attributes = {{"transB", int64_t{1}}}});
//   g.outputs.push_back({"logits"});
//   g.infer_shapes();                      // validates, then fills g.values: logits is float32 (-1, 10)
//
// Nodes are ONNX operators with ONNX's attribute names and semantics, so
// import and export translate names only. Values are named by strings; a name
// is produced once, by a graph input, an initializer or one node output.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "neurite/autograd/tensor.h"

namespace neurite::engine {

using autograd::Shape;
using autograd::Tensor;

enum class OpKind : uint8_t {
  abs, add, average_pool, batch_norm, cast, clip, concat, constant, constant_of_shape, conv, dequantize_linear, div,
  dropout, equal, erf, exp, expand, flatten, gather, gelu, gemm, global_average_pool, hard_sigmoid, hard_swish, identity,
  layer_norm, leaky_relu, matmul, max, max_pool, min, mul, neg, logical_and, logical_not, logical_or, logical_xor, pad,
  pow, quantize_linear, range, reciprocal, reduce_l1, reduce_l2, reduce_log_sum, reduce_log_sum_exp, reduce_max,
  reduce_mean, reduce_min, reduce_prod, reduce_sum, reduce_sum_square, relu, reshape, resize, shape, sigmoid, slice,
  softmax, sqrt, squeeze, sub, tanh, transpose, unsqueeze, where,
};
constexpr size_t kOpCount = static_cast<size_t>(OpKind::where) + 1;

// Element types of graph values: tensors hold float32 and int64; bool appears
// only in masks and comparisons, which import folds or the executor keeps;
// int8 and uint8 only around QuantizeLinear and DequantizeLinear.
enum class DataType : uint8_t { float32, int64, boolean, int8, uint8 };
// The graph type of a tensor's dtype, and the dtype that holds a graph type
// (bool as int64 0/1).
DataType data_type_of(autograd::Dtype dtype);
autograd::Dtype storage_of(DataType type);
std::string to_string(DataType type);

// A value's type and shape; -1 marks a dimension known only at run time.
struct ValueInfo {
  std::string name;
  DataType type = DataType::float32;
  Shape shape;
};

namespace detail {
struct ShapeContext;  // engine/shape_rules.h
}
// An op's shape rule: its outputs' types and shapes from its node and inputs.
using ShapeRule = std::vector<ValueInfo> (*)(const detail::ShapeContext&);

struct OpInfo {
  OpKind op;
  std::string_view name;  // ours, snake_case
  std::string_view onnx;  // the ONNX operator (domain ai.onnx)
  int min_inputs, max_inputs, outputs;  // outputs: how many the op can produce
  ShapeRule infer;
};
// The one table of ops: a constexpr array in OpKind order (engine/graph.cpp)
// whose entries point to their shape rules (engine/shapes.cpp).
const OpInfo& op_info(OpKind op);
std::span<const OpInfo> all_ops();
std::optional<OpKind> op_from_onnx(std::string_view onnx_name);
// ReduceL1, ReduceL2, ..., ReduceSumSquare: one input and axes (an input or an attribute).
constexpr bool is_reduction(OpKind op) { return op >= OpKind::reduce_l1 && op <= OpKind::reduce_sum_square; }

using Attribute = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>, Tensor>;

struct Node {
  OpKind op;
  std::string name;
  std::vector<std::string> inputs;  // "" for an optional input left out
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attributes;

  bool has(const std::string& attribute) const { return attributes.count(attribute) != 0; }
  // The attribute or `fallback`; ValueError naming node and attribute when it has another type.
  int64_t integer(const std::string& attribute, int64_t fallback) const;
  double real(const std::string& attribute, double fallback) const;
  std::vector<int64_t> integers(const std::string& attribute, std::vector<int64_t> fallback = {}) const;
};


class Graph {
 public:
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;  // names; infer_shapes fills types and shapes
  std::map<std::string, Tensor> initializers;
  std::vector<Node> nodes;
  std::map<std::string, ValueInfo> values;  // every value's type and shape, after infer_shapes
  std::map<std::string, std::string> metadata;

  // Throws FormatError naming the node and value at fault: an input no one
  // produces, a name produced twice, an op given too few or too many inputs or
  // outputs, a cycle, or a graph output no one produces.
  void validate() const;
  // Node indices in an order where every node follows the producers of its inputs.
  std::vector<size_t> topological_order() const;
  // Validates, then derives every value's type and shape from the inputs and
  // initializers, node by node; throws ShapeError naming the node when its
  // inputs do not fit. Shape inputs (Reshape's, Slice's, ...) must be
  // initializers or Constant outputs.
  void infer_shapes();
  // The value of a name held by an initializer or a Constant node, if any.
  const Tensor* constant(const std::string& name) const;
};

// Puts (x - mean[c]) * (1 / std[c]) in front of input `input` (N, C, ...),
// so that the graph takes images as they come where the model was trained on
// normalised ones; the input keeps its name, the new nodes and initializers
// are named input.normalize_*.
void prepend_normalization(Graph& g, const std::string& input, const std::vector<float>& mean,
                           const std::vector<float>& stddev);

}  // namespace neurite::engine
