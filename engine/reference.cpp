// The reference executor: each node on the autograd ops where they fit
// (float32 compute), and plain loops over doubles for the rest (shape
// arithmetic on int64, comparisons, Where, Erf). Booleans are int64 0/1.
#include "neurite/engine/reference.h"
#include "engine/qdq.h"
#include "engine/reference_ops.h"
#include "engine/reference_values.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"

namespace neurite::engine {

namespace {

using namespace detail;  // the executor's value helpers (engine/reference_values.h)
using autograd::Variable;
using autograd::to_string;

Variable var(const Tensor& t) { return Variable(t); }

Tensor arithmetic(const Node& n, const Tensor& a, const Tensor& b) {
  if (a.dtype() == Dtype::f32 && b.dtype() == Dtype::f32) {
    switch (n.op) {
      case OpKind::add: return add(var(a), var(b)).data();
      case OpKind::sub: return sub(var(a), var(b)).data();
      case OpKind::mul: return mul(var(a), var(b)).data();
      case OpKind::div: return div(var(a), var(b)).data();
      case OpKind::pow:
        if (b.numel() == 1) return pow(var(a), b.data<float>()[0]).data();
        return map_broadcast(n, {a, b}, Dtype::f32, [](auto& v) { return std::pow(v[0], v[1]); });
      default: break;
    }
  }
  const Dtype out = a.dtype();  // ONNX requires equal types, but for Pow
  return map_broadcast(n, {a, b}, out, [op = n.op, out](auto& v) {
    switch (op) {
      case OpKind::add: return v[0] + v[1];
      case OpKind::sub: return v[0] - v[1];
      case OpKind::mul: return v[0] * v[1];
      case OpKind::div: return out == Dtype::i64 ? std::trunc(v[0] / v[1]) : v[0] / v[1];
      default: return std::pow(v[0], v[1]);
    }
  });
}

// numpy matmul: 1-D operands gain a dimension that is dropped again; batch dimensions broadcast.
Tensor matmul_numpy(const Node& n, Tensor a, Tensor b) {
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec) a = a.reshape({1, a.size(0)});
  if (b_vec) b = b.reshape({b.size(0), 1});
  Tensor y;
  if (b.dim() == 2 || (a.shape().size() == b.shape().size() &&
                          std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()))) {
    y = matmul(var(a), var(b)).data();
  } else {
    const Shape batch = broadcast_all(n, {Shape(a.shape().begin(), a.shape().end() - 2),
                                          Shape(b.shape().begin(), b.shape().end() - 2)});
    auto grow = [&](const Tensor& t) {
      Shape s = batch;
      s.push_back(t.size(-2));
      s.push_back(t.size(-1));
      return t.shape() == s ? t : expand(var(t), s).data();
    };
    y = matmul(var(grow(a)), var(grow(b))).data();
  }
  Shape s = y.shape();
  if (b_vec) s.erase(s.end() - 1);
  if (a_vec) s.erase(s.end() - (b_vec ? 1 : 2));
  return y.reshape(s);
}

Tensor gather(const Node& n, const Tensor& data, const Tensor& indices) {
  const int64_t axis = axis_of(n, n.integer("axis", 0), data.dim()), extent = data.size(axis);
  std::vector<int64_t> idx = ints_of(indices);
  for (int64_t& i : idx) {
    check<ValueError>(i >= -extent && i < extent, "{}: index {} is out of range for axis {} of {}", where(n), i, axis,
                      to_string(data.shape()));
    if (i < 0) i += extent;
  }
  Tensor picked = data.index_select(axis, int_tensor(idx));  // axis size becomes numel(indices)
  Shape s(data.shape().begin(), data.shape().begin() + axis);
  s.insert(s.end(), indices.shape().begin(), indices.shape().end());
  s.insert(s.end(), data.shape().begin() + axis + 1, data.shape().end());
  return picked.reshape(s);
}

