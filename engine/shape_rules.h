// The shape rules of the ops, one function per rule, which the op table in
// engine/graph.cpp points to (engine/shapes.cpp defines them).
#pragma once

#include <fmt/format.h>

#include <string>
#include <vector>

#include "neurite/error.h"
#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

// A node and its inputs' types and shapes, as a rule sees them.
struct ShapeContext {
  const Graph& graph;
  const Node& node;
  std::vector<const ValueInfo*> in;  // null for an optional input left out

  std::string where() const { return fmt::format("node '{}' ({})", node.name, op_info(node.op).onnx); }
  const ValueInfo& input(size_t i) const {
    check<ShapeError>(i < in.size() && in[i] != nullptr, "{}: input {} is missing", where(), i);
    return *in[i];
  }
  const Shape& shape(size_t i) const { return input(i).shape; }
  int64_t axis(int64_t a, size_t rank) const {
    const auto r = static_cast<int64_t>(rank);
    check<ShapeError>(a >= -r && a < r, "{}: axis {} is out of range for rank {}", where(), a, r);
    return a < 0 ? a + r : a;
  }
  // The values of input i, which must be a constant (initializer or Constant).
  std::vector<int64_t> constant_ints(size_t i) const {
    const Tensor* t = i < node.inputs.size() ? graph.constant(node.inputs[i]) : nullptr;
    check<ShapeError>(t != nullptr, "{}: input '{}' must be a constant to know the output shape", where(),
                      i < node.inputs.size() ? node.inputs[i] : "");
    std::vector<int64_t> out(static_cast<size_t>(t->numel()));
    for (int64_t k = 0; k < t->numel(); ++k)
      out[k] = t->dtype() == autograd::Dtype::i64 ? t->data<int64_t>()[k]
                                                  : static_cast<int64_t>(t->data<float>()[k]);
    return out;
  }
  // The values of input i when it is a constant; otherwise a shape computed at
  // run time, of which only the length (input i's one dimension) is known: -1s.
  std::vector<int64_t> ints_or_unknown(size_t i) const {
    if (i < node.inputs.size() && graph.constant(node.inputs[i]) != nullptr) return constant_ints(i);
    const Shape& s = shape(i);
    check<ShapeError>(s.size() == 1 && s[0] >= 0, "{}: input {} must be a 1-D int64 shape of known length, got {}",
                      where(), i, autograd::to_string(s));
    return std::vector<int64_t>(static_cast<size_t>(s[0]), kRunTime);
  }
  static constexpr int64_t kRunTime = -2;  // an entry of a shape input known only at run time
  bool given(size_t i) const { return i < node.inputs.size() && !node.inputs[i].empty(); }
};

std::vector<ValueInfo> binary_shape(const ShapeContext& c);
std::vector<ValueInfo> variadic_shape(const ShapeContext& c);  // Max, Min: every input broadcast
std::vector<ValueInfo> equal_shape(const ShapeContext& c);
std::vector<ValueInfo> where_shape(const ShapeContext& c);
std::vector<ValueInfo> unary_shape(const ShapeContext& c);
std::vector<ValueInfo> batch_norm_shape(const ShapeContext& c);
std::vector<ValueInfo> range_shape(const ShapeContext& c);
std::vector<ValueInfo> softmax_shape(const ShapeContext& c);
std::vector<ValueInfo> dropout_shape(const ShapeContext& c);
std::vector<ValueInfo> cast_shape(const ShapeContext& c);
std::vector<ValueInfo> quantize_linear_shape(const ShapeContext& c);
std::vector<ValueInfo> dequantize_linear_shape(const ShapeContext& c);
std::vector<ValueInfo> layer_norm_shape(const ShapeContext& c);
std::vector<ValueInfo> conv_shape(const ShapeContext& c);
std::vector<ValueInfo> pool_shape(const ShapeContext& c);
std::vector<ValueInfo> global_average_pool_shape(const ShapeContext& c);
std::vector<ValueInfo> gemm_shape(const ShapeContext& c);
std::vector<ValueInfo> matmul_shape(const ShapeContext& c);
std::vector<ValueInfo> flatten_shape(const ShapeContext& c);
std::vector<ValueInfo> reshape_shape(const ShapeContext& c);
std::vector<ValueInfo> transpose_shape(const ShapeContext& c);
std::vector<ValueInfo> concat_shape(const ShapeContext& c);
std::vector<ValueInfo> reduce_shape(const ShapeContext& c);  // every Reduce*
std::vector<ValueInfo> pad_shape(const ShapeContext& c);
std::vector<ValueInfo> resize_shape(const ShapeContext& c);
std::vector<ValueInfo> gather_shape(const ShapeContext& c);
std::vector<ValueInfo> slice_shape(const ShapeContext& c);
std::vector<ValueInfo> squeeze_shape(const ShapeContext& c);
std::vector<ValueInfo> unsqueeze_shape(const ShapeContext& c);
std::vector<ValueInfo> shape_shape(const ShapeContext& c);
std::vector<ValueInfo> constant_shape(const ShapeContext& c);
std::vector<ValueInfo> constant_of_shape_shape(const ShapeContext& c);
std::vector<ValueInfo> expand_shape(const ShapeContext& c);

// A pooled or convolved dimension's output extent (ceil_mode as PyTorch and
// ONNX define it), -1 when the window does not fit.
int64_t pooled_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end, int64_t dilation,
                      bool ceil_mode);

}  // namespace neurite::engine::detail
