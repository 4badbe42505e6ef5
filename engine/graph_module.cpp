// GraphModule (neurite/engine/graph_module.h): an imported graph as a
// trainable Module. Nodes whose inputs carry no gradient run exactly as the
// reference executor runs them; the others run on the autograd ops here.
#include "neurite/engine/graph_module.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "engine/qdq.h"
#include "engine/reference_ops.h"
#include "engine/reference_values.h"
#include "neurite/autograd/ops.h"
#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/layers.h"

namespace neurite::engine {

using autograd::Dtype;
using detail::where;

// A Module that only holds others: the dotted path of a name ("layer1" in
// "layer1.0.conv1.weight").
class GraphModule::Scope : public layers::Module {
 public:
  using Module::register_buffer;
  using Module::register_module;
  using Module::register_parameter;
};

struct GraphModule::Bound {
  // conv, gemm: the node holds the weight; matmul_add: MatMul by Wᵀ folded into
  // an initializer, then Add of the bias; transposed_matmul: MatMul by
  // Transpose(P.weight), then Add of the bias if there is one.
  enum class Kind { conv, gemm, matmul_add, transposed_matmul } kind;
  std::shared_ptr<layers::UnaryModule> layer;
  std::string prefix;       // the layer's path: its weight is prefix.weight
  std::string weight_name;  // the initializer (for matmul_add: the transposed weight)
  std::string bias_name;    // "" without
  size_t output_node;       // whose output the layer gives (the Add of a bias)
  size_t weight_reader;     // the node that reads the weight initializer (the Transpose of transposed_matmul)
};

namespace {

bool is_float_initializer(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  return it != g.initializers.end() && it->second.dtype() == Dtype::f32;
}

// Names the exporter made up for folded constants (PyTorch: "onnx::Mul_12").
bool made_up_name(const std::string& name) { return name.starts_with("onnx::") || name.empty(); }

bool all_finite(const Tensor& t) {
  const float* p = t.data<float>();
  return std::all_of(p, p + t.numel(), [](float v) { return std::isfinite(v); });
}

// Whether input `slot` of node n is a weight when it is a float initializer.
bool weight_slot(const Node& n, size_t slot) {
  switch (n.op) {
    case OpKind::conv: return slot == 1 || slot == 2;
    case OpKind::gemm: return slot <= 2;
    case OpKind::matmul: return slot <= 1;
    case OpKind::batch_norm: return slot == 1 || slot == 2;
    case OpKind::layer_norm: return slot == 1 || slot == 2;
    case OpKind::gather: return slot == 0;
    default: return false;
  }
}

// Whether a float initializer read outside a weight slot is a learned value:
// named as a parameter (PyTorch names them by module path; it names folded
// constants "onnx::Op_N"), all finite (a -inf attention mask is not), read by
// an op with a gradient (a Transpose of a Linear's weight, an Add of a bias,
// a positional embedding) and not a scalar.
bool learned_operand(const Node& n, size_t slot, const std::string& name, const Tensor& t);

std::string prefix_of(const std::string& weight_name) {
  constexpr std::string_view kWeight = ".weight";
  return weight_name.ends_with(kWeight) ? weight_name.substr(0, weight_name.size() - kWeight.size()) : "";
}

// The ops that pass gradients to their float inputs (with the conditions
// GraphModule::check_differentiable adds).
bool has_gradient(OpKind op) {
  if (is_reduction(op)) return true;
  switch (op) {
    case OpKind::add: case OpKind::sub: case OpKind::mul: case OpKind::div: case OpKind::pow:
    case OpKind::relu: case OpKind::sigmoid: case OpKind::tanh: case OpKind::sqrt: case OpKind::exp:
    case OpKind::erf: case OpKind::neg: case OpKind::reciprocal: case OpKind::clip: case OpKind::gelu:
    case OpKind::identity: case OpKind::cast: case OpKind::softmax: case OpKind::matmul: case OpKind::gemm:
    case OpKind::conv: case OpKind::batch_norm: case OpKind::layer_norm: case OpKind::max_pool:
    case OpKind::average_pool: case OpKind::global_average_pool: case OpKind::flatten: case OpKind::reshape:
    case OpKind::squeeze: case OpKind::unsqueeze: case OpKind::transpose: case OpKind::concat: case OpKind::gather:
    case OpKind::slice: case OpKind::expand: case OpKind::where: case OpKind::dropout:
    case OpKind::abs: case OpKind::leaky_relu: case OpKind::hard_sigmoid: case OpKind::hard_swish: case OpKind::max:
    case OpKind::min: case OpKind::pad: case OpKind::resize: case OpKind::quantize_linear:
    case OpKind::dequantize_linear:
      return true;
    default: return false;
  }
}

bool learned_operand(const Node& n, size_t slot, const std::string& name, const Tensor& t) {
  // The other float inputs of Pad, Resize, Clip, QuantizeLinear and DequantizeLinear (value, roi, scales,
  // bounds, grids) are settings, not data.
  const bool data_slot = slot == 0 || (n.op != OpKind::pad && n.op != OpKind::resize && n.op != OpKind::clip &&
                                       n.op != OpKind::quantize_linear && n.op != OpKind::dequantize_linear);
  return has_gradient(n.op) && n.op != OpKind::batch_norm && data_slot && t.numel() > 1 && !made_up_name(name) &&
         all_finite(t);
}

// Ops whose outputs carry no gradient whatever their inputs (shapes, comparisons).
bool stops_gradient(const Node& n) {
  return n.op == OpKind::shape || n.op == OpKind::equal || n.op == OpKind::logical_not ||
         n.op == OpKind::logical_and || n.op == OpKind::logical_or || n.op == OpKind::logical_xor ||
         n.op == OpKind::constant_of_shape || (n.op == OpKind::cast && n.integer("to", 1) != 1);
}

std::string node_name(const Node& n) { return fmt::format("node '{}' ({})", n.name, op_info(n.op).onnx); }

bool needs_grad(const std::vector<Variable>& in) {
  return std::any_of(in.begin(), in.end(), [](const Variable& v) { return v.defined() && v.requires_grad(); });
}

std::vector<Tensor> data_of(const std::vector<Variable>& in) {
  std::vector<Tensor> out;
  for (const Variable& v : in) out.push_back(v.defined() ? v.data() : Tensor());
  return out;
}

float scalar_input(const Node& n, const std::vector<Variable>& in, size_t i, float fallback) {
  if (i >= in.size() || !in[i].defined()) return fallback;
  check<ValueError>(!in[i].requires_grad() && in[i].numel() == 1, "{}: input {} must be a constant scalar", where(n), i);
  return static_cast<float>(detail::element(in[i].data(), 0));
}

// numpy matmul on Variables: 1-D operands gain a dimension that is dropped again.
Variable matmul_numpy(const Node& n, Variable a, Variable b) {
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec) a = reshape(a, {1, a.shape()[0]});
  if (b_vec) b = reshape(b, {b.shape()[0], 1});
  Variable y;
  if (b.dim() == 2 || (a.dim() == b.dim() && std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()))) {
    y = matmul(a, b);
  } else {
    const Shape batch = detail::broadcast_all(n, {Shape(a.shape().begin(), a.shape().end() - 2),
                                                  Shape(b.shape().begin(), b.shape().end() - 2)});
    auto grow = [&](const Variable& t) {
      Shape s = batch;
      s.push_back(t.shape()[t.dim() - 2]);
      s.push_back(t.shape()[t.dim() - 1]);
      return t.shape() == s ? t : expand(t, s);
    };
    y = matmul(grow(a), grow(b));
  }
  Shape s = y.shape();
  if (b_vec) s.erase(s.end() - 1);
  if (a_vec) s.erase(s.end() - (b_vec ? 1 : 2));
  return reshape(y, s);
}

