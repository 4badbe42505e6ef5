#include "neurite/engine/graph.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <set>

#include "engine/shape_rules.h"
#include "neurite/error.h"

namespace neurite::engine {

using autograd::to_string;

std::string to_string(DataType type) {
  switch (type) {
    case DataType::float32: return "float32";
    case DataType::int64: return "int64";
    case DataType::boolean: return "bool";
    case DataType::int8: return "int8";
    case DataType::uint8: return "uint8";
  }
  return "?";
}

DataType data_type_of(autograd::Dtype dtype) {
  switch (dtype) {
    case autograd::Dtype::f32: return DataType::float32;
    case autograd::Dtype::i64: return DataType::int64;
    case autograd::Dtype::i8: return DataType::int8;
    case autograd::Dtype::u8: return DataType::uint8;
  }
  return DataType::float32;
}

autograd::Dtype storage_of(DataType type) {
  switch (type) {
    case DataType::float32: return autograd::Dtype::f32;
    case DataType::int64:
    case DataType::boolean: return autograd::Dtype::i64;
    case DataType::int8: return autograd::Dtype::i8;
    case DataType::uint8: return autograd::Dtype::u8;
  }
  return autograd::Dtype::f32;
}

namespace {

constexpr int kMany = 1 << 20;  // Concat takes any number of inputs


// In OpKind order; the static_assert below keeps the two in step.
constexpr std::array<OpInfo, kOpCount> kOps{{
    {OpKind::abs, "abs", "Abs", 1, 1, 1, detail::unary_shape},
    {OpKind::add, "add", "Add", 2, 2, 1, detail::binary_shape},
    {OpKind::average_pool, "average_pool", "AveragePool", 1, 1, 1, detail::pool_shape},
    {OpKind::batch_norm, "batch_norm", "BatchNormalization", 5, 5, 5, detail::batch_norm_shape},
    {OpKind::cast, "cast", "Cast", 1, 1, 1, detail::cast_shape},
    {OpKind::clip, "clip", "Clip", 1, 3, 1, detail::unary_shape},
    {OpKind::concat, "concat", "Concat", 1, kMany, 1, detail::concat_shape},
    {OpKind::constant, "constant", "Constant", 0, 0, 1, detail::constant_shape},
    {OpKind::constant_of_shape, "constant_of_shape", "ConstantOfShape", 1, 1, 1, detail::constant_of_shape_shape},
    {OpKind::conv, "conv", "Conv", 2, 3, 1, detail::conv_shape},
    {OpKind::dequantize_linear, "dequantize_linear", "DequantizeLinear", 2, 3, 1, detail::dequantize_linear_shape},
    {OpKind::div, "div", "Div", 2, 2, 1, detail::binary_shape},
    {OpKind::dropout, "dropout", "Dropout", 1, 3, 2, detail::dropout_shape},
    {OpKind::equal, "equal", "Equal", 2, 2, 1, detail::equal_shape},
    {OpKind::erf, "erf", "Erf", 1, 1, 1, detail::unary_shape},
    {OpKind::exp, "exp", "Exp", 1, 1, 1, detail::unary_shape},
    {OpKind::expand, "expand", "Expand", 2, 2, 1, detail::expand_shape},
    {OpKind::flatten, "flatten", "Flatten", 1, 1, 1, detail::flatten_shape},
    {OpKind::gather, "gather", "Gather", 2, 2, 1, detail::gather_shape},
    {OpKind::gelu, "gelu", "Gelu", 1, 1, 1, detail::unary_shape},  // opset 20; fusion writes it (engine/fusion.cpp)
    {OpKind::gemm, "gemm", "Gemm", 2, 3, 1, detail::gemm_shape},
    {OpKind::global_average_pool, "global_average_pool", "GlobalAveragePool", 1, 1, 1, detail::global_average_pool_shape},
    {OpKind::hard_sigmoid, "hard_sigmoid", "HardSigmoid", 1, 1, 1, detail::unary_shape},
    {OpKind::hard_swish, "hard_swish", "HardSwish", 1, 1, 1, detail::unary_shape},
    {OpKind::identity, "identity", "Identity", 1, 1, 1, detail::unary_shape},
    {OpKind::layer_norm, "layer_norm", "LayerNormalization", 2, 3, 3, detail::layer_norm_shape},
    {OpKind::leaky_relu, "leaky_relu", "LeakyRelu", 1, 1, 1, detail::unary_shape},
    {OpKind::matmul, "matmul", "MatMul", 2, 2, 1, detail::matmul_shape},
    {OpKind::max, "max", "Max", 1, kMany, 1, detail::variadic_shape},
    {OpKind::max_pool, "max_pool", "MaxPool", 1, 1, 1, detail::pool_shape},
    {OpKind::min, "min", "Min", 1, kMany, 1, detail::variadic_shape},
    {OpKind::mul, "mul", "Mul", 2, 2, 1, detail::binary_shape},
    {OpKind::neg, "neg", "Neg", 1, 1, 1, detail::unary_shape},
    {OpKind::logical_and, "logical_and", "And", 2, 2, 1, detail::equal_shape},
    {OpKind::logical_not, "logical_not", "Not", 1, 1, 1, detail::unary_shape},
    {OpKind::logical_or, "logical_or", "Or", 2, 2, 1, detail::equal_shape},
    {OpKind::logical_xor, "logical_xor", "Xor", 2, 2, 1, detail::equal_shape},
    {OpKind::pad, "pad", "Pad", 2, 4, 1, detail::pad_shape},
    {OpKind::pow, "pow", "Pow", 2, 2, 1, detail::binary_shape},
    {OpKind::quantize_linear, "quantize_linear", "QuantizeLinear", 2, 3, 1, detail::quantize_linear_shape},
    {OpKind::range, "range", "Range", 3, 3, 1, detail::range_shape},
    {OpKind::reciprocal, "reciprocal", "Reciprocal", 1, 1, 1, detail::unary_shape},
    {OpKind::reduce_l1, "reduce_l1", "ReduceL1", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_l2, "reduce_l2", "ReduceL2", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_log_sum, "reduce_log_sum", "ReduceLogSum", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_log_sum_exp, "reduce_log_sum_exp", "ReduceLogSumExp", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_max, "reduce_max", "ReduceMax", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_mean, "reduce_mean", "ReduceMean", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_min, "reduce_min", "ReduceMin", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_prod, "reduce_prod", "ReduceProd", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_sum, "reduce_sum", "ReduceSum", 1, 2, 1, detail::reduce_shape},
    {OpKind::reduce_sum_square, "reduce_sum_square", "ReduceSumSquare", 1, 2, 1, detail::reduce_shape},
    {OpKind::relu, "relu", "Relu", 1, 1, 1, detail::unary_shape},
    {OpKind::reshape, "reshape", "Reshape", 2, 2, 1, detail::reshape_shape},
    {OpKind::resize, "resize", "Resize", 1, 4, 1, detail::resize_shape},
    {OpKind::shape, "shape", "Shape", 1, 1, 1, detail::shape_shape},
    {OpKind::sigmoid, "sigmoid", "Sigmoid", 1, 1, 1, detail::unary_shape},
    {OpKind::slice, "slice", "Slice", 3, 5, 1, detail::slice_shape},
    {OpKind::softmax, "softmax", "Softmax", 1, 1, 1, detail::softmax_shape},
    {OpKind::sqrt, "sqrt", "Sqrt", 1, 1, 1, detail::unary_shape},
    {OpKind::squeeze, "squeeze", "Squeeze", 1, 2, 1, detail::squeeze_shape},
    {OpKind::sub, "sub", "Sub", 2, 2, 1, detail::binary_shape},
    {OpKind::tanh, "tanh", "Tanh", 1, 1, 1, detail::unary_shape},
    {OpKind::transpose, "transpose", "Transpose", 1, 1, 1, detail::transpose_shape},
    {OpKind::unsqueeze, "unsqueeze", "Unsqueeze", 1, 2, 1, detail::unsqueeze_shape},
    {OpKind::where, "where", "Where", 3, 3, 1, detail::where_shape},
}};

constexpr bool table_in_order() {
  for (size_t i = 0; i < kOps.size(); ++i)
    if (static_cast<size_t>(kOps[i].op) != i) return false;
  return true;
}
static_assert(table_in_order(), "kOps must list the ops in OpKind order");

std::string describe(const Node& n) { return fmt::format("node '{}' ({})", n.name, op_info(n.op).onnx); }

template <typename T>
const T* attribute(const Node& n, const std::string& name) {
  auto it = n.attributes.find(name);
  if (it == n.attributes.end()) return nullptr;
  const T* v = std::get_if<T>(&it->second);
  check(v != nullptr, "{}: attribute '{}' has the wrong type", describe(n), name);
  return v;
}

}  // namespace

const OpInfo& op_info(OpKind op) { return kOps.at(static_cast<size_t>(op)); }

std::span<const OpInfo> all_ops() { return kOps; }

std::optional<OpKind> op_from_onnx(std::string_view onnx_name) {
  for (const OpInfo& info : kOps)
    if (info.onnx == onnx_name) return info.op;
  return std::nullopt;
}

int64_t Node::integer(const std::string& name, int64_t fallback) const {
  const int64_t* v = attribute<int64_t>(*this, name);
  return v != nullptr ? *v : fallback;
}

double Node::real(const std::string& name, double fallback) const {
  const double* v = attribute<double>(*this, name);
  return v != nullptr ? *v : fallback;
}

std::vector<int64_t> Node::integers(const std::string& name, std::vector<int64_t> fallback) const {
  const std::vector<int64_t>* v = attribute<std::vector<int64_t>>(*this, name);
  return v != nullptr ? *v : fallback;
}

void Graph::validate() const {
  std::map<std::string, std::string> producer;  // value -> what produces it
  auto produce = [&](const std::string& name, const std::string& by) {
    check<FormatError>(!name.empty(), "graph: {} produces a value with an empty name", by);
    auto [it, fresh] = producer.emplace(name, by);
    check<FormatError>(fresh, "graph: value '{}' is produced twice, by {} and by {}", name, it->second, by);
  };
  for (const ValueInfo& v : inputs) produce(v.name, "a graph input");
  for (const auto& [name, t] : initializers)
    if (producer.count(name) == 0) produce(name, "an initializer");  // an input may carry a default
  for (const Node& n : nodes) {
    const OpInfo& info = op_info(n.op);
    const auto count = static_cast<int>(n.inputs.size());
    check<FormatError>(count >= info.min_inputs && count <= info.max_inputs, "graph: {} has {} inputs, expected {}",
                       describe(n), count,
                       info.min_inputs == info.max_inputs ? fmt::format("{}", info.min_inputs)
                       : info.max_inputs == kMany         ? fmt::format("at least {}", info.min_inputs)
                                                          : fmt::format("{} to {}", info.min_inputs, info.max_inputs));
    check<FormatError>(!n.outputs.empty() && static_cast<int>(n.outputs.size()) <= info.outputs,
                       "graph: {} has {} outputs, expected 1 to {}", describe(n), n.outputs.size(), info.outputs);
    for (const auto& out : n.outputs)
      if (!out.empty()) produce(out, describe(n));
  }
  for (const Node& n : nodes)
    for (const auto& in : n.inputs)
      check<FormatError>(in.empty() || producer.count(in) != 0,
                         "graph: {} reads '{}', which no input, initializer or node produces", describe(n), in);
  for (const ValueInfo& v : outputs)
    check<FormatError>(producer.count(v.name) != 0, "graph: output '{}' is produced by nothing", v.name);
  // 8-bit values (inputs, initializers, QuantizeLinear's outputs, and Clip's
  // and Identity's of them) go only into DequantizeLinear, Clip (which
  // PyTorch's exporter puts after QuantizeLinear to narrow the range),
  // Identity, and QuantizeLinear's zero point.
  std::set<std::string> eight_bit;
  for (const ValueInfo& v : inputs)
    if (v.type == DataType::int8 || v.type == DataType::uint8) eight_bit.insert(v.name);
  for (const auto& [name, t] : initializers)
    if (t.dtype() == autograd::Dtype::i8 || t.dtype() == autograd::Dtype::u8) eight_bit.insert(name);
  for (size_t i : topological_order()) {  // throws on a cycle
    const Node& n = nodes[i];
    const bool passes_through = n.op == OpKind::clip || n.op == OpKind::identity;
    if (n.op == OpKind::quantize_linear || (passes_through && eight_bit.count(n.inputs[0])))
      eight_bit.insert(n.outputs[0]);
    else if (n.op != OpKind::dequantize_linear && !passes_through)
      for (const auto& in : n.inputs)
        check<FormatError>(eight_bit.count(in) == 0,
                           "graph: {} reads the 8-bit value '{}'; only DequantizeLinear, Clip and Identity take 8-bit values",
                           describe(n), in);
  }
}

std::vector<size_t> Graph::topological_order() const {
  std::map<std::string, size_t> made_by;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& out : nodes[i].outputs) made_by[out] = i;
  std::vector<int> waiting(nodes.size(), 0);
  std::vector<std::vector<size_t>> consumers(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& in : nodes[i].inputs)
      if (auto it = made_by.find(in); it != made_by.end()) {
        ++waiting[i];
        consumers[it->second].push_back(i);
      }
  std::vector<size_t> order, ready;
  for (size_t i = nodes.size(); i-- > 0;)
    if (waiting[i] == 0) ready.push_back(i);
  while (!ready.empty()) {  // Kahn's algorithm; ties keep the nodes' own order
    const size_t i = ready.back();
    ready.pop_back();
    order.push_back(i);
    for (size_t c : consumers[i])
      if (--waiting[c] == 0) {
        ready.push_back(c);
        std::sort(ready.begin(), ready.end(), std::greater<>());
      }
  }
  if (order.size() != nodes.size()) {
    std::vector<std::string> stuck;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (waiting[i] > 0) stuck.push_back(nodes[i].name);
    throw FormatError(fmt::format("graph: a cycle runs through nodes {}", fmt::join(stuck, ", ")));
  }
  return order;
}

