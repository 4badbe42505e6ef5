// ONNX ops written on the autograd ops: Conv, MaxPool and AveragePool (1-D or
// 2-D, any pads, ceil_mode), Pad, Resize and the Reduce* family. The reference
// executor runs them on constants and GraphModule trains through them, so both
// agree by construction. Padding the autograd ops cannot express (asymmetric
// pads, the windows ceil_mode adds) is made explicit with a differentiable
// concat; Pad's reflect and edge modes and Resize are index_select along each
// axis.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/reference_ops.h"
#include "engine/reference_values.h"
#include "engine/shape_rules.h"
#include "neurite/autograd/ops.h"
#include "neurite/error.h"

namespace neurite::engine::detail {

namespace {

using autograd::Variable;
using autograd::to_string;

struct Window2d {
  Variable x;                        // the input as (N, C, H, W)
  int64_t rank;                      // the input's rank, 3 or 4
  std::vector<int64_t> kernel;       // (kh, kw), empty for Conv (the weight has it)
  std::vector<int64_t> strides, dilations;
  std::vector<int64_t> pads;         // top, left, bottom, right
};

// The node's attributes as 2-D: 1-D inputs (N, C, L) run with H = 1.
Window2d window_2d(const Node& n, const Variable& x) {
  check<ShapeError>(x.dim() == 3 || x.dim() == 4, "{}: input {} must be 1-D or 2-D (N, C, ...)", where(n),
                    to_string(x.shape()));
  const size_t spatial = static_cast<size_t>(x.dim() - 2);
  const std::string auto_pad = n.has("auto_pad") ? std::get<std::string>(n.attributes.at("auto_pad")) : "NOTSET";
  check<ValueError>(auto_pad == "NOTSET" || auto_pad == "VALID", "{}: auto_pad {} is not supported", where(n),
                    auto_pad);
  Window2d w{.x = x, .rank = x.dim(), .kernel = n.integers("kernel_shape"),
             .strides = n.integers("strides", std::vector<int64_t>(spatial, 1)),
             .dilations = n.integers("dilations", std::vector<int64_t>(spatial, 1)),
             .pads = n.integers("pads", std::vector<int64_t>(2 * spatial, 0))};
  check<ShapeError>(w.strides.size() == spatial && w.dilations.size() == spatial && w.pads.size() == 2 * spatial &&
                        (w.kernel.empty() || w.kernel.size() == spatial),
                    "{}: kernel_shape, strides, dilations and pads do not fit an input of {}", where(n),
                    to_string(x.shape()));
  if (spatial == 1) {
    w.x = reshape(x, {x.shape()[0], x.shape()[1], 1, x.shape()[2]});
    if (!w.kernel.empty()) w.kernel.insert(w.kernel.begin(), 1);
    w.strides.insert(w.strides.begin(), 1);
    w.dilations.insert(w.dilations.begin(), 1);
    w.pads = {0, w.pads[0], 0, w.pads[1]};
  }
  return w;
}

Variable from_2d(const Variable& y, int64_t rank) {
  return rank == 4 ? y : reshape(y, {y.shape()[0], y.shape()[1], y.shape()[3]});
}

bool symmetric(const std::vector<int64_t>& p) { return p[0] == p[2] && p[1] == p[3]; }

// x with `before` and `after` elements of `value` around it along `axis` (non-negative counts).
Variable pad_axis(const Variable& x, int64_t axis, int64_t before, int64_t after, float value) {
  if (before == 0 && after == 0) return x;
  std::vector<Variable> parts;
  auto block = [&](int64_t extent) {
    Shape s = x.shape();
    s[axis] = extent;
    parts.emplace_back(Tensor::full(s, value));
  };
  if (before > 0) block(before);
  parts.push_back(x);
  if (after > 0) block(after);
  return concat(parts, axis);
}

// x (N, C, H, W) with pads (top, left, bottom, right) of `value` around it.
Variable pad_2d(const Variable& x, const std::vector<int64_t>& pads, float value) {
  return pad_axis(pad_axis(x, 2, pads[0], pads[2], value), 3, pads[1], pads[3], value);
}

}  // namespace

Variable conv(const Node& n, const Variable& x, const Variable& weight, const Variable& bias) {
  const Window2d w = window_2d(n, x);
  const Variable kernel = weight.dim() == 3 ? reshape(weight, {weight.shape()[0], weight.shape()[1], 1,
                                                               weight.shape()[2]})
                                            : weight;
  const bool sym = symmetric(w.pads);
  const Variable y = conv2d(sym ? w.x : pad_2d(w.x, w.pads, 0.0f), kernel, bias,
                            {.stride_h = w.strides[0], .stride_w = w.strides[1], .pad_h = sym ? w.pads[0] : 0,
                             .pad_w = sym ? w.pads[1] : 0, .dilation_h = w.dilations[0],
                             .dilation_w = w.dilations[1], .groups = n.integer("group", 1)});
  return from_2d(y, w.rank);
}

Variable pool(const Node& n, const Variable& x) {
  const bool is_max = n.op == OpKind::max_pool;
  const Window2d w = window_2d(n, x);
  check<ValueError>(w.kernel.size() == 2 && w.dilations == std::vector<int64_t>{1, 1},
                    "{}: pooling with dilations {} is not supported", where(n), to_string(w.dilations));
  const bool ceil_mode = n.integer("ceil_mode", 0) != 0, include_pad = n.integer("count_include_pad", 0) != 0;
  const int64_t h = w.x.shape()[2], wd = w.x.shape()[3];
  const int64_t oh = pooled_extent(h, w.kernel[0], w.strides[0], w.pads[0], w.pads[2], 1, ceil_mode);
  const int64_t ow = pooled_extent(wd, w.kernel[1], w.strides[1], w.pads[1], w.pads[3], 1, ceil_mode);
  check<ShapeError>(oh > 0 && ow > 0, "{}: a {}x{} window does not fit an input of {} with pads {}", where(n),
                    w.kernel[0], w.kernel[1], to_string(x.shape()), to_string(w.pads));
  // The windows ceil_mode adds reach past the end padding: padding no one counts.
  const int64_t extra_h = std::max<int64_t>(0, (oh - 1) * w.strides[0] + w.kernel[0] - (h + w.pads[0] + w.pads[2]));
  const int64_t extra_w = std::max<int64_t>(0, (ow - 1) * w.strides[1] + w.kernel[1] - (wd + w.pads[1] + w.pads[3]));
  autograd::Pool2dOptions o{.kernel_h = w.kernel[0], .kernel_w = w.kernel[1], .stride_h = w.strides[0],
                            .stride_w = w.strides[1], .pad_h = w.pads[0], .pad_w = w.pads[1],
                            .count_include_pad = include_pad};
  if (symmetric(w.pads) && extra_h == 0 && extra_w == 0)
    return from_2d(is_max ? max_pool2d(w.x, o) : avg_pool2d(w.x, o), w.rank);
  const std::vector<int64_t> all = {w.pads[0], w.pads[1], w.pads[2] + extra_h, w.pads[3] + extra_w};
  o.pad_h = o.pad_w = 0;
  o.count_include_pad = true;
  if (is_max) return from_2d(max_pool2d(pad_2d(w.x, all, -INFINITY), o), w.rank);
  // Average: the window sums over the zero-padded input, divided by how many
  // of its cells count (the input's, and the pads' when count_include_pad).
  Variable counted = pad_2d(Variable(Tensor::full({1, 1, h, wd}, 1.0f)),
                            {w.pads[0], w.pads[1], w.pads[2], w.pads[3]}, include_pad ? 1.0f : 0.0f);
  counted = pad_2d(counted, {0, 0, extra_h, extra_w}, 0.0f);
  const Variable sums = avg_pool2d(pad_2d(w.x, all, 0.0f), o), fractions = avg_pool2d(counted, o);
  return from_2d(div(sums, fractions), w.rank);
}

namespace {

std::string attribute_text(const Node& n, const std::string& name, const std::string& fallback) {
  return n.has(name) ? std::get<std::string>(n.attributes.at(name)) : fallback;
}

// Gathers along `axis` with int64 indices (a new tensor each call).
Variable take(const Variable& x, int64_t axis, const std::vector<int64_t>& index) {
  return index_select(x, axis, int_tensor(index));
}

}  // namespace

Variable pad(const Node& n, const Variable& x, const std::vector<int64_t>& pads, float value,
             const std::vector<int64_t>& axes_given) {
  const std::string mode = attribute_text(n, "mode", "constant");
  check<ValueError>(mode == "constant" || mode == "reflect" || mode == "edge",
                    "{}: mode '{}' is not supported (constant, reflect, edge)", where(n), mode);
  std::vector<int64_t> axes = axes_given;
  if (axes.empty()) {
    axes.resize(static_cast<size_t>(x.dim()));
    std::iota(axes.begin(), axes.end(), 0);
  }
  check<ShapeError>(pads.size() == 2 * axes.size(), "{}: {} pads for {} axes", where(n), pads.size(), axes.size());
  Variable y = x;
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t a = axis_of(n, axes[k], x.dim());
    int64_t before = pads[k], after = pads[k + axes.size()];
    // Negative pads crop.
    if (before < 0 || after < 0) {
      const int64_t dim = y.shape()[a], b = std::max<int64_t>(0, -before), e = dim - std::max<int64_t>(0, -after);
      check<ShapeError>(b <= e, "{}: pads {} and {} remove more than the {} elements of axis {}", where(n), before,
                        after, dim, a);
      y = slice(y, a, b, e);
      before = std::max<int64_t>(0, before);
      after = std::max<int64_t>(0, after);
    }
    if (before == 0 && after == 0) continue;
    const int64_t dim = y.shape()[a];
    if (mode == "constant") {
      y = pad_axis(y, a, before, after, value);
      continue;
    }
    check<ShapeError>(dim > 0 && (mode == "edge" || (before < dim && after < dim)),
                      "{}: {} padding of {} and {} does not fit axis {} of extent {}", where(n), mode, before, after,
                      a, dim);
    std::vector<int64_t> index;
    for (int64_t i = -before; i < dim + after; ++i) {
      if (mode == "edge") index.push_back(std::clamp<int64_t>(i, 0, dim - 1));
      else index.push_back(i < 0 ? -i : i >= dim ? 2 * (dim - 1) - i : i);  // reflect: the edge is not repeated
    }
    y = take(y, a, index);
  }
  return y;
}