// QuantizeLinear and DequantizeLinear as quantisation-aware training runs
// them: the quantised values travel as floats holding integers, QuantizeLinear
// passes the straight-through gradient (1/scale where x lands inside the
// grid, 0 where it clamps, as PyTorch's fake quantisation) and
// DequantizeLinear multiplies it by scale. Their composition is a fake
// quantiser with its gradient.
Variable qdq_differentiable(const Node& n, const std::vector<Variable>& in) {
  const Tensor zero_point = in.size() > 2 && in[2].defined() ? in[2].data() : Tensor();
  const Dtype type = zero_point.defined() ? zero_point.dtype() : Dtype::u8;
  const detail::QdqGrids g = detail::qdq_grids(n, in[1].data(), zero_point, in[0].shape(), type);
  // Scale and zero point shaped to broadcast along the grids' axis.
  Shape s(static_cast<size_t>(in[0].dim()), 1);
  if (g.axis >= 0) s[static_cast<size_t>(g.axis)] = static_cast<int64_t>(g.grids.size());
  Tensor scale = Tensor::zeros(g.axis >= 0 ? s : Shape{}), zero = Tensor::zeros(scale.shape());
  for (size_t k = 0; k < g.grids.size(); ++k) {
    scale.data<float>()[k] = g.grids[k].scale;
    zero.data<float>()[k] = static_cast<float>(g.grids[k].zero_point);
  }
  if (n.op == OpKind::dequantize_linear) return mul(sub(in[0], Variable(zero)), Variable(scale));
  Tensor inverse = scale.clone();
  for (int64_t k = 0; k < inverse.numel(); ++k) inverse.data<float>()[k] = 1.0f / inverse.data<float>()[k];
  const Variable v = add(mul(in[0], Variable(inverse)), Variable(zero));
  Tensor to_grid = v.data().clone();  // the rounding, added as a constant: its gradient passes straight
  for (int64_t k = 0; k < to_grid.numel(); ++k) {
    const float x = to_grid.data<float>()[k];
    to_grid.data<float>()[k] = std::nearbyint(x) - x;  // half to even, ONNX's rounding
  }
  return clamp(add(v, Variable(to_grid)), static_cast<float>(g.grids[0].qmin), static_cast<float>(g.grids[0].qmax));
}