const Tensor* Graph::constant(const std::string& name) const {
  if (auto it = initializers.find(name); it != initializers.end()) return &it->second;
  for (const Node& n : nodes)
    if (n.op == OpKind::constant && !n.outputs.empty() && n.outputs[0] == name)
      if (auto it = n.attributes.find("value"); it != n.attributes.end()) return std::get_if<Tensor>(&it->second);
  return nullptr;
}

void prepend_normalization(Graph& g, const std::string& input, const std::vector<float>& mean,
                           const std::vector<float>& stddev) {
  check<ValueError>(!mean.empty() && mean.size() == stddev.size(), "normalization: {} means and {} deviations",
                    mean.size(), stddev.size());
  const auto it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const ValueInfo& v) { return v.name == input; });
  check<ValueError>(it != g.inputs.end(), "normalization: the graph has no input '{}'", input);
  check<ShapeError>(it->shape.size() >= 2 && (mean.size() == 1 || it->shape[1] < 0 ||
                                              it->shape[1] == static_cast<int64_t>(mean.size())),
                    "normalization: {} means for input '{}' of shape {}", mean.size(), input,
                    autograd::to_string(it->shape));
  for (const ValueInfo& out : g.outputs)
    check<ValueError>(out.name != input, "normalization: input '{}' is also an output", input);
  const std::string normalized = input + ".normalized";
  for (Node& n : g.nodes)
    for (std::string& name : n.inputs)
      if (name == input) name = normalized;
  // Shaped (C, 1, ...) to broadcast over (N, C, spatial...).
  autograd::Shape shape(it->shape.size() - 1, 1);
  shape[0] = static_cast<int64_t>(mean.size());
  Tensor m = Tensor::empty(shape), inverse = Tensor::empty(shape);
  for (size_t c = 0; c < mean.size(); ++c) {
    m.data<float>()[c] = mean[c];
    inverse.data<float>()[c] = 1.0f / stddev[c];  // as data::normalize computes it
  }
  g.initializers[input + ".normalize_mean"] = m;
  g.initializers[input + ".normalize_inverse_std"] = inverse;
  const std::vector<Node> front = {
      {.op = OpKind::sub, .name = input + ".normalize_sub", .inputs = {input, input + ".normalize_mean"},
       .outputs = {input + ".centred"}},
      {.op = OpKind::mul, .name = input + ".normalize_mul", .inputs = {input + ".centred", input + ".normalize_inverse_std"},
       .outputs = {normalized}}};
  g.nodes.insert(g.nodes.begin(), front.begin(), front.end());
  if (!g.values.empty()) g.infer_shapes();
}

}  // namespace neurite::engine