Variable resize(const Node& n, const Variable& x, const std::vector<float>& scales_given, const Shape& sizes) {
  const std::string mode = attribute_text(n, "mode", "nearest");
  const std::string transform = attribute_text(n, "coordinate_transformation_mode", "half_pixel");
  const std::string nearest = attribute_text(n, "nearest_mode", "round_prefer_floor");
  check<ValueError>(mode == "nearest" || mode == "linear", "{}: mode '{}' is not supported (nearest, linear)",
                    where(n), mode);
  check<ValueError>(transform == "half_pixel" || transform == "pytorch_half_pixel" || transform == "align_corners" ||
                        transform == "asymmetric" || transform == "tf_half_pixel_for_nn",
                    "{}: coordinate_transformation_mode '{}' is not supported", where(n), transform);
  check<ValueError>(nearest == "round_prefer_floor" || nearest == "round_prefer_ceil" || nearest == "floor" ||
                        nearest == "ceil",
                    "{}: nearest_mode '{}' is not supported", where(n), nearest);
  const int64_t rank = x.dim();
  check<ShapeError>(static_cast<int64_t>(sizes.empty() ? scales_given.size() : sizes.size()) == rank,
                    "{}: {} scales or sizes for an input of rank {}", where(n),
                    sizes.empty() ? scales_given.size() : sizes.size(), rank);
  Variable y = x;
  for (int64_t a = 0; a < rank; ++a) {
    const int64_t in = x.shape()[a];
    const int64_t out = sizes.empty() ? static_cast<int64_t>(std::floor(in * double(scales_given[a]))) : sizes[a];
    const double scale = sizes.empty() ? scales_given[a] : double(out) / double(in);
    check<ShapeError>(out > 0 && in > 0, "{}: axis {} resizes {} to {}", where(n), a, in, out);
    if (out == in && scale == 1.0) continue;
    // The input coordinate each output index samples.
    auto source = [&](int64_t o) {
      if (transform == "asymmetric") return o / scale;
      // ONNX scales by the unrounded output length when scales are given.
      const double length = sizes.empty() ? in * scale : double(out);
      if (transform == "align_corners") return length <= 1 ? 0.0 : double(o) * double(in - 1) / (length - 1);
      if (transform == "tf_half_pixel_for_nn") return (o + 0.5) / scale;
      if (transform == "pytorch_half_pixel" && out == 1) return 0.0;
      return (o + 0.5) / scale - 0.5;
    };
    if (mode == "nearest") {
      std::vector<int64_t> index;
      for (int64_t o = 0; o < out; ++o) {
        const double c = source(o), f = std::floor(c);
        const double r = nearest == "floor" ? f
                         : nearest == "ceil" ? std::ceil(c)
                         : c - f == 0.5      ? (nearest == "round_prefer_floor" ? f : f + 1)
                                             : std::round(c);
        index.push_back(std::clamp<int64_t>(static_cast<int64_t>(r), 0, in - 1));
      }
      y = take(y, a, index);
      continue;
    }
    // Linear: the two neighbours, weighted by the distance; coordinates outside clamp to the edge.
    std::vector<int64_t> lo, hi;
    Shape weight_shape(static_cast<size_t>(rank), 1);
    weight_shape[a] = out;
    Tensor w = Tensor::zeros(weight_shape);
    for (int64_t o = 0; o < out; ++o) {
      const double c = std::clamp(source(o), 0.0, double(in - 1)), f = std::floor(c);
      lo.push_back(static_cast<int64_t>(f));
      hi.push_back(std::min<int64_t>(static_cast<int64_t>(f) + 1, in - 1));
      w.data<float>()[o] = static_cast<float>(c - f);
    }
    const Variable near = take(y, a, lo), far = take(y, a, hi);
    y = add(near, mul(sub(far, near), Variable(w)));
  }
  return y;
}

