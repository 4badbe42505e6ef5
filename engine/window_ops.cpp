// Conv, MaxPool and AveragePool as ONNX defines them (1-D or 2-D, any pads,
// ceil_mode) on the autograd ops: the reference executor runs them on
// constants and GraphModule trains through them, so both agree by
// construction. Padding the autograd ops cannot express (asymmetric pads, the
// windows ceil_mode adds) is made explicit with a differentiable concat.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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

// x (N, C, H, W) with pads (top, left, bottom, right) of `value` around it.
Variable pad_2d(const Variable& x, const std::vector<int64_t>& pads, float value) {
  if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return x;
  auto side = [&](const Variable& t, int64_t dim, int64_t before, int64_t after) {
    std::vector<Variable> parts;
    auto block = [&](int64_t extent) {
      Shape s = t.shape();
      s[dim] = extent;
      parts.emplace_back(Tensor::full(s, value));
    };
    if (before > 0) block(before);
    parts.push_back(t);
    if (after > 0) block(after);
    return parts.size() == 1 ? t : concat(parts, dim);
  };
  return side(side(x, 2, pads[0], pads[2]), 3, pads[1], pads[3]);
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

}  // namespace neurite::engine::detail