// Node n on the autograd ops, for inputs of which some carry a gradient.
std::vector<Variable> run_differentiable(const Node& n, const std::vector<Variable>& in) {
  auto arg = [&](size_t i) { return i < in.size() ? in[i] : Variable(); };
  auto one = [](Variable v) { return std::vector<Variable>{std::move(v)}; };
  // The shape the reference executor gives this node's output (movement ops).
  auto reference_shape = [&] { return detail::run_node(n, data_of(in))[0].shape(); };
  if (is_reduction(n.op))
    return one(detail::reduce(n, in[0], arg(1).defined() ? detail::ints_of(in[1].data()) : n.integers("axes")));
  switch (n.op) {
    case OpKind::add: return one(add(in[0], in[1]));
    case OpKind::sub: return one(sub(in[0], in[1]));
    case OpKind::mul: return one(mul(in[0], in[1]));
    case OpKind::div: return one(div(in[0], in[1]));
    case OpKind::pow: return one(pow(in[0], scalar_input(n, in, 1, 1.0f)));
    case OpKind::relu: return one(relu(in[0]));
    case OpKind::sigmoid: return one(sigmoid(in[0]));
    case OpKind::tanh: return one(tanh(in[0]));
    case OpKind::sqrt: return one(sqrt(in[0]));
    case OpKind::exp: return one(exp(in[0]));
    case OpKind::erf: return one(erf(in[0]));
    case OpKind::neg: return one(neg(in[0]));
    case OpKind::reciprocal: return one(div(Variable(Tensor::scalar(1.0f)), in[0]));
    case OpKind::clip: {
      const float lo = scalar_input(n, in, 1, -INFINITY), hi = scalar_input(n, in, 2, INFINITY);
      return one(clamp(in[0], lo, hi));
    }
    case OpKind::gelu: {
      const bool tanh_form = n.has("approximate") && std::get<std::string>(n.attributes.at("approximate")) == "tanh";
      return one(gelu(in[0], tanh_form ? autograd::GeluApproximation::tanh : autograd::GeluApproximation::none));
    }
    case OpKind::abs: return one(abs(in[0]));
    case OpKind::leaky_relu: {
      const auto alpha = static_cast<float>(n.real("alpha", 0.01));
      return one(add(relu(in[0]), mul(relu(neg(in[0])), -alpha)));
    }
    case OpKind::hard_sigmoid: {
      const auto alpha = static_cast<float>(n.real("alpha", 0.2)), beta = static_cast<float>(n.real("beta", 0.5));
      return one(clamp(add(mul(in[0], alpha), beta), 0.0f, 1.0f));
    }
    case OpKind::hard_swish: return one(mul(in[0], clamp(add(mul(in[0], 1.0f / 6.0f), 0.5f), 0.0f, 1.0f)));
    case OpKind::max:
    case OpKind::min: {
      Variable y = in[0];
      for (size_t k = 1; k < in.size(); ++k) y = n.op == OpKind::max ? maximum(y, in[k]) : minimum(y, in[k]);
      return one(y);
    }
    case OpKind::identity: return one(in[0]);
    case OpKind::quantize_linear:
    case OpKind::dequantize_linear: return one(qdq_differentiable(n, in));
    case OpKind::cast:
      check<ValueError>(n.integer("to", 1) == 1, "{}: a cast of a weight to another type than float has no gradient",
                        where(n));
      return one(in[0]);
    case OpKind::softmax: return one(softmax(in[0], n.integer("axis", -1)));
    case OpKind::matmul: return one(matmul_numpy(n, in[0], in[1]));
    case OpKind::gemm: {
      Variable a = n.integer("transA", 0) != 0 ? transpose(in[0], 0, 1) : in[0];
      Variable b = n.integer("transB", 0) != 0 ? transpose(in[1], 0, 1) : in[1];
      Variable y = matmul(a, b);
      if (const double alpha = n.real("alpha", 1.0); alpha != 1.0) y = mul(y, static_cast<float>(alpha));
      if (arg(2).defined()) y = add(y, mul(in[2], static_cast<float>(n.real("beta", 1.0))));
      return one(y);
    }
    case OpKind::conv: return one(detail::conv(n, in[0], in[1], arg(2)));
    case OpKind::layer_norm: {
      const Shape& x = in[0].shape();
      const int64_t axis = detail::axis_of(n, n.integer("axis", -1), in[0].dim());
      return one(layer_norm(in[0], Shape(x.begin() + axis, x.end()), arg(1), arg(2),
                            static_cast<float>(n.real("epsilon", 1e-5))));
    }
    case OpKind::max_pool:
    case OpKind::average_pool: return one(detail::pool(n, in[0]));
    case OpKind::global_average_pool: {
      std::vector<int64_t> axes(static_cast<size_t>(in[0].dim() - 2));
      std::iota(axes.begin(), axes.end(), 2);
      return one(mean(in[0], axes, true));
    }
    case OpKind::flatten:
    case OpKind::reshape:
    case OpKind::squeeze:
    case OpKind::unsqueeze: return one(reshape(in[0], reference_shape()));
    case OpKind::transpose: {
      Shape perm = n.integers("perm");
      if (perm.empty())
        for (int64_t k = in[0].dim() - 1; k >= 0; --k) perm.push_back(k);
      return one(permute(in[0], perm));
    }
    case OpKind::concat: {
      std::vector<Variable> parts;
      for (const Variable& v : in)
        if (v.numel() > 0) parts.push_back(v);
      return one(concat(parts, detail::axis_of(n, n.integer("axis", 0), in[0].dim())));
    }
    case OpKind::gather: {
      const int64_t axis = detail::axis_of(n, n.integer("axis", 0), in[0].dim()), extent = in[0].shape()[axis];
      std::vector<int64_t> idx = detail::ints_of(in[1].data());
      for (int64_t& i : idx) {
        check<ValueError>(i >= -extent && i < extent, "{}: index {} is out of range for axis {} of {}", where(n), i,
                          axis, autograd::to_string(in[0].shape()));
        if (i < 0) i += extent;
      }
      return one(reshape(index_select(in[0], axis, detail::int_tensor(idx)), reference_shape()));
    }
    case OpKind::slice: {
      const auto starts = detail::ints_of(in[1].data()), ends = detail::ints_of(in[2].data());
      std::vector<int64_t> axes = arg(3).defined() ? detail::ints_of(in[3].data()) : std::vector<int64_t>{};
      const std::vector<int64_t> steps =
          arg(4).defined() ? detail::ints_of(in[4].data()) : std::vector<int64_t>(starts.size(), 1);
      if (axes.empty()) {
        axes.resize(starts.size());
        std::iota(axes.begin(), axes.end(), 0);
      }
      Variable y = in[0];
      for (size_t k = 0; k < starts.size(); ++k) {
        const int64_t a = detail::axis_of(n, axes[k], y.dim()), dim = y.shape()[a];
        check<ValueError>(steps[k] > 0, "{}: a slice with step {} has no gradient here", where(n), steps[k]);
        auto clamp_index = [&](int64_t v) { return std::clamp(v < 0 ? v + dim : v, int64_t{0}, dim); };
        const int64_t b = clamp_index(starts[k]), e = std::max(b, clamp_index(ends[k]));
        y = slice(y, a, b, e, steps[k]);
      }
      return one(y);
    }
    case OpKind::expand: return one(expand(in[0], reference_shape()));
    case OpKind::where: return one(where(in[0].data(), in[1], in[2]));
    case OpKind::pad: {
      const float value = arg(2).defined() && arg(2).numel() > 0 ? scalar_input(n, in, 2, 0.0f) : 0.0f;
      return one(detail::pad(n, in[0], detail::ints_of(in[1].data()), value,
                             arg(3).defined() ? detail::ints_of(in[3].data()) : std::vector<int64_t>{}));
    }
    case OpKind::resize: {
      std::vector<float> scales;
      if (arg(2).defined())
        for (int64_t k = 0; k < in[2].numel(); ++k) scales.push_back(static_cast<float>(detail::element(in[2].data(), k)));
      return one(detail::resize(n, in[0], scales, arg(3).defined() ? detail::ints_of(in[3].data()) : Shape{}));
    }
    default: break;
  }
  throw ValueError(fmt::format("{}: {} has no gradient", where(n), op_info(n.op).onnx));
}

}  // namespace