std::vector<int64_t> reduced_axes(const Node& n, std::vector<int64_t> axes, int64_t rank) {
  if (axes.empty()) {
    axes.resize(static_cast<size_t>(rank));
    std::iota(axes.begin(), axes.end(), 0);
  }
  for (int64_t& a : axes) a = axis_of(n, a, rank);
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return axes;
}

Variable reduce(const Node& n, const Variable& x, const std::vector<int64_t>& axes_given) {
  if (axes_given.empty() && n.integer("noop_with_empty_axes", 0) != 0) return x;
  const std::vector<int64_t> axes = reduced_axes(n, axes_given, x.dim());
  const bool keep = n.integer("keepdims", 1) != 0;
  Shape out_shape;  // without keepdims
  for (int64_t k = 0; k < x.dim(); ++k)
    if (!std::binary_search(axes.begin(), axes.end(), k)) out_shape.push_back(x.shape()[k]);
  auto finish = [&](const Variable& kept) { return keep ? kept : reshape(kept, out_shape); };
  switch (n.op) {
    case OpKind::reduce_sum: return sum(x, axes, keep);
    case OpKind::reduce_mean: return mean(x, axes, keep);
    case OpKind::reduce_sum_square: return sum(mul(x, x), axes, keep);
    case OpKind::reduce_l1: return sum(abs(x), axes, keep);
    case OpKind::reduce_l2: return sqrt(sum(mul(x, x), axes, keep));
    case OpKind::reduce_log_sum: return log(sum(x, axes, keep));
    case OpKind::reduce_log_sum_exp: {
      // log sum exp(x - m) + m with m the (constant) maximum: stable, and the gradient is the softmax either way.
      Variable m = x;
      for (int64_t a : axes) m = max(m, a, true);
      const Variable shift(m.data());
      return finish(add(log(sum(exp(sub(x, shift)), axes, true)), shift));
    }
    case OpKind::reduce_max:
    case OpKind::reduce_min: {
      const bool is_max = n.op == OpKind::reduce_max;
      Variable y = is_max ? x : neg(x);
      for (int64_t a : axes) y = max(y, a, true);
      return finish(is_max ? y : neg(y));
    }
    case OpKind::reduce_prod: {
      // Products of slices, axis by axis: exact where x has zeros, and differentiable as multiplications.
      Variable y = x;
      for (int64_t a : axes) {
        if (y.shape()[a] == 0) {  // the empty product
          Shape s = y.shape();
          s[a] = 1;
          y = Variable(Tensor::full(s, 1.0f));
          continue;
        }
        Variable p = slice(y, a, 0, 1);
        for (int64_t i = 1; i < y.shape()[a]; ++i) p = mul(p, slice(y, a, i, i + 1));
        y = p;
      }
      return finish(y);
    }
    default: break;
  }
  throw ValueError(fmt::format("{}: not a reduction", where(n)));
}

}  // namespace neurite::engine::detail