Tensor slice(const Node& n, const Tensor& x, const std::vector<Tensor>& in) {
  const auto starts = ints_of(in[1]), ends = ints_of(in[2]);
  std::vector<int64_t> axes = in.size() > 3 && in[3].defined() ? ints_of(in[3]) : std::vector<int64_t>{};
  const std::vector<int64_t> steps =
      in.size() > 4 && in[4].defined() ? ints_of(in[4]) : std::vector<int64_t>(starts.size(), 1);
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  check<ShapeError>(ends.size() == starts.size() && axes.size() == starts.size() && steps.size() == starts.size(),
                    "{}: starts, ends, axes and steps differ in length", where(n));
  Tensor y = x;
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t a = axis_of(n, axes[k], x.dim()), dim = y.size(a), step = steps[k];
    check<ValueError>(step != 0, "{}: step 0", where(n));
    auto clampi = [&](int64_t v, int64_t lo, int64_t hi) { return std::clamp(v < 0 ? v + dim : v, lo, hi); };
    const int64_t b = step > 0 ? clampi(starts[k], 0, dim) : clampi(starts[k], -1, dim - 1);
    const int64_t e = step > 0 ? clampi(ends[k], 0, dim) : clampi(ends[k], -1, dim - 1);
    std::vector<int64_t> index;
    for (int64_t i = b; step > 0 ? i < e : i > e; i += step) index.push_back(i);
    y = y.index_select(a, int_tensor(index));
  }
  return y;
}

std::vector<int64_t> axes_of(const Node& n, const std::vector<Tensor>& in, size_t input) {
  return in.size() > input && in[input].defined() ? ints_of(in[input]) : n.integers("axes");
}

Tensor squeeze(const Node& n, const Tensor& x, const std::vector<int64_t>& axes) {
  std::vector<bool> drop(x.dim(), false);
  for (int64_t a : axes) drop[axis_of(n, a, x.dim())] = true;
  Shape s;
  for (int64_t k = 0; k < x.dim(); ++k) {
    if (axes.empty() ? x.size(k) == 1 : drop[k]) {
      check<ShapeError>(x.size(k) == 1, "{}: axis {} of {} is not 1", where(n), k, to_string(x.shape()));
      continue;
    }
    s.push_back(x.size(k));
  }
  return x.reshape(s);
}

Tensor unsqueeze(const Node& n, const Tensor& x, const std::vector<int64_t>& axes) {
  const int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(rank, false);
  for (int64_t a : axes) inserted[axis_of(n, a, rank)] = true;
  Shape s;
  for (int64_t k = 0, from = 0; k < rank; ++k) s.push_back(inserted[k] ? 1 : x.size(from++));
  return x.reshape(s);
}

Tensor reshape(const Node& n, const Tensor& x, std::vector<int64_t> target) {
  const bool allow_zero = n.integer("allowzero", 0) != 0;
  for (size_t k = 0; k < target.size(); ++k)
    if (target[k] == 0 && !allow_zero) {
      check<ShapeError>(static_cast<int64_t>(k) < x.dim(), "{}: shape {} copies a dimension {} lacks", where(n),
                        to_string(target), to_string(x.shape()));
      target[k] = x.size(static_cast<int64_t>(k));
    }
  try {
    return x.reshape(target);
  } catch (const ShapeError&) {
    throw ShapeError(fmt::format("{}: cannot reshape {} to {}", where(n), to_string(x.shape()), to_string(target)));
  }
}

Tensor cast(const Node& n, const Tensor& x) {
  const int64_t to = n.integer("to", 1);
  switch (to) {
    case 1: return as_float(x);  // FLOAT
    case 7: return x.dtype() == Dtype::i64 ? x : x.to(Dtype::i64);  // INT64 (truncates)
    case 9: return map_broadcast(n, {x}, Dtype::i64, [](auto& v) { return v[0] != 0 ? 1.0 : 0.0; });  // BOOL
    default: throw ValueError(fmt::format("{}: cast to ONNX type {} is not supported (float, int64, bool)", where(n), to));
  }
}