GraphModule::GraphModule(Graph graph) : graph_(std::move(graph)) {
  graph_.validate();
  order_ = graph_.topological_order();
  bind_layers();
  // The other weights, in the order nodes first read them.
  std::set<std::string> placed;
  for (const auto& [node, b] : bound_) {
    placed.insert(b->weight_name);
    if (!b->bias_name.empty()) placed.insert(b->bias_name);
  }
  for (size_t i : order_) {
    const Node& n = graph_.nodes[i];
    for (size_t slot = 0; slot < n.inputs.size(); ++slot) {
      const std::string& name = n.inputs[slot];
      if (placed.count(name) != 0 || !is_float_initializer(graph_, name)) continue;
      const Tensor& t = graph_.initializers.at(name);
      if (n.op == OpKind::batch_norm && (slot == 3 || slot == 4)) {
        add_buffer(name, t);
      } else if (weight_slot(n, slot) || learned_operand(n, slot, name, t)) {
        add_parameter(name, t);
      } else {
        continue;
      }
      placed.insert(name);
    }
  }
  check<ValueError>(!named_parameters().empty(),
                    "the graph has no float weight to train (no Conv, Gemm, MatMul, norm or embedding reads a float "
                    "initializer)");
  check_differentiable();
}

GraphModule::Scope* GraphModule::scope(const std::string& prefix) {
  if (prefix.empty()) return nullptr;
  if (auto it = scopes_.find(prefix); it != scopes_.end()) return it->second.get();
  const size_t dot = prefix.rfind('.');
  const std::string parent = dot == std::string::npos ? "" : prefix.substr(0, dot), leaf = prefix.substr(dot + 1);
  auto made = std::make_shared<Scope>();
  if (Scope* p = scope(parent)) {
    p->register_module(leaf, made);
  } else {
    register_module(leaf, made);
  }
  scopes_[prefix] = made;
  return made.get();
}

namespace {
std::pair<std::string, std::string> split_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == name.size()) return {"", name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}
}  // namespace

void GraphModule::add_parameter(const std::string& name, const Tensor& value) {
  const auto [prefix, leaf] = split_name(name);
  Scope* s = scope(prefix);
  layers::Parameter& p = s != nullptr ? s->register_parameter(leaf, value.clone()) : register_parameter(leaf, value.clone());
  // The registry hands out references; find the shared pointer by name.
  for (auto& [n, ptr] : named_parameters())
    if (&*ptr == &p) parameters_[name] = ptr;
}

void GraphModule::add_buffer(const std::string& name, const Tensor& value) {
  const auto [prefix, leaf] = split_name(name);
  Scope* s = scope(prefix);
  buffers_[name] = s != nullptr ? &s->register_buffer(leaf, value.clone()) : &register_buffer(leaf, value.clone());
}

