// Shape and type inference: the rules the op table points to, ONNX's
// semantics. Dimensions known only at run time are -1 and propagate as such.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/qdq.h"
#include "engine/shape_rules.h"
#include "neurite/error.h"

namespace neurite::engine {

using autograd::to_string;

namespace {

using detail::ShapeContext;


// numpy broadcasting of two shapes, -1 for dimensions unknown until run time.
Shape broadcast(const ShapeContext& c, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t k = 0; k < out.size(); ++k) {
    const int64_t x = k < out.size() - a.size() ? 1 : a[k - (out.size() - a.size())];
    const int64_t y = k < out.size() - b.size() ? 1 : b[k - (out.size() - b.size())];
    check<ShapeError>(x == y || x == 1 || y == 1 || x == -1 || y == -1, "{}: shapes {} and {} do not broadcast",
                      c.where(), to_string(a), to_string(b));
    out[k] = x == y ? x : x == 1 ? y : y == 1 ? x : std::max(x, y);  // -1 against k: k
  }
  return out;
}

// Output side of a pooled or convolved dimension.
int64_t window_out(const ShapeContext& c, int64_t in, int64_t kernel, int64_t stride, int64_t pad_begin,
                   int64_t pad_end, int64_t dilation, bool ceil_mode) {
  if (in < 0) return -1;
  const int64_t out = detail::pooled_extent(in, kernel, stride, pad_begin, pad_end, dilation, ceil_mode);
  check<ShapeError>(out > 0, "{}: a window of {} (stride {}, dilation {}) does not fit an input of {} with pads {}, {}",
                    c.where(), kernel, stride, dilation, in, pad_begin, pad_end);
  return out;
}

Shape windowed(const ShapeContext& c, const Shape& x, const std::vector<int64_t>& kernel, int64_t channels) {
  const size_t spatial = x.size() - 2;
  check<ShapeError>(kernel.size() == spatial, "{}: kernel_shape {} for input {}", c.where(), fmt::join(kernel, ","),
                    to_string(x));
  const auto strides = c.node.integers("strides", std::vector<int64_t>(spatial, 1));
  const auto dilations = c.node.integers("dilations", std::vector<int64_t>(spatial, 1));
  const auto pads = c.node.integers("pads", std::vector<int64_t>(2 * spatial, 0));
  check<ShapeError>(strides.size() == spatial && dilations.size() == spatial && pads.size() == 2 * spatial,
                    "{}: strides, dilations and pads must have {}, {} and {} entries", c.where(), spatial, spatial,
                    2 * spatial);
  const bool ceil_mode = c.node.integer("ceil_mode", 0) != 0;
  Shape out{x[0], channels};
  for (size_t k = 0; k < spatial; ++k)
    out.push_back(window_out(c, x[2 + k], kernel[k], strides[k], pads[k], pads[k + spatial], dilations[k], ceil_mode));
  return out;
}

ValueInfo like(const ValueInfo& v, Shape shape) { return {"", v.type, std::move(shape)}; }

}  // namespace

namespace detail {

int64_t pooled_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end, int64_t dilation,
                      bool ceil_mode) {
  const int64_t span = dilation * (kernel - 1) + 1, room = in + pad_begin + pad_end - span;
  if (room < 0 || stride < 1) return -1;
  int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
  // ceil_mode: a last window that would start in the end padding is dropped (PyTorch's and ONNX's rule).
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;
  return out;
}


std::vector<ValueInfo> binary_shape(const ShapeContext& c) {
  return {like(c.input(0), broadcast(c, c.shape(0), c.shape(1)))};
}

