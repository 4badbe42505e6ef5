#include "engine/reference_values.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "neurite/error.h"

namespace neurite::engine::detail {

using autograd::to_string;

std::string where(const Node& n) { return fmt::format("reference executor: node '{}' ({})", n.name, op_info(n.op).onnx); }

double element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case Dtype::f32: return t.data<float>()[i];
    case Dtype::i64: return static_cast<double>(t.data<int64_t>()[i]);
    case Dtype::i8: return t.data<int8_t>()[i];
    case Dtype::u8: return t.data<uint8_t>()[i];
  }
  return 0;
}

int64_t to_int(double v) {
  check<ValueError>(!std::isnan(v), "a NaN where an integer (a shape, an index, a count) is needed");
  if (v >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

std::vector<int64_t> ints_of(const Tensor& t) {
  if (t.dtype() == Dtype::i64) return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = to_int(element(t, i));
  return out;
}

Tensor int_tensor(const std::vector<int64_t>& v, Shape shape) { return Tensor::from_data(shape, v); }
Tensor int_tensor(const std::vector<int64_t>& v) { return int_tensor(v, {static_cast<int64_t>(v.size())}); }

Shape broadcast_all(const Node& n, const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const auto& s : shapes)
    for (size_t k = 0; k < s.size(); ++k) {
      int64_t& o = out[rank - s.size() + k];
      check<ShapeError>(s[k] == o || s[k] == 1 || o == 1, "{}: shapes do not broadcast ({})", where(n), to_string(s));
      if (o == 1) o = s[k];
    }
  return out;
}

std::vector<int64_t> broadcast_index(const Shape& s, const Shape& out) {
  const int64_t total = autograd::numel(out);
  std::vector<int64_t> index(static_cast<size_t>(total));
  const size_t rank = out.size(), lead = rank - s.size();
  std::vector<int64_t> stride(rank, 0);
  for (int64_t k = static_cast<int64_t>(s.size()) - 1, st = 1; k >= 0; --k) {
    stride[lead + k] = s[k] == 1 ? 0 : st;
    st *= s[k];
  }
  std::vector<int64_t> pos(rank, 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < total; ++i) {
    index[i] = offset;
    for (int64_t k = static_cast<int64_t>(rank) - 1; k >= 0; --k) {  // odometer
      offset += stride[k];
      if (++pos[k] < out[k]) break;
      offset -= stride[k] * out[k];
      pos[k] = 0;
    }
  }
  return index;
}

Tensor make(const Shape& shape, Dtype dtype, const std::vector<double>& values) {
  Tensor t = Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) switch (dtype) {
      case Dtype::f32: t.data<float>()[i] = static_cast<float>(values[i]); break;
      case Dtype::i64: t.data<int64_t>()[i] = to_int(values[i]); break;
      case Dtype::i8: t.data<int8_t>()[i] = static_cast<int8_t>(std::clamp(values[i], -128.0, 127.0)); break;
      case Dtype::u8: t.data<uint8_t>()[i] = static_cast<uint8_t>(std::clamp(values[i], 0.0, 255.0)); break;
    }
  return t;
}

Tensor as_float(const Tensor& t) { return t.dtype() == Dtype::f32 ? t : t.to(Dtype::f32); }

int64_t axis_of(const Node& n, int64_t axis, int64_t rank) {
  check<ShapeError>(axis >= -rank && axis < rank, "{}: axis {} is out of range for rank {}", where(n), axis, rank);
  return axis < 0 ? axis + rank : axis;
}

Tensor ints_shape(const Shape& shape, const Node& n) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  auto bound = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t start = bound(n.integer("start", 0)), end = bound(n.integer("end", rank));
  return int_tensor(std::vector<int64_t>(shape.begin() + start, shape.begin() + std::max(start, end)));
}

}  // namespace neurite::engine::detail