template <typename Layer>
std::shared_ptr<Layer> GraphModule::add_layer(const std::string& prefix, std::shared_ptr<Layer> layer) {
  const auto [parent, leaf] = split_name(prefix);
  if (Scope* s = scope(parent)) return s->register_module(leaf, layer);
  return register_module(leaf, layer);
}

// Conv and Linear children for the nodes that fit them (see the header).
void GraphModule::bind_layers() {
  std::map<std::string, std::vector<size_t>> readers;  // value -> the nodes that read it
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto& name : graph_.nodes[i].inputs) readers[name].push_back(i);
  std::set<std::string> taken;  // initializers a layer holds
  auto float_init = [&](const std::string& name) -> const Tensor* {
    return is_float_initializer(graph_, name) && taken.count(name) == 0 ? &graph_.initializers.at(name) : nullptr;
  };
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto& out : graph_.nodes[i].outputs) producer[out] = i;
  // The Transpose of a 2-D P.weight that `value` is, read by one node only.
  auto transposed_weight = [&](const std::string& value) -> const Node* {
    const auto it = producer.find(value);
    if (it == producer.end() || readers[value].size() != 1) return nullptr;
    const Node& t = graph_.nodes[it->second];
    if (t.op != OpKind::transpose || t.inputs.empty() || readers[t.inputs[0]].size() != 1) return nullptr;
    const Tensor* w = float_init(t.inputs[0]);
    const auto perm = t.integers("perm");
    return w != nullptr && w->dim() == 2 && (perm.empty() || perm == std::vector<int64_t>{1, 0}) &&
                   !prefix_of(t.inputs[0]).empty()
               ? &t
               : nullptr;
  };
  for (size_t i : order_) {
    const Node& n = graph_.nodes[i];
    const std::string bias_name = n.inputs.size() > 2 ? n.inputs[2] : "";
    if (n.op == OpKind::conv && n.inputs.size() >= 2) {
      const Tensor* w = float_init(n.inputs[1]);
      const std::string prefix = prefix_of(n.inputs[1]);
      if (w == nullptr || w->dim() != 4 || prefix.empty() || w->size(2) != w->size(3)) continue;
      const Tensor* b = bias_name.empty() ? nullptr : float_init(bias_name);
      if (!bias_name.empty() && (b == nullptr || bias_name != prefix + ".bias")) continue;
      const auto strides = n.integers("strides", {1, 1}), dilations = n.integers("dilations", {1, 1});
      const auto pads = n.integers("pads", {0, 0, 0, 0});
      const bool square = strides.size() == 2 && strides[0] == strides[1] && dilations.size() == 2 &&
                          dilations[0] == dilations[1] && pads.size() == 4 &&
                          std::all_of(pads.begin(), pads.end(), [&](int64_t p) { return p == pads[0]; });
      if (!square || (n.has("auto_pad") && std::get<std::string>(n.attributes.at("auto_pad")) != "NOTSET")) continue;
      const int64_t groups = n.integer("group", 1);
      auto conv = std::make_shared<layers::Conv2d>(
          w->size(1) * groups, w->size(0), w->size(2),
          layers::Conv2dLayerOptions{.stride = strides[0], .padding = pads[0], .dilation = dilations[0],
                                     .groups = groups, .bias = b != nullptr});
      layers::StateDict state{{"weight", w->clone()}};
      if (b != nullptr) state["bias"] = b->clone();
      conv->load_state_dict(state);
      add_layer(prefix, conv);
      bound_[i] = std::make_shared<Bound>(Bound{Bound::Kind::conv, conv, prefix, n.inputs[1], bias_name, i, i});
    } else if (n.op == OpKind::gemm && n.inputs.size() >= 2) {
      const Tensor* w = float_init(n.inputs[1]);
      const std::string prefix = prefix_of(n.inputs[1]);
      if (w == nullptr || w->dim() != 2 || prefix.empty() || n.integer("transB", 0) != 1 || n.integer("transA", 0) != 0 ||
          n.real("alpha", 1.0) != 1.0 || n.real("beta", 1.0) != 1.0)
        continue;
      const Tensor* b = bias_name.empty() ? nullptr : float_init(bias_name);
      if (!bias_name.empty() && (b == nullptr || b->dim() != 1 || bias_name != prefix + ".bias")) continue;
      auto linear = std::make_shared<layers::Linear>(w->size(1), w->size(0), b != nullptr);
      layers::StateDict state{{"weight", w->clone()}};
      if (b != nullptr) state["bias"] = b->clone();
      linear->load_state_dict(state);
      add_layer(prefix, linear);
      bound_[i] = std::make_shared<Bound>(Bound{Bound::Kind::gemm, linear, prefix, n.inputs[1], bias_name, i, i});
    } else if (n.op == OpKind::matmul && n.inputs.size() == 2 && transposed_weight(n.inputs[1]) != nullptr) {
      // PyTorch's Linear exported without constant folding: MatMul(x, Transpose(P.weight)), then Add(P.bias).
      const Node& t = *transposed_weight(n.inputs[1]);
      const size_t t_index = static_cast<size_t>(&t - graph_.nodes.data());
      const Tensor& w = graph_.initializers.at(t.inputs[0]);
      const std::string prefix = prefix_of(t.inputs[0]);
      std::string bias;
      size_t output = i;
      if (const auto& next = readers[n.outputs[0]]; next.size() == 1) {
        const Node& add = graph_.nodes[next[0]];
        const std::string other = add.op == OpKind::add && add.inputs.size() == 2
                                      ? (add.inputs[0] == n.outputs[0] ? add.inputs[1] : add.inputs[0])
                                      : "";
        const Tensor* b = other == prefix + ".bias" ? float_init(other) : nullptr;
        if (b != nullptr && b->dim() == 1 && b->size(0) == w.size(0)) bias = other, output = next[0];
      }
      auto linear = std::make_shared<layers::Linear>(w.size(1), w.size(0), !bias.empty());
      layers::StateDict state{{"weight", w.clone()}};
      if (!bias.empty()) state["bias"] = graph_.initializers.at(bias).clone();
      linear->load_state_dict(state);
      add_layer(prefix, linear);
      bound_[i] = std::make_shared<Bound>(
          Bound{Bound::Kind::transposed_matmul, linear, prefix, t.inputs[0], bias, output, t_index});
      absorbed_[t_index] = i;
      if (output != i) absorbed_[output] = i;
      taken.insert(t.inputs[0]);
      if (!bias.empty()) taken.insert(bias);
      continue;
    } else if (n.op == OpKind::matmul && n.inputs.size() == 2) {
      // PyTorch's Linear on (..., in): MatMul(x, Wᵀ folded as "onnx::MatMul_N") then Add(P.bias).
      const Tensor* wt = float_init(n.inputs[1]);
      const auto& next = readers[n.outputs[0]];
      if (wt == nullptr || wt->dim() != 2 || !made_up_name(n.inputs[1]) || next.size() != 1) continue;
      const Node& add = graph_.nodes[next[0]];
      if (add.op != OpKind::add || add.inputs.size() != 2) continue;
      const std::string bias = add.inputs[0] == n.outputs[0] ? add.inputs[1] : add.inputs[0];
      const Tensor* b = float_init(bias);
      const std::string prefix = prefix_of(bias.ends_with(".bias") ? bias.substr(0, bias.size() - 5) + ".weight" : "");
      if (b == nullptr || b->dim() != 1 || b->size(0) != wt->size(1) || prefix.empty() ||
          graph_.initializers.count(prefix + ".weight") != 0)
        continue;
      auto linear = std::make_shared<layers::Linear>(wt->size(0), wt->size(1), true);
      linear->load_state_dict(layers::StateDict{{"weight", wt->transpose(0, 1)}, {"bias", b->clone()}});
      add_layer(prefix, linear);
      bound_[i] = std::make_shared<Bound>(Bound{Bound::Kind::matmul_add, linear, prefix, n.inputs[1], bias, next[0], i});
      absorbed_[next[0]] = i;
      taken.insert(bias);
    } else {
      continue;
    }
    taken.insert(n.inputs[1]);
    if (!bias_name.empty()) taken.insert(bias_name);
  }
}