std::vector<ValueInfo> variadic_shape(const ShapeContext& c) {
  Shape out = c.shape(0);
  for (size_t k = 1; k < c.in.size(); ++k) out = broadcast(c, out, c.shape(k));
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> equal_shape(const ShapeContext& c) {
  return {{"", DataType::boolean, broadcast(c, c.shape(0), c.shape(1))}};
}

std::vector<ValueInfo> where_shape(const ShapeContext& c) {
  return {like(c.input(1), broadcast(c, c.shape(0), broadcast(c, c.shape(1), c.shape(2))))};
}

std::vector<ValueInfo> unary_shape(const ShapeContext& c) {
  return {c.input(0)};
}

// Y, then what a training-mode export names besides: the running mean and
// variance (opset 14+), or those and the saved batch statistics (opset 9-13),
// each of the channels' size.
std::vector<ValueInfo> batch_norm_shape(const ShapeContext& c) {
  std::vector<ValueInfo> out{c.input(0)};
  for (size_t k = 1; k < c.node.outputs.size(); ++k) out.push_back(c.input(3));
  return out;
}

// Range's length, max(ceil((limit - start) / delta), 0), when its inputs are constants.
std::vector<ValueInfo> range_shape(const ShapeContext& c) {
  double v[3];
  bool known = true;
  for (size_t k = 0; k < 3; ++k) {
    const Tensor* t = c.graph.constant(c.node.inputs[k]);
    check<ShapeError>(autograd::numel(c.shape(k)) == 1, "{}: input {} must be a scalar, got {}", c.where(), k,
                      autograd::to_string(c.shape(k)));
    known = known && t != nullptr;
    if (t != nullptr) v[k] = t->dtype() == autograd::Dtype::i64 ? static_cast<double>(t->data<int64_t>()[0]) : t->data<float>()[0];
  }
  if (known) check<ShapeError>(v[2] != 0, "{}: delta is 0", c.where());
  const int64_t length = known ? std::max<int64_t>(0, static_cast<int64_t>(std::ceil((v[1] - v[0]) / v[2]))) : -1;
  return {{"", c.input(0).type, {length}}};
}

std::vector<ValueInfo> softmax_shape(const ShapeContext& c) {
  const Node& n = c.node;
  c.axis(n.integer("axis", -1), c.shape(0).size());
  return {c.input(0)};
}

std::vector<ValueInfo> dropout_shape(const ShapeContext& c) {
  return {c.input(0), {"", DataType::boolean, c.shape(0)}};
}

std::vector<ValueInfo> cast_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const int64_t to = n.integer("to", -1);  // ONNX TensorProto: 1 float, 7 int64, 9 bool
  check<ShapeError>(to == 1 || to == 7 || to == 9, "{}: cast to ONNX type {} is not supported (float, int64, bool)",
                    c.where(), to);
  return {{"", to == 1 ? DataType::float32 : to == 7 ? DataType::int64 : DataType::boolean, c.shape(0)}};
}

namespace {

// QuantizeLinear's and DequantizeLinear's operands: a float32 scale, an 8-bit
// zero point of the scale's shape; constant ones are checked whole here.
DataType check_qdq(const ShapeContext& c) {
  check<DtypeError>(c.input(1).type == DataType::float32, "{}: the scale is {}, expected float32", c.where(),
                    to_string(c.input(1).type));
  const bool has_zero_point = c.in.size() > 2 && c.in[2] != nullptr;
  // Without a zero point: uint8 for QuantizeLinear, the input's type for DequantizeLinear.
  const DataType type = has_zero_point                              ? c.input(2).type
                        : c.node.op == OpKind::dequantize_linear ? c.input(0).type
                                                                    : DataType::uint8;
  check<DtypeError>(type == DataType::int8 || type == DataType::uint8, "{}: the zero point is {}, expected int8 or uint8",
                    c.where(), to_string(type));
  const Tensor* scale = c.graph.constant(c.node.inputs[1]);
  const Tensor* zero_point = has_zero_point ? c.graph.constant(c.node.inputs[2]) : nullptr;
  if (scale != nullptr && (!has_zero_point || zero_point != nullptr))
    qdq_grids(c.node, *scale, zero_point != nullptr ? *zero_point : Tensor(), c.shape(0), storage_of(type));
  return type;
}

}  // namespace

std::vector<ValueInfo> quantize_linear_shape(const ShapeContext& c) {
  check<DtypeError>(c.input(0).type == DataType::float32, "{}: the input is {}, expected float32", c.where(),
                    to_string(c.input(0).type));
  return {{"", check_qdq(c), c.shape(0)}};
}