// A Reduce* node: floats on the autograd ops GraphModule trains with; int64
// (shape arithmetic) exactly, in a loop over int64.
Tensor reduce_values(const Node& n, const Tensor& x, const std::vector<Tensor>& in) {
  const std::vector<int64_t> axes = axes_of(n, in, 1);
  if (x.dtype() == Dtype::f32) return detail::reduce(n, var(x), axes).data();
  check<ValueError>(x.dtype() == Dtype::i64 && (n.op == OpKind::reduce_sum || n.op == OpKind::reduce_prod ||
                                                n.op == OpKind::reduce_max || n.op == OpKind::reduce_min),
                    "{}: {} of {} values is not supported", where(n), op_info(n.op).onnx, autograd::to_string(x.dtype()));
  if (axes.empty() && n.integer("noop_with_empty_axes", 0) != 0) return x;
  const std::vector<int64_t> reduced = reduced_axes(n, axes, x.dim());
  Shape kept = x.shape(), out;
  for (int64_t a : reduced) kept[a] = 1;
  for (int64_t k = 0; k < x.dim(); ++k)
    if (n.integer("keepdims", 1) != 0 || !std::binary_search(reduced.begin(), reduced.end(), k)) out.push_back(kept[k]);
  const int64_t start = n.op == OpKind::reduce_sum ? 0 : n.op == OpKind::reduce_prod ? 1
                        : n.op == OpKind::reduce_max ? std::numeric_limits<int64_t>::min()
                                                     : std::numeric_limits<int64_t>::max();
  std::vector<int64_t> acc(static_cast<size_t>(autograd::numel(kept)), start);
  const std::vector<int64_t> into = broadcast_index(kept, x.shape());  // each element's reduced slot
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t& r = acc[into[i]];
    const int64_t v = x.data<int64_t>()[i];
    r = n.op == OpKind::reduce_sum ? r + v : n.op == OpKind::reduce_prod ? r * v : n.op == OpKind::reduce_max ? std::max(r, v) : std::min(r, v);
  }
  return int_tensor(acc, out);
}

// ONNX's training mode of BatchNormalization: training_mode = 1 (opset 14+),
// or statistics outputs asked for (opsets 9-13).
bool batch_norm_trains(const Node& n) { return n.integer("training_mode", 0) != 0 || n.outputs.size() > 1; }

// Y normalised with the batch's mean and (biased) variance per channel; then
// the running statistics, input · momentum + batch · (1 - momentum), and
// (opsets 9-13) the batch's mean and variance, as ONNX specifies.
std::vector<Tensor> batch_norm_training(const Node& n, const std::vector<Tensor>& in, float eps) {
  const Tensor& x = in[0];
  check<ShapeError>(x.dim() >= 2, "{}: input {} has no channel axis", where(n), to_string(x.shape()));
  const int64_t batch = x.size(0), channels = x.size(1), inner = x.numel() / std::max<int64_t>(batch * channels, 1);
  const double momentum = n.real("momentum", 0.9), count = static_cast<double>(batch * inner);
  Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({channels}), variance = Tensor::empty({channels});
  Tensor running_mean = Tensor::empty({channels}), running_var = Tensor::empty({channels});
  const float* px = x.data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0, squares = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < inner; ++i) sum += px[(b * channels + c) * inner + i];
    const double mu = sum / count;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < inner; ++i) {
        const double d = px[(b * channels + c) * inner + i] - mu;
        squares += d * d;
      }
    const double v = squares / count, scale = element(in[1], c) / std::sqrt(v + eps), shift = element(in[2], c);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t at = (b * channels + c) * inner + i;
        y.data<float>()[at] = static_cast<float>((px[at] - mu) * scale + shift);
      }
    mean.data<float>()[c] = static_cast<float>(mu);
    variance.data<float>()[c] = static_cast<float>(v);
    running_mean.data<float>()[c] = static_cast<float>(element(in[3], c) * momentum + mu * (1 - momentum));
    running_var.data<float>()[c] = static_cast<float>(element(in[4], c) * momentum + v * (1 - momentum));
  }
  return {y, running_mean, running_var, mean, variance};
}