// Every node that a weight's gradient must pass has one (construction fails
// naming the first that has not, rather than training silently without it).
void GraphModule::check_differentiable() const {
  std::set<std::string> carries;  // values that depend on a weight
  for (const auto& [name, p] : parameters_) carries.insert(name);
  for (const auto& [i, b] : bound_) carries.insert(graph_.nodes[b->output_node].outputs[0]);
  for (size_t i : order_) {
    const Node& n = graph_.nodes[i];
    if (bound_.count(i) != 0 || absorbed_.count(i) != 0) continue;
    const bool reached = std::any_of(n.inputs.begin(), n.inputs.end(), [&](const auto& v) { return carries.count(v) != 0; });
    if (!reached || stops_gradient(n)) continue;
    check<ValueError>(has_gradient(n.op), "{}: {} has no gradient, and a trained weight flows through it", node_name(n),
                      op_info(n.op).onnx);
    for (const auto& out : n.outputs) carries.insert(out);
  }
}

std::map<std::string, Variable> GraphModule::run(const std::map<std::string, Variable>& inputs) {
  std::map<std::string, Variable> values;
  for (const auto& [name, t] : graph_.initializers) values[name] = Variable(t);
  for (const auto& [name, p] : parameters_) values[name] = p->value();
  for (const auto& [name, b] : buffers_) values[name] = Variable(*b);
  for (const ValueInfo& v : graph_.inputs) {
    auto it = inputs.find(v.name);
    check<ShapeError>(it != inputs.end(), "graph input '{}' is not given", v.name);
    values[v.name] = it->second;
  }
  const bool training = is_training();
  for (size_t i : order_) {
    const Node& n = graph_.nodes[i];
    if (absorbed_.count(i) != 0) continue;  // its MatMul's Linear gave its output
    if (auto it = bound_.find(i); it != bound_.end()) {
      const Bound& b = *it->second;
      values[graph_.nodes[b.output_node].outputs[0]] = b.layer->forward(values.at(n.inputs[0]));
      continue;
    }
    std::vector<Variable> in;
    for (const auto& name : n.inputs) in.push_back(name.empty() ? Variable() : values.at(name));
    std::vector<Variable> out;
    if (n.op == OpKind::batch_norm) {
      auto mean = buffers_.find(n.inputs[3]), var = buffers_.find(n.inputs[4]);
      const bool batch_statistics = training && mean != buffers_.end() && var != buffers_.end();
      Tensor running_mean = in[3].data(), running_var = in[4].data();
      // ONNX's momentum weighs the running value (PyTorch's weighs the batch's).
      const auto momentum = static_cast<float>(1.0 - n.real("momentum", 0.9));
      out.push_back(batch_norm(in[0], in[1], in[2], batch_statistics ? *mean->second : running_mean,
                               batch_statistics ? *var->second : running_var,
                               {.training = batch_statistics, .momentum = momentum,
                                .eps = static_cast<float>(n.real("epsilon", 1e-5))}));
      if (batch_statistics)
        for (size_t k = 1; k < n.outputs.size() && k < 3; ++k) out.push_back(Variable(k == 1 ? *mean->second : *var->second));
    } else if (n.op == OpKind::dropout) {
      const float p = n.has("ratio") ? static_cast<float>(n.real("ratio", 0.5)) : scalar_input(n, in, 1, 0.5f);
      out.push_back(dropout(in[0], p, training, layers::next_seed()));
      out.push_back(Variable(Tensor::ones(in[0].shape(), Dtype::i64)));
    } else if ((training && needs_grad(in) && !stops_gradient(n)) ||
               (n.op == OpKind::dequantize_linear && in[0].data().dtype() == Dtype::f32)) {  // a trained Quantize's
      out = run_differentiable(n, in);
    } else {
      for (Tensor& t : detail::run_node(n, data_of(in))) out.push_back(Variable(t));
    }
    for (size_t k = 0; k < n.outputs.size() && k < out.size(); ++k)
      if (!n.outputs[k].empty()) values[n.outputs[k]] = out[k];
  }
  std::map<std::string, Variable> result;
  for (const ValueInfo& v : graph_.outputs) result.emplace(v.name, values.at(v.name));
  return result;
}