std::vector<ValueInfo> dequantize_linear_shape(const ShapeContext& c) {
  const DataType type = check_qdq(c);
  check<DtypeError>(c.input(0).type == type, "{}: the input is {} and the zero point {}: they must match", c.where(),
                    to_string(c.input(0).type), to_string(type));
  return {{"", DataType::float32, c.shape(0)}};
}

std::vector<ValueInfo> layer_norm_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  const int64_t axis = c.axis(n.integer("axis", -1), x.size());
  Shape stats(x.begin(), x.begin() + axis);
  stats.resize(x.size(), 1);
  return {c.input(0), like(c.input(0), stats), like(c.input(0), stats)};
}

std::vector<ValueInfo> conv_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape &x = c.shape(0), &w = c.shape(1);
  check<ShapeError>(x.size() >= 3 && w.size() == x.size(), "{}: input {} and weight {} must have the same rank >= 3",
                    c.where(), to_string(x), to_string(w));
  const int64_t group = n.integer("group", 1);
  check<ShapeError>(x[1] < 0 || x[1] == w[1] * group, "{}: weight {} with group {} expects {} input channels, got {}",
                    c.where(), to_string(w), group, w[1] * group, x[1]);
  if (c.given(2))
    check<ShapeError>(c.shape(2) == Shape{w[0]}, "{}: bias must be [{}], got {}", c.where(), w[0],
                      to_string(c.shape(2)));
  return {like(c.input(0), windowed(c, x, n.integers("kernel_shape", Shape(w.begin() + 2, w.end())), w[0]))};
}

std::vector<ValueInfo> pool_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  check<ShapeError>(x.size() >= 3, "{}: input {} must be (N, C, spatial...)", c.where(), to_string(x));
  return {like(c.input(0), windowed(c, x, n.integers("kernel_shape"), x[1]))};
}

std::vector<ValueInfo> global_average_pool_shape(const ShapeContext& c) {
  Shape out = c.shape(0);
  check<ShapeError>(out.size() >= 3, "{}: input {} must be (N, C, spatial...)", c.where(), to_string(out));
  std::fill(out.begin() + 2, out.end(), 1);
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> gemm_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape &a = c.shape(0), &b = c.shape(1);
  check<ShapeError>(a.size() == 2 && b.size() == 2, "{}: A {} and B {} must be 2-D", c.where(), to_string(a),
                    to_string(b));
  const bool ta = n.integer("transA", 0) != 0, tb = n.integer("transB", 0) != 0;
  const int64_t m = ta ? a[1] : a[0], k = ta ? a[0] : a[1], kb = tb ? b[1] : b[0], cols = tb ? b[0] : b[1];
  check<ShapeError>(k < 0 || kb < 0 || k == kb, "{}: A {} and B {} (transA {}, transB {}) do not multiply",
                    c.where(), to_string(a), to_string(b), ta, tb);
  if (c.given(2)) broadcast(c, c.shape(2), {m, cols});
  return {like(c.input(0), {m, cols})};
}

std::vector<ValueInfo> matmul_shape(const ShapeContext& c) {
  Shape a = c.shape(0), b = c.shape(1);
  check<ShapeError>(!a.empty() && !b.empty(), "{}: MatMul of scalars", c.where());
  const bool va = a.size() == 1, vb = b.size() == 1;
  if (va) a.insert(a.begin(), 1);
  if (vb) b.push_back(1);
  const int64_t k = a.back(), kb = b[b.size() - 2];
  check<ShapeError>(k < 0 || kb < 0 || k == kb, "{}: {} and {} do not multiply", c.where(),
                    to_string(c.shape(0)), to_string(c.shape(1)));
  Shape out = broadcast(c, Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2));
  if (!va) out.push_back(a[a.size() - 2]);
  if (!vb) out.push_back(b.back());
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> flatten_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  const int64_t axis = n.integer("axis", 1);
  check<ShapeError>(axis >= -static_cast<int64_t>(x.size()) && axis <= static_cast<int64_t>(x.size()),
                    "{}: axis {} for rank {}", c.where(), axis, x.size());
  const auto split = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(x.size()) : axis);
  auto product = [](auto b, auto e) {
    int64_t p = 1;
    for (auto it = b; it != e; ++it) p = (*it < 0 || p < 0) ? -1 : p * *it;
    return p;
  };
  return {like(c.input(0), {product(x.begin(), x.begin() + split), product(x.begin() + split, x.end())})};
}

