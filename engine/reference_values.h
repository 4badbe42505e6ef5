// Values in the reference executor: elements read as doubles, int64 lists,
// numpy broadcasting, and the error prefix naming a node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

using autograd::Dtype;

// "reference executor: node 'NAME' (Op)"
std::string where(const Node& n);
double element(const Tensor& t, int64_t i);
// double to int64, saturating: INT64_MAX (Slice's "to the end") survives a trip through double.
int64_t to_int(double v);
std::vector<int64_t> ints_of(const Tensor& t);
Tensor int_tensor(const std::vector<int64_t>& v, Shape shape);
Tensor int_tensor(const std::vector<int64_t>& v);
// numpy broadcasting of any number of shapes; ShapeError naming the node when they do not broadcast.
Shape broadcast_all(const Node& n, const std::vector<Shape>& shapes);
// For each element of `out`, the index into a tensor of shape `s` it broadcasts from.
std::vector<int64_t> broadcast_index(const Shape& s, const Shape& out);
Tensor make(const Shape& shape, Dtype dtype, const std::vector<double>& values);
Tensor as_float(const Tensor& t);
// A possibly negative axis of a rank-`rank` tensor, checked; ShapeError naming the node.
int64_t axis_of(const Node& n, int64_t axis, int64_t rank);
// Shape's output: dims [start, end) of `shape` as an int64 tensor.
Tensor ints_shape(const Shape& shape, const Node& n);

// Elementwise over broadcast inputs, computed in double.
template <typename F>
Tensor map_broadcast(const Node& n, const std::vector<Tensor>& in, Dtype out_type, F f) {
  std::vector<Shape> shapes;
  for (const auto& t : in) shapes.push_back(t.shape());
  const Shape out = broadcast_all(n, shapes);
  std::vector<std::vector<int64_t>> index;
  for (const auto& t : in) index.push_back(broadcast_index(t.shape(), out));
  std::vector<double> values(static_cast<size_t>(autograd::numel(out)));
  std::vector<double> args(in.size());
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t k = 0; k < in.size(); ++k) args[k] = element(in[k], index[k][i]);
    values[i] = f(args);
  }
  return make(out, out_type, values);
}

}  // namespace neurite::engine::detail