Variable GraphModule::forward(const Variable& x) { return forward_inputs({x}); }

Variable GraphModule::forward_inputs(const std::vector<Variable>& inputs) {
  check<ValueError>(inputs.size() == graph_.inputs.size(), "the graph has {} inputs ({}), the data gives {}",
                    graph_.inputs.size(), fmt::join(input_names(), ", "), inputs.size());
  std::map<std::string, Variable> named;
  for (size_t k = 0; k < inputs.size(); ++k) named[graph_.inputs[k].name] = inputs[k];
  return run(named).at(graph_.outputs[0].name);
}

std::vector<std::string> GraphModule::input_names() const {
  std::vector<std::string> names;
  for (const ValueInfo& v : graph_.inputs) names.push_back(v.name);
  return names;
}

namespace {

// QuantizeLinear then DequantizeLinear of `in` on `fq`'s grids, named after
// `prefix` (its initializers prefix.scale and prefix.zero_point); `axis`: the
// grids' axis in this tensor. Returns the dequantised value's name (`out` if
// given).
std::string add_qdq(Graph& g, const layers::FakeQuantize& fq, std::string in, const std::string& prefix,
                    int64_t axis, std::string out = "") {
  const bool per_axis = fq.axis() >= 0;
  auto [scale, zero_point] = detail::onnx_grids(fq.scale(), fq.zero_point(), fq.quant_min(), fq.quant_max(), per_axis,
                                                "export of " + prefix);
  g.initializers[prefix + ".scale"] = scale;
  g.initializers[prefix + ".zero_point"] = zero_point;
  std::map<std::string, Attribute> attributes;
  if (per_axis) attributes["axis"] = axis;
  if (out.empty()) out = prefix + ".dequantized";
  g.nodes.push_back({.op = OpKind::quantize_linear, .name = prefix + ".QuantizeLinear",
                     .inputs = {in, prefix + ".scale", prefix + ".zero_point"}, .outputs = {prefix + ".quantized"},
                     .attributes = attributes});
  g.nodes.push_back({.op = OpKind::dequantize_linear, .name = prefix + ".DequantizeLinear",
                     .inputs = {prefix + ".quantized", prefix + ".scale", prefix + ".zero_point"}, .outputs = {out},
                     .attributes = attributes});
  return out;
}

}  // namespace

// Quantisation-aware training's grids in the file, as PyTorch's QAT export
// writes them: QuantizeLinear-DequantizeLinear pairs on each quantised
// layer's input, weight and output.
void GraphModule::add_quantization(Graph& g) const {
  bool added = false;
  for (const auto& [i, b] : bound_) {
    const auto* q = dynamic_cast<const layers::QuantizableLayer*>(b->layer.get());
    if (q == nullptr || !q->quantized()) continue;
    added = true;
    if (q->input_quant)
      g.nodes[i].inputs[0] = add_qdq(g, *q->input_quant, g.nodes[i].inputs[0], b->prefix + ".input_quant", 1);
    if (q->weight_quant) {  // per output channel: axis 0 of (out, in, ...), 1 of a folded MatMul weight (in, out)
      Node& reader = g.nodes[b->weight_reader];
      const size_t slot = static_cast<size_t>(
          std::find(reader.inputs.begin(), reader.inputs.end(), b->weight_name) - reader.inputs.begin());
      g.nodes[b->weight_reader].inputs[slot] = add_qdq(g, *q->weight_quant, b->weight_name,
                                                       b->prefix + ".weight_quant",
                                                       b->kind == Bound::Kind::matmul_add ? 1 : 0);
    }
    if (q->output_quant) {
      const std::string y = g.nodes[b->output_node].outputs[0];
      g.nodes[b->output_node].outputs[0] = y + ".float";
      add_qdq(g, *q->output_quant, y + ".float", b->prefix + ".output_quant", 1, y);
    }
  }
  if (!added) return;
  std::vector<Node> ordered;
  for (size_t k : g.topological_order()) ordered.push_back(std::move(g.nodes[k]));
  g.nodes = std::move(ordered);
}