std::vector<ValueInfo> reshape_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  Shape out = c.ints_or_unknown(1);
  if (std::count(out.begin(), out.end(), ShapeContext::kRunTime) > 0) {
    for (size_t k = 0; k < out.size(); ++k)
      if (out[k] == ShapeContext::kRunTime || out[k] == -1) out[k] = -1;
      else if (out[k] == 0 && n.integer("allowzero", 0) == 0 && k < x.size()) out[k] = x[k];
    return {like(c.input(0), out)};
  }
  int64_t known = 1, unknown = -1;
  bool dynamic = false;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k] == 0 && n.integer("allowzero", 0) == 0) {
      check<ShapeError>(k < x.size(), "{}: shape {} copies dimension {} of a rank-{} input", c.where(),
                        to_string(out), k, x.size());
      out[k] = x[k];
    }
    if (out[k] == -1) {
      check<ShapeError>(unknown < 0, "{}: shape {} has two -1", c.where(), to_string(c.constant_ints(1)));
      unknown = static_cast<int64_t>(k);
    } else if (x.size() > k && x[k] < 0 && out[k] == x[k]) {
      dynamic = true;
    } else {
      check<ShapeError>(out[k] >= 0 && !__builtin_mul_overflow(known, out[k], &known), "{}: cannot reshape to {}",
                        c.where(), to_string(out));
    }
  }
  int64_t total = 1;
  for (int64_t d : x)
    if (d < 0 || total < 0) total = -1;
    else check<ShapeError>(!__builtin_mul_overflow(total, d, &total), "{}: input {} is too large", c.where(), to_string(x));
  if (unknown >= 0) out[unknown] = total < 0 || dynamic ? -1 : (known == 0 ? 0 : total / known);
  if (total >= 0 && !dynamic && unknown < 0)
    check<ShapeError>(known == total, "{}: cannot reshape {} to {}", c.where(), to_string(x), to_string(out));
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> transpose_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  Shape perm = n.integers("perm");
  if (perm.empty()) {
    perm.resize(x.size());
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  Shape sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  Shape identity(x.size());
  std::iota(identity.begin(), identity.end(), 0);
  check<ShapeError>(sorted == identity, "{}: perm {} is not a permutation of {} axes", c.where(), to_string(perm),
                    x.size());
  Shape out(x.size());
  for (size_t k = 0; k < x.size(); ++k) out[k] = x[perm[k]];
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> concat_shape(const ShapeContext& c) {
  const Node& n = c.node;
  Shape out = c.shape(0);
  const int64_t axis = c.axis(n.integer("axis", 0), out.size());
  for (size_t i = 1; i < c.in.size(); ++i) {
    const Shape& s = c.shape(i);
    check<ShapeError>(s.size() == out.size(), "{}: input {} has rank {}, input 0 rank {}", c.where(), i, s.size(),
                      out.size());
    for (size_t k = 0; k < s.size(); ++k)
      if (static_cast<int64_t>(k) != axis)
        check<ShapeError>(s[k] == out[k] || s[k] < 0 || out[k] < 0, "{}: {} and {} differ off axis {}", c.where(),
                          to_string(c.shape(0)), to_string(s), axis);
    out[axis] = out[axis] < 0 || s[axis] < 0 ? -1 : out[axis] + s[axis];
  }
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> reduce_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  Shape axes = c.given(1) ? c.constant_ints(1) : n.integers("axes");
  if (axes.empty() && n.integer("noop_with_empty_axes", 0) != 0) return {c.input(0)};
  std::vector<bool> reduced(x.size(), axes.empty());
  for (int64_t a : axes) reduced[c.axis(a, x.size())] = true;
  const bool keep = n.integer("keepdims", 1) != 0;
  Shape out;
  for (size_t k = 0; k < x.size(); ++k)
    if (!reduced[k]) out.push_back(x[k]);
    else if (keep) out.push_back(1);
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> pad_shape(const ShapeContext& c) {
  const Shape& x = c.shape(0);
  const Tensor* pads = c.graph.constant(c.node.inputs[1]);
  if (pads == nullptr) return {like(c.input(0), Shape(x.size(), -1))};  // pads computed at run time
  const std::vector<int64_t> p = c.constant_ints(1);
  std::vector<int64_t> axes(x.size());
  std::iota(axes.begin(), axes.end(), 0);
  if (c.given(3)) axes = c.constant_ints(3);
  check<ShapeError>(p.size() == 2 * axes.size(), "{}: {} pads for {} axes", c.where(), p.size(), axes.size());
  Shape out = x;
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t a = c.axis(axes[k], x.size());
    if (out[a] < 0) continue;
    out[a] += p[k] + p[k + axes.size()];
    check<ShapeError>(out[a] >= 0, "{}: pads {} and {} remove more than the {} elements of axis {}", c.where(), p[k],
                      p[k + axes.size()], x[a], a);
  }
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> resize_shape(const ShapeContext& c) {
  const Shape& x = c.shape(0);
  auto constant = [&](size_t i) { return c.given(i) ? c.graph.constant(c.node.inputs[i]) : nullptr; };
  const bool has_sizes = c.given(3), has_scales = c.given(2) && (constant(2) == nullptr || constant(2)->numel() > 0);
  check<ShapeError>(has_sizes != has_scales, "{}: give one of scales and sizes", c.where());
  check<ValueError>(!c.node.has("axes"), "{}: the attribute 'axes' is not supported", c.where());
  Shape out(x.size(), -1);
  if (has_sizes) {
    if (constant(3) == nullptr) return {like(c.input(0), out)};
    out = c.constant_ints(3);
  } else {
    const Tensor* scales = constant(2);
    if (scales == nullptr) return {like(c.input(0), out)};
    check<ShapeError>(scales->dtype() == autograd::Dtype::f32 && scales->numel() == static_cast<int64_t>(x.size()),
                      "{}: scales must be {} floats", c.where(), x.size());
    for (size_t k = 0; k < x.size(); ++k)
      out[k] = x[k] < 0 ? -1 : static_cast<int64_t>(std::floor(x[k] * double(scales->data<float>()[k])));
  }
  check<ShapeError>(out.size() == x.size(), "{}: sizes {} for an input of rank {}", c.where(), to_string(out),
                    x.size());
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> gather_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape &data = c.shape(0), &index = c.shape(1);
  const int64_t axis = c.axis(n.integer("axis", 0), data.size());
  Shape out(data.begin(), data.begin() + axis);
  out.insert(out.end(), index.begin(), index.end());
  out.insert(out.end(), data.begin() + axis + 1, data.end());
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> slice_shape(const ShapeContext& c) {
  Shape out = c.shape(0);
  auto is_constant = [&](size_t i) { return !c.given(i) || c.graph.constant(c.node.inputs[i]) != nullptr; };
  if (!is_constant(1) || !is_constant(2) || !is_constant(3) || !is_constant(4)) {  // bounds known at run time
    if (c.given(3) && is_constant(3))
      for (int64_t a : c.constant_ints(3)) out[c.axis(a, out.size())] = -1;
    else
      std::fill(out.begin(), out.end(), -1);
    return {like(c.input(0), out)};
  }
  const Shape starts = c.constant_ints(1), ends = c.constant_ints(2);
  Shape axes = c.given(3) ? c.constant_ints(3) : Shape{};
  Shape steps = c.given(4) ? c.constant_ints(4) : Shape(starts.size(), 1);
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  check<ShapeError>(ends.size() == starts.size() && axes.size() == starts.size() && steps.size() == starts.size(),
                    "{}: starts, ends, axes and steps differ in length", c.where());
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t a = c.axis(axes[k], out.size()), dim = out[a], step = steps[k];
    check<ShapeError>(step != 0, "{}: step 0", c.where());
    if (dim < 0) continue;  // stays unknown
    auto clampi = [&](int64_t v, int64_t lo, int64_t hi) { return std::clamp(v < 0 ? v + dim : v, lo, hi); };
    const int64_t b = step > 0 ? clampi(starts[k], 0, dim) : clampi(starts[k], -1, dim - 1);
    const int64_t e = step > 0 ? clampi(ends[k], 0, dim) : clampi(ends[k], -1, dim - 1);
    out[a] = std::max<int64_t>(0, step > 0 ? (e - b + step - 1) / step : (b - e - step - 1) / -step);
  }
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> squeeze_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  const Shape axes = c.given(1) ? c.constant_ints(1) : n.integers("axes");
  std::vector<bool> drop(x.size(), false);
  for (int64_t a : axes) {
    const int64_t k = c.axis(a, x.size());
    check<ShapeError>(x[k] == 1 || x[k] < 0, "{}: axis {} of {} is not 1", c.where(), a, to_string(x));
    drop[k] = true;
  }
  Shape out;
  for (size_t k = 0; k < x.size(); ++k)
    if (axes.empty() ? x[k] != 1 : !drop[k]) out.push_back(x[k]);
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> unsqueeze_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Shape& x = c.shape(0);
  const Shape axes = c.given(1) ? c.constant_ints(1) : n.integers("axes");
  const size_t rank = x.size() + axes.size();
  std::vector<bool> inserted(rank, false);
  for (int64_t a : axes) inserted[c.axis(a, rank)] = true;
  Shape out;
  for (size_t k = 0, from = 0; k < rank; ++k) out.push_back(inserted[k] ? 1 : x[from++]);
  return {like(c.input(0), out)};
}

std::vector<ValueInfo> shape_shape(const ShapeContext& c) {
  return {{"", DataType::int64, {static_cast<int64_t>(c.shape(0).size())}}};
}

std::vector<ValueInfo> constant_shape(const ShapeContext& c) {
  const Node& n = c.node;
  const Tensor* t = c.graph.constant(n.outputs.at(0));
  check<ShapeError>(t != nullptr, "{}: needs a tensor attribute 'value'", c.where());
  return {{"", data_type_of(t->dtype()), t->shape()}};
}

std::vector<ValueInfo> constant_of_shape_shape(const ShapeContext& c) {
  const Node& n = c.node;
  auto it = n.attributes.find("value");
  const Tensor* v = it != n.attributes.end() ? std::get_if<Tensor>(&it->second) : nullptr;
  const DataType type = v != nullptr && v->dtype() == autograd::Dtype::i64 ? DataType::int64 : DataType::float32;
  Shape out = c.ints_or_unknown(0);
  for (int64_t& d : out) d = d == ShapeContext::kRunTime ? -1 : d;
  return {{"", type, out}};
}

std::vector<ValueInfo> expand_shape(const ShapeContext& c) {
  Shape target = c.ints_or_unknown(1);
  for (int64_t& d : target) d = d == ShapeContext::kRunTime ? -1 : d;
  return {like(c.input(0), broadcast(c, c.shape(0), target))};
}
}  // namespace detail

void Graph::infer_shapes() {
  validate();
  values.clear();
  for (const ValueInfo& v : inputs) values[v.name] = v;
  for (const auto& [name, t] : initializers)
    if (values.count(name) == 0)
      values[name] = {name, data_type_of(t.dtype()), t.shape()};
  for (size_t i : topological_order()) {
    const Node& n = nodes[i];
    detail::ShapeContext c{*this, n, {}};
    for (const auto& in : n.inputs) c.in.push_back(in.empty() ? nullptr : &values.at(in));
    std::vector<ValueInfo> out = op_info(n.op).infer(c);
    for (size_t k = 0; k < n.outputs.size() && k < out.size(); ++k)
      if (!n.outputs[k].empty()) {
        out[k].name = n.outputs[k];
        values[n.outputs[k]] = out[k];
      }
  }
  for (ValueInfo& v : outputs) v = values.at(v.name);
}

}  // namespace neurite::engine