// Shape's output for a shape with -1 at sizes known only at run time.

}  // namespace

std::vector<Tensor> detail::run_node(const Node& n, const std::vector<Tensor>& in) {
  auto arg = [&](size_t i) { return i < in.size() ? in[i] : Tensor(); };
  auto one = [](Tensor t) { return std::vector<Tensor>{std::move(t)}; };
  if (is_reduction(n.op)) return one(reduce_values(n, in[0], in));
  switch (n.op) {
    case OpKind::add:
    case OpKind::sub:
    case OpKind::mul:
    case OpKind::div:
    case OpKind::pow: return one(arithmetic(n, in[0], in[1]));
    case OpKind::relu: return one(relu(var(in[0])).data());
    case OpKind::sigmoid: return one(sigmoid(var(in[0])).data());
    case OpKind::tanh: return one(tanh(var(in[0])).data());
    case OpKind::sqrt: return one(sqrt(var(in[0])).data());
    case OpKind::erf: return one(map_broadcast(n, {in[0]}, Dtype::f32, [](auto& v) { return std::erf(v[0]); }));
    case OpKind::exp: return one(map_broadcast(n, {in[0]}, Dtype::f32, [](auto& v) { return std::exp(v[0]); }));
    case OpKind::neg: return one(map_broadcast(n, {in[0]}, in[0].dtype(), [](auto& v) { return -v[0]; }));
    case OpKind::reciprocal: return one(map_broadcast(n, {in[0]}, Dtype::f32, [](auto& v) { return 1.0 / v[0]; }));
    case OpKind::abs: return one(map_broadcast(n, {in[0]}, in[0].dtype(), [](auto& v) { return std::abs(v[0]); }));
    case OpKind::leaky_relu: {
      const double alpha = n.real("alpha", 0.01);
      return one(map_broadcast(n, {in[0]}, Dtype::f32, [alpha](auto& v) { return v[0] >= 0 ? v[0] : alpha * v[0]; }));
    }
    case OpKind::hard_sigmoid: {
      const double alpha = n.real("alpha", 0.2), beta = n.real("beta", 0.5);
      return one(map_broadcast(n, {in[0]}, Dtype::f32,
                               [alpha, beta](auto& v) { return std::clamp(alpha * v[0] + beta, 0.0, 1.0); }));
    }
    case OpKind::hard_swish:
      return one(map_broadcast(n, {in[0]}, Dtype::f32,
                               [](auto& v) { return v[0] * std::clamp(v[0] / 6.0 + 0.5, 0.0, 1.0); }));
    case OpKind::max:
    case OpKind::min: {  // any number of inputs, broadcast together
      Tensor y = in[0];
      for (size_t k = 1; k < in.size(); ++k)
        y = map_broadcast(n, {y, in[k]}, in[0].dtype(), [larger = n.op == OpKind::max](auto& v) {
          return larger ? std::max(v[0], v[1]) : std::min(v[0], v[1]);
        });
      return one(y);
    }
    case OpKind::logical_not:
      return one(map_broadcast(n, {in[0]}, Dtype::i64, [](auto& v) { return v[0] != 0 ? 0.0 : 1.0; }));
    case OpKind::clip: {  // bounds: optional inputs 1 and 2 (scalars)
      const double lo = arg(1).defined() ? element(in[1], 0) : -std::numeric_limits<double>::infinity();
      const double hi = arg(2).defined() ? element(in[2], 0) : std::numeric_limits<double>::infinity();
      return one(map_broadcast(n, {in[0]}, in[0].dtype(), [lo, hi](auto& v) { return std::min(std::max(v[0], lo), hi); }));
    }
    case OpKind::range: {
      const double start = element(in[0], 0), limit = element(in[1], 0), delta = element(in[2], 0);
      check<ValueError>(delta != 0, "{}: delta is 0", where(n));
      const auto count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - start) / delta)));
      std::vector<double> values(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) values[static_cast<size_t>(i)] = start + static_cast<double>(i) * delta;
      return one(make({count}, in[0].dtype(), values));
    }
    case OpKind::gelu: {
      const std::string approximate = n.has("approximate") ? std::get<std::string>(n.attributes.at("approximate")) : "none";
      check<ValueError>(approximate == "none" || approximate == "tanh",
                        "{}: attribute 'approximate' is '{}', expected 'none' or 'tanh'", where(n), approximate);
      if (approximate == "tanh")
        return one(map_broadcast(n, {in[0]}, Dtype::f32, [](auto& v) {
          return 0.5 * v[0] * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v[0] + 0.044715 * v[0] * v[0] * v[0])));
        }));
      return one(map_broadcast(n, {in[0]}, Dtype::f32, [](auto& v) { return 0.5 * v[0] * (1.0 + std::erf(v[0] / std::sqrt(2.0))); }));
    }
    case OpKind::identity: return one(in[0]);
    case OpKind::quantize_linear: return one(quantize_linear(qdq_grids(n, in[1], arg(2), in[0].shape()), in[0]));
    case OpKind::dequantize_linear:
      return one(dequantize_linear(qdq_grids(n, in[1], arg(2), in[0].shape(), in[0].dtype()), in[0]));
    case OpKind::dropout:  // inference: keeps everything
      check<ValueError>(!arg(2).defined() || element(in[2], 0) == 0 || (arg(1).defined() && element(in[1], 0) == 0),
                        "{}: training-mode dropout (random masks) is not supported; inference keeps every value", where(n));
      return {in[0], Tensor::ones(in[0].shape(), Dtype::i64)};
    case OpKind::softmax: return one(softmax(var(in[0]), n.integer("axis", -1)).data());
    case OpKind::matmul: return one(matmul_numpy(n, in[0], in[1]));
    case OpKind::gemm: {
      Tensor a = n.integer("transA", 0) != 0 ? in[0].transpose(0, 1) : in[0];
      Tensor b = n.integer("transB", 0) != 0 ? in[1].transpose(0, 1) : in[1];
      Variable y = matmul(var(a), var(b));
      if (const double alpha = n.real("alpha", 1.0); alpha != 1.0) y = mul(y, static_cast<float>(alpha));
      if (arg(2).defined()) y = add(y, mul(var(in[2]), static_cast<float>(n.real("beta", 1.0))));
      return one(y.data());
    }
    case OpKind::conv: return one(conv(n, var(in[0]), var(in[1]), arg(2).defined() ? var(arg(2)) : Variable()).data());
    case OpKind::batch_norm: {
      Tensor mean = in[3], var_ = in[4];
      const auto eps = static_cast<float>(n.real("epsilon", 1e-5));
      if (!batch_norm_trains(n))
        return one(batch_norm(var(in[0]), var(in[1]), var(in[2]), mean, var_, {.training = false, .eps = eps}).data());
      return batch_norm_training(n, in, eps);
    }
    case OpKind::layer_norm: {  // outputs Y, and the Mean and InvStdDev it normalised with
      const Shape& x = in[0].shape();
      const int64_t axis = axis_of(n, n.integer("axis", -1), in[0].dim());
      const auto eps = static_cast<float>(n.real("epsilon", 1e-5));
      const Tensor y = layer_norm(var(in[0]), Shape(x.begin() + axis, x.end()), var(in[1]),
                                  arg(2).defined() ? var(in[2]) : Variable(), eps)
                           .data();
      if (n.outputs.size() == 1) return one(y);
      std::vector<int64_t> axes(static_cast<size_t>(in[0].dim() - axis));
      std::iota(axes.begin(), axes.end(), axis);
      const Variable mu = mean(var(in[0]), axes, true), centred = var(in[0]) - mu;
      const Variable inv_std = div(var(Tensor::scalar(1.0f)), sqrt(add(mean(centred * centred, axes, true), eps)));
      return {y, mu.data(), inv_std.data()};
    }
    case OpKind::max_pool:
    case OpKind::average_pool: return one(pool(n, var(in[0])).data());
    case OpKind::global_average_pool: {
      std::vector<int64_t> axes(static_cast<size_t>(in[0].dim() - 2));
      std::iota(axes.begin(), axes.end(), 2);
      return one(mean(var(in[0]), axes, true).data());
    }
    case OpKind::flatten: {  // (prod of dims before axis, prod of the rest)
      const int64_t rank = in[0].dim(), given = n.integer("axis", 1);  // in [-rank, rank]
      check<ShapeError>(given >= -rank && given <= rank, "{}: axis {} is out of range for rank {}", where(n), given, rank);
      const int64_t axis = given < 0 ? given + rank : given;
      int64_t outer = 1;
      for (int64_t k = 0; k < axis; ++k) outer *= in[0].size(k);
      return one(in[0].reshape({outer, outer > 0 ? in[0].numel() / outer : 0}));
    }
    case OpKind::reshape: return one(reshape(n, in[0], ints_of(in[1])));
    case OpKind::transpose: {
      Shape perm = n.integers("perm");
      if (perm.empty())
        for (int64_t k = in[0].dim() - 1; k >= 0; --k) perm.push_back(k);
      return one(in[0].permute(perm));
    }
    case OpKind::concat: {
      std::vector<Tensor> parts;
      for (const auto& t : in)
        if (t.numel() > 0 || in.size() == 1) parts.push_back(t);
      if (parts.empty()) parts.push_back(in[0]);
      return one(Tensor::concat(parts, n.integer("axis", 0)));
    }
    case OpKind::pad: {
      check<ValueError>(in[0].dtype() == Dtype::f32, "{}: Pad of {} values is not supported", where(n),
                        to_string(in[0].dtype()));
      const float value = arg(2).defined() && arg(2).numel() > 0 ? static_cast<float>(element(in[2], 0)) : 0.0f;
      return one(pad(n, var(in[0]), ints_of(in[1]), value, arg(3).defined() ? ints_of(in[3]) : std::vector<int64_t>{})
                     .data());
    }
    case OpKind::resize: {
      check<ValueError>(in[0].dtype() == Dtype::f32, "{}: Resize of {} values is not supported", where(n),
                        to_string(in[0].dtype()));
      std::vector<float> scales;
      if (arg(2).defined())
        for (int64_t k = 0; k < in[2].numel(); ++k) scales.push_back(static_cast<float>(element(in[2], k)));
      const Shape sizes = arg(3).defined() ? ints_of(in[3]) : Shape{};
      return one(resize(n, var(in[0]), scales, sizes).data());
    }
    case OpKind::gather: return one(gather(n, in[0], in[1]));
    case OpKind::slice: return one(slice(n, in[0], in));
    case OpKind::squeeze: return one(squeeze(n, in[0], axes_of(n, in, 1)));
    case OpKind::unsqueeze: return one(unsqueeze(n, in[0], axes_of(n, in, 1)));
    case OpKind::shape: return one(ints_shape(in[0].shape(), n));
    case OpKind::constant: {
      auto it = n.attributes.find("value");
      check<ValueError>(it != n.attributes.end() && std::holds_alternative<Tensor>(it->second),
                        "{}: only the tensor form 'value' is supported", where(n));
      return one(std::get<Tensor>(it->second));
    }
    case OpKind::constant_of_shape: {
      const Shape shape = ints_of(in[0]);
      auto it = n.attributes.find("value");
      const Tensor* v = it != n.attributes.end() ? std::get_if<Tensor>(&it->second) : nullptr;
      const Dtype type = v != nullptr ? v->dtype() : Dtype::f32;
      const double fill = v != nullptr && v->numel() > 0 ? element(*v, 0) : 0.0;
      return one(make(shape, type, std::vector<double>(static_cast<size_t>(autograd::numel(shape)), fill)));
    }
    case OpKind::expand: {
      const Shape out = broadcast_all(n, {in[0].shape(), ints_of(in[1])});
      if (in[0].dtype() == Dtype::f32) return one(expand(var(in[0]), out).data());
      return one(map_broadcast(n, {in[0], Tensor::zeros(out, Dtype::i64)}, Dtype::i64, [](auto& v) { return v[0]; }));
    }
    case OpKind::where: {
      const Dtype type = in[1].dtype();
      return one(map_broadcast(n, {in[0], in[1], in[2]}, type, [](auto& v) { return v[0] != 0 ? v[1] : v[2]; }));
    }
    case OpKind::logical_and:
    case OpKind::logical_or:
    case OpKind::logical_xor:
      return one(map_broadcast(n, {in[0], in[1]}, Dtype::i64, [op = n.op](auto& v) {
        const bool a = v[0] != 0, b = v[1] != 0;
        return double(op == OpKind::logical_and ? a && b : op == OpKind::logical_or ? a || b : a != b);
      }));
    case OpKind::equal:
      return one(map_broadcast(n, {in[0], in[1]}, Dtype::i64, [](auto& v) { return v[0] == v[1] ? 1.0 : 0.0; }));
    case OpKind::cast: return one(cast(n, in[0]));
    case OpKind::reduce_l1:  // the reductions returned above
    case OpKind::reduce_l2:
    case OpKind::reduce_log_sum:
    case OpKind::reduce_log_sum_exp:
    case OpKind::reduce_max:
    case OpKind::reduce_mean:
    case OpKind::reduce_min:
    case OpKind::reduce_prod:
    case OpKind::reduce_sum:
    case OpKind::reduce_sum_square: break;
  }
  throw ValueError(fmt::format("{}: the executor has no case for this op", where(n)));  // -Wswitch names a missing case
}