Graph GraphModule::exported() const {
  Graph g = graph_;
  // For inference: batch norms on their running statistics, dropout off (a
  // training-mode export sets both to train; statistics outputs nothing reads go).
  std::set<std::string> read;
  for (const Node& n : g.nodes) read.insert(n.inputs.begin(), n.inputs.end());
  for (const ValueInfo& v : g.outputs) read.insert(v.name);
  for (Node& n : g.nodes) {
    if (n.op == OpKind::batch_norm) {
      const bool statistics_read = std::any_of(n.outputs.begin() + 1, n.outputs.end(), [&](const auto& o) { return read.count(o) != 0; });
      if (statistics_read) continue;
      n.attributes.erase("training_mode");
      n.outputs.resize(1);
    } else if (n.op == OpKind::dropout && n.inputs.size() > 2) {
      n.inputs.resize(2);
    }
  }
  for (const auto& [name, p] : parameters_) g.initializers[name] = p->value().data().clone();
  for (const auto& [name, b] : buffers_) g.initializers[name] = b->clone();
  auto weight_of = [](const Bound& b) -> layers::Parameter& {
    if (auto* conv = dynamic_cast<layers::Conv2d*>(b.layer.get())) return conv->weight;
    return dynamic_cast<layers::Linear&>(*b.layer).weight;
  };
  auto bias_of = [](const Bound& b) -> layers::Parameter* {
    if (auto* conv = dynamic_cast<layers::Conv2d*>(b.layer.get())) return conv->bias;
    return dynamic_cast<layers::Linear&>(*b.layer).bias;
  };
  for (const auto& [i, b] : bound_) {
    const Tensor w = weight_of(*b).value().data();
    g.initializers[b->weight_name] = b->kind == Bound::Kind::matmul_add ? w.transpose(0, 1) : w.clone();
    if (!b->bias_name.empty()) g.initializers[b->bias_name] = bias_of(*b)->value().data().clone();
  }
  for (const auto& [name, p] : named_parameters()) {
    if (!p->has_mask()) continue;
    const Tensor& v = p->value().data();
    const float* d = v.data<float>();
    const auto zeros = std::count(d, d + v.numel(), 0.0f);
    g.metadata["sparsity:" + name] = fmt::format("{:.6f}", static_cast<double>(zeros) / static_cast<double>(v.numel()));
  }
  add_quantization(g);
  return g;
}

size_t GraphModule::classifier_node() const {
  // Walk back from the output through shape-only nodes to the layer that made it.
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto& out : graph_.nodes[i].outputs) producer[out] = i;
  std::string value = graph_.outputs.at(0).name;
  for (int hops = 0; hops < 16; ++hops) {
    auto it = producer.find(value);
    if (it == producer.end()) break;
    if (auto a = absorbed_.find(it->second); a != absorbed_.end()) return a->second;
    if (auto b = bound_.find(it->second); b != bound_.end() && b->second->kind != Bound::Kind::conv) return it->second;
    const Node& n = graph_.nodes[it->second];
    const bool passes = n.op == OpKind::identity || n.op == OpKind::flatten || n.op == OpKind::reshape ||
                        n.op == OpKind::squeeze || n.op == OpKind::dropout;
    if (!passes || n.inputs.empty()) break;
    value = n.inputs[0];
  }
  throw ValueError(fmt::format("graph output '{}' does not come from a Linear classifier (Gemm with a .weight, or MatMul "
                               "and Add of a .bias)", graph_.outputs.at(0).name));
}

int64_t GraphModule::num_classes() const {
  const Bound& b = *bound_.at(classifier_node());
  return dynamic_cast<const layers::Linear&>(*b.layer).weight.shape()[0];
}

void GraphModule::replace_classifier(int64_t classes) {
  check<ValueError>(classes >= 1, "replace_classifier: {} classes", classes);
  Bound& b = *bound_.at(classifier_node());
  auto& old = dynamic_cast<layers::Linear&>(*b.layer);
  const int64_t in = old.weight.shape()[1];
  auto fresh = std::make_shared<layers::Linear>(in, classes, old.bias != nullptr);
  // Swap the child in place: the same name, registered where the old one was.
  const auto [parent, leaf] = split_name(b.prefix);
  Module& owner = parent.empty() ? static_cast<Module&>(*this) : static_cast<Module&>(*scopes_.at(parent));
  owner.replace_child(leaf, fresh);
  b.layer = fresh;
  // The graph's shapes follow: the output's last dimension is `classes` now.
  graph_.values.clear();
  for (ValueInfo& v : graph_.outputs)
    if (!v.shape.empty()) v.shape.back() = classes;
  graph_.initializers[b.weight_name] = b.kind == Bound::Kind::matmul_add ? Tensor::zeros({in, classes}) : Tensor::zeros({classes, in});
  if (!b.bias_name.empty()) graph_.initializers[b.bias_name] = Tensor::zeros({classes});
}

}  // namespace neurite::engine