std::map<std::string, Tensor> run_reference(const Graph& graph, const std::map<std::string, Tensor>& inputs) {
  graph.validate();
  autograd::NoGradGuard no_grad;
  std::map<std::string, Tensor> values(graph.initializers.begin(), graph.initializers.end());
  for (const ValueInfo& v : graph.inputs) {
    auto it = inputs.find(v.name);
    check<ShapeError>(it != inputs.end(), "reference executor: graph input '{}' is not given", v.name);
    const Shape& s = it->second.shape();
    bool fits = s.size() == v.shape.size();
    for (size_t k = 0; fits && k < s.size(); ++k) fits = v.shape[k] < 0 || v.shape[k] == s[k];
    check<ShapeError>(fits, "reference executor: input '{}' is {}, the graph expects {}", v.name, to_string(s),
                      to_string(v.shape));
    check<DtypeError>(it->second.dtype() == storage_of(v.type), "reference executor: input '{}' is {}, the graph expects {}", v.name,
                      to_string(it->second.dtype()), to_string(v.type));
    values[v.name] = it->second;
  }
  for (size_t i : graph.topological_order()) {
    const Node& n = graph.nodes[i];
    std::vector<Tensor> in;
    for (const auto& name : n.inputs) in.push_back(name.empty() ? Tensor() : values.at(name));
    std::vector<Tensor> out = detail::run_node(n, in);
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      check<ValueError>(k < out.size(), "{}: output {} ('{}') is not computed", where(n), k, n.outputs[k]);
      values[n.outputs[k]] = out[k];
    }
  }
  std::map<std::string, Tensor> out;
  for (const ValueInfo& v : graph.outputs) out.emplace(v.name, values.at(v.name));
  return out;
}

}  // namespace neurite::engine
