// The lowering table and the lowering of nodes without kernels of their own.
#include "engine/lowering.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "engine/steps.h"
#include "neurite/error.h"

namespace neurite::engine::detail {

namespace {

using autograd::Dtype;

int64_t batch_rows(const Shape& s, int64_t batch) { return s.empty() || s[0] != batch ? -1 : s[0]; }

// What a batch-separability rule sees of a node.
struct SliceContext {
  const Lowering& l;
  const Node& n;
  size_t in_rank;  // of input 0
  int64_t axis(const char* name, int64_t fallback) const {
    const int64_t a = n.integer(name, fallback);
    return a < 0 ? a + static_cast<int64_t>(in_rank) : a;
  }
  bool is_constant(size_t input) const { return l.constants.count(n.inputs[input]) != 0; }
  // The int64 values of a constant input; null when it is not constant.
  const Tensor* constant(size_t input) const {
    return input < n.inputs.size() && !n.inputs[input].empty() ? l.g.constant(n.inputs[input]) : nullptr;
  }
};

bool always(const SliceContext&) { return true; }
bool never(const SliceContext&) { return false; }
bool keeps_first_axis(const SliceContext& c) {  // Transpose
  const auto perm = c.n.integers("perm");
  return !perm.empty() && perm[0] == 0;
}
bool axis_not_batch(const SliceContext& c) { return c.axis("axis", -1) != 0; }  // Softmax, LayerNormalization
bool concat_axis_not_batch(const SliceContext& c) { return c.axis("axis", 0) != 0; }
bool flatten_axis_not_batch(const SliceContext& c) { return c.axis("axis", 1) != 0; }
bool gather_separable(const SliceContext& c) { return c.is_constant(0) || c.axis("axis", 0) != 0; }
bool matmul_separable(const SliceContext& c) { return c.is_constant(1) || c.in_rank >= 3; }
// QuantizeLinear, DequantizeLinear: per-tensor grids, or per-axis ones off the batch axis.
bool qdq_separable(const SliceContext& c) {
  const ValueInfo& scale = c.l.g.values.at(c.n.inputs[1]);
  return scale.shape.size() == 0 || c.axis("axis", 1) != 0;
}
bool touches_batch_axis(const int64_t* axes, int64_t count, size_t rank) {
  return std::any_of(axes, axes + count, [rank](int64_t a) { return a == 0 || a + static_cast<int64_t>(rank) == 0; });
}
bool reduce_separable(const SliceContext& c) {
  if (const Tensor* t = c.constant(1)) return t->numel() > 0 && !touches_batch_axis(t->data<int64_t>(), t->numel(), c.in_rank);
  if (c.n.inputs.size() > 1 && !c.n.inputs[1].empty()) return false;  // axes computed at run time
  const auto axes = c.n.integers("axes");
  return !axes.empty() && !touches_batch_axis(axes.data(), static_cast<int64_t>(axes.size()), c.in_rank);
}
bool slice_separable(const SliceContext& c) {
  const Tensor* axes = c.constant(3);
  return axes != nullptr && !touches_batch_axis(axes->data<int64_t>(), axes->numel(), c.in_rank);
}
bool has_rank(const SliceContext& c) { return c.in_rank >= 1; }  // Squeeze, Unsqueeze
// Pad: constant pads, none on the batch axis.
bool pad_separable(const SliceContext& c) {
  const Tensor* pads = c.constant(1);
  if (pads == nullptr || c.constant(3) != nullptr || (c.n.inputs.size() > 3 && !c.n.inputs[3].empty())) return false;
  return pads->numel() == 2 * static_cast<int64_t>(c.in_rank) && pads->data<int64_t>()[0] == 0 &&
         pads->data<int64_t>()[c.in_rank] == 0;
}
// Resize: sizes (rewritten per slice), or constant scales that keep the batch axis.
bool resize_separable(const SliceContext& c) {
  if (c.n.inputs.size() > 3 && !c.n.inputs[3].empty()) return true;
  const Tensor* scales = c.constant(2);
  return scales != nullptr && scales->numel() > 0 && scales->data<float>()[0] == 1.0f;
}

using LowerFn = std::unique_ptr<Step> (*)(Lowering&, const Node&);
using SeparableFn = bool (*)(const SliceContext&);

// Per op kind: its kernel lowering (null: the reference executor's node
// step), whether a node of it may run on a slice of the batch, whether a
// batch-shaped constant input lines up with the slice (elementwise ops),
// whether its inputs may differ in rank from its output, and which input (if
// any) is the output's shape, to rewrite per slice.
struct Lowerer {
  LowerFn lower = nullptr;
  SeparableFn separable = always;
  bool aligns_constants = false, changes_rank = false;
  int shape_input = -1;
};

constexpr std::array<Lowerer, kOpCount> make_table() {
  std::array<Lowerer, kOpCount> t{};
  auto at = [&t](OpKind op) -> Lowerer& { return t[static_cast<size_t>(op)]; };
  at(OpKind::conv) = {.lower = lower_conv};
  at(OpKind::gemm) = {.lower = lower_linear};
  at(OpKind::matmul) = {.lower = lower_linear, .separable = matmul_separable};
  at(OpKind::softmax) = {.lower = lower_rows, .separable = axis_not_batch};
  at(OpKind::layer_norm) = {.lower = lower_rows, .separable = axis_not_batch};
  at(OpKind::reduce_mean) = {.lower = lower_rows, .separable = reduce_separable, .changes_rank = true};
  at(OpKind::global_average_pool) = {.lower = lower_rows, .changes_rank = true};
  at(OpKind::transpose) = {.lower = lower_copy, .separable = keeps_first_axis};
  at(OpKind::slice) = {.lower = lower_copy, .separable = slice_separable};
  at(OpKind::max_pool) = {.lower = lower_pool};
  at(OpKind::average_pool) = {.lower = lower_pool};
  for (OpKind op : {OpKind::add, OpKind::sub, OpKind::mul, OpKind::div, OpKind::pow})
    at(op) = {.lower = lower_elementwise, .aligns_constants = true};
  for (OpKind op : {OpKind::relu, OpKind::sigmoid, OpKind::tanh, OpKind::sqrt, OpKind::erf, OpKind::exp, OpKind::neg,
                    OpKind::reciprocal, OpKind::gelu, OpKind::clip})
    at(op).lower = lower_elementwise;
  at(OpKind::where) = {.lower = lower_elementwise, .aligns_constants = true};
  for (OpKind op : {OpKind::equal, OpKind::logical_not, OpKind::cast}) at(op).lower = lower_elementwise;
  at(OpKind::concat) = {.lower = lower_concat, .separable = concat_axis_not_batch, .aligns_constants = true};
  at(OpKind::flatten) = {.separable = flatten_axis_not_batch, .changes_rank = true};
  at(OpKind::gather) = {.lower = lower_gather, .separable = gather_separable};
  at(OpKind::reshape) = {.changes_rank = true, .shape_input = 1};
  at(OpKind::expand) = {.lower = lower_elementwise, .shape_input = 1};
  at(OpKind::resize) = {.separable = resize_separable, .shape_input = 3};
  at(OpKind::pad).separable = pad_separable;
  for (size_t op = 0; op < kOpCount; ++op)  // the reductions without a kernel run sliced when off the batch axis
    if (is_reduction(static_cast<OpKind>(op)) && static_cast<OpKind>(op) != OpKind::reduce_mean)
      t[op] = {.separable = reduce_separable, .changes_rank = true};
  at(OpKind::quantize_linear) = {.lower = lower_fake_quantize, .separable = qdq_separable};
  at(OpKind::dequantize_linear).separable = qdq_separable;
  at(OpKind::squeeze) = {.separable = has_rank, .changes_rank = true};
  at(OpKind::unsqueeze) = {.separable = has_rank, .changes_rank = true};
  for (OpKind op : {OpKind::shape, OpKind::constant, OpKind::constant_of_shape}) at(op).separable = never;
  return t;
}
constexpr std::array<Lowerer, kOpCount> kLowerers = make_table();

// Whether node n runs the same on any slice of the batch (its batch-major
// values cut to the slice), judged from its shapes at the compiled batch.
bool sliceable(const Lowering& l, const Node& n, NodeStep& s) {
  const Lowerer& rule = kLowerers[static_cast<size_t>(n.op)];
  const int64_t B = l.plan.batch;
  for (const std::string& out : n.outputs)
    if (!out.empty() && batch_rows(l.g.values.at(out).shape, B) < 0) return false;
  const size_t rank = l.g.values.at(n.outputs[0]).shape.size();
  s.sliced.assign(n.inputs.size(), false);
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    const std::string& in = n.inputs[k];
    if (in.empty()) continue;
    const Shape& shape = l.g.values.at(in).shape;
    if (l.constants.count(in)) {  // a batch-shaped constant (an expanded token) lines up with the slice
      s.sliced[k] = rule.aligns_constants && shape.size() == rank && batch_rows(shape, B) > 0;
      continue;
    }
    if (batch_rows(shape, B) < 0 || (shape.size() != rank && !rule.changes_rank)) return false;
    s.sliced[k] = true;
  }
  s.shape_input = rule.shape_input;
  return rule.separable({.l = l, .n = n, .in_rank = l.g.values.at(n.inputs[0]).shape.size()});
}

// A node the engine has no kernel for: the reference executor runs it.
std::unique_ptr<Step> lower_node(Lowering& l, const Node& n) {
  auto step = std::make_unique<NodeStep>();
  step->node = n;
  for (const std::string& in : n.inputs) step->inputs.push_back(l.id(in));
  for (const std::string& out : n.outputs) step->outputs.push_back(l.id(out));
  step->out_shape = l.g.values.at(n.outputs[0]).shape;
  step->sliceable = sliceable(l, n, *step);
  // Reshapes share their input's storage: no work, not on the profile's reference list.
  const bool view = n.op == OpKind::reshape || n.op == OpKind::flatten || n.op == OpKind::squeeze ||
                    n.op == OpKind::unsqueeze || n.op == OpKind::identity;
  step->info = {.name = n.name, .kernel = fmt::format("{} {}", view ? "view" : "node", op_info(n.op).onnx)};
  return step;
}

}  // namespace

std::optional<Activation> Lowering::clip_activation(const Node& clip) const {
  auto bound = [&](size_t k) -> std::optional<float> {
    if (k >= clip.inputs.size() || clip.inputs[k].empty()) return std::nullopt;
    const Tensor* t = g.constant(clip.inputs[k]);
    if (t == nullptr || t->numel() != 1 || t->dtype() != Dtype::f32) return std::nullopt;
    return t->data<float>()[0];
  };
  const auto lo = bound(1), hi = bound(2);
  const bool unbounded_above = clip.inputs.size() < 3 || clip.inputs[2].empty();
  if (lo != 0.0f) return std::nullopt;
  if (hi == 6.0f) return Activation::relu6;
  if (unbounded_above) return Activation::relu;
  return std::nullopt;
}

std::string fused_name(const Fused& f) {
  std::string s;
  if (!f.bias.empty()) s += "+bias";
  if (f.residual) s += "+add";
  if (f.activation == Activation::relu) s += "+relu";
  if (f.activation == Activation::relu6) s += "+relu6";
  return s;
}

Lowering::Lowering(Graph& graph, const GraphIndex& index, const CompileOptions& options, Engine::Plan& plan)
    : g(graph), index(index), options(options), plan(plan), done(graph.nodes.size(), false) {
  for (const auto& [name, t] : g.initializers) constants.insert(name), ready.insert(name);
  for (const ValueInfo& in : g.inputs) ready.insert(in.name);
}

int Lowering::id(const std::string& name) {
  if (name.empty()) return -1;
  auto [it, fresh] = ids.emplace(name, static_cast<int>(plan.values.size()));
  if (fresh) {
    const ValueInfo& info = g.values.at(name);
    const Tensor* c = g.constant(name);
    check<ShapeError>(c != nullptr || std::all_of(info.shape.begin(), info.shape.end(), [](int64_t d) { return d >= 0; }),
                      "compile: value '{}' has shape {}, not known before run time", name,
                      autograd::to_string(info.shape));
    plan.values.push_back(c != nullptr ? *c : Tensor::zeros(info.shape, storage_of(info.type)));
    plan.constant.push_back(c != nullptr);
  }
  return it->second;
}

const Node* Lowering::sole_consumer(const std::string& value, OpKind op) const {
  const auto i = index.sole_consumer(value);
  return i && g.nodes[*i].op == op && !done[*i] ? &g.nodes[*i] : nullptr;
}

std::string Lowering::fuse_tail(std::string out, Fused& fused, int& residual) {
  if (const Node* add = sole_consumer(out, OpKind::add)) {
    const std::string& other = add->inputs[0] == out ? add->inputs[1] : add->inputs[0];
    if (other != out && ready.count(other) && g.values.at(other).shape == g.values.at(out).shape &&
        g.values.at(other).type == DataType::float32) {
      residual = id(other);
      fused.residual = true;
      consume(add);
      out = add->outputs[0];
    }
  }
  if (const Node* relu = sole_consumer(out, OpKind::relu)) {
    fused.activation = Activation::relu;
    consume(relu);
    out = relu->outputs[0];
    // PyTorch writes ReLU6 as Relu then Clip(0, 6).
    if (const Node* clip = sole_consumer(out, OpKind::clip); clip && clip_activation(*clip) == Activation::relu6) {
      fused.activation = Activation::relu6;
      consume(clip);
      out = clip->outputs[0];
    }
  } else if (const Node* clip = sole_consumer(out, OpKind::clip)) {
    const std::optional<Activation> as = clip_activation(*clip);
    if (as) {
      fused.activation = *as;
      consume(clip);
      out = clip->outputs[0];
    }
  }
  return out;
}

void Lowering::plan_products(const std::vector<size_t>& order) {
  auto fold = [this](const BatchedViews& v) {
    for (const StridedView* view : {&v.a, &v.b, &v.c})
      for (size_t k : view->nodes) done[k] = true;
  };
  for (size_t i : order) {
    if (done[i]) continue;
    auto views = plan_batched_matmul(*this, g.nodes[i]);
    if (!views) continue;
    const std::string& scores = g.nodes[i].outputs[0];
    fold(*views);
    // Attention: the scores [times a constant] [plus a mask], their Softmax
    // over the last axis, then a product with V, each read by the next alone
    // (PyTorch writes a padding mask so: baddbmm's scaled sum).
    Attention tail{.scores_node = g.nodes[i].name, .scores_value = scores, .scores = *views};
    std::vector<size_t> between;
    std::string at = scores;
    const Shape& shape = g.values.at(scores).shape;
    if (const Node* mul = sole_consumer(at, OpKind::mul)) {
      const std::string& other = mul->inputs[0] == at ? mul->inputs[1] : mul->inputs[0];
      if (const Tensor* c = g.constant(other); c && c->numel() == 1 && c->dtype() == Dtype::f32 &&
                                               g.values.at(mul->outputs[0]).shape == shape) {
        tail.scale = c->data<float>()[0];
        between.push_back(static_cast<size_t>(mul - g.nodes.data()));
        at = mul->outputs[0];
      }
    }
    if (const Node* add = sole_consumer(at, OpKind::add)) {
      const std::string& other = add->inputs[0] == at ? add->inputs[1] : add->inputs[0];
      const ValueInfo& m = g.values.at(other);
      if (other != at && m.type == DataType::float32 && m.shape.size() <= shape.size() && !m.shape.empty() &&
          m.shape.back() == shape.back() && g.values.at(add->outputs[0]).shape == shape) {
        tail.mask = other;
        between.push_back(static_cast<size_t>(add - g.nodes.data()));
        at = add->outputs[0];
      }
    }
    const auto softmax = index.sole_consumer(at);
    if (!softmax || done[*softmax] || g.nodes[*softmax].op != OpKind::softmax) {
      batched_views.emplace(scores, std::move(*views));
      continue;
    }
    const Node& sm = g.nodes[*softmax];
    const int64_t axis = sm.integer("axis", -1), rank = static_cast<int64_t>(shape.size());
    const auto second = index.sole_consumer(sm.outputs[0]);
    auto values = (axis != -1 && axis != rank - 1) || !second || done[*second] ||
                          g.nodes[*second].inputs[0] != sm.outputs[0]
                      ? std::nullopt
                      : plan_batched_matmul(*this, g.nodes[*second]);
    if (!values || !values->a.nodes.empty()) {
      batched_views.emplace(scores, std::move(*views));
      continue;
    }
    fold(*values);
    for (size_t k : between) done[k] = true;
    done[i] = done[*softmax] = true;
    tail.values = std::move(*values);
    attention.emplace(g.nodes[*second].outputs[0], std::move(tail));
  }
}

void Lowering::build_steps() {
  const std::vector<size_t> order = g.topological_order();
  plan_products(order);  // first: the layout ops the products fold in must not become steps
  for (size_t i : order) {
    if (done[i]) continue;
    done[i] = true;
    const Node n = g.nodes[i];  // a copy: steps keep nodes, fusion marks others done
    const LowerFn lower = kLowerers[static_cast<size_t>(n.op)].lower;
    std::unique_ptr<Step> step = lower != nullptr ? lower(*this, n) : nullptr;
    if (!step && n.op == OpKind::matmul) step = lower_batched_matmul(*this, n);  // of two activations
    if (!step) step = lower_node(*this, n);
    for (const auto& [name, value] : ids)
      if (std::find(step->outputs.begin(), step->outputs.end(), value) != step->outputs.end())
        ready.insert(name);
    plan.steps.push_back(std::move(step));
  }
}

}  // namespace neurite::engine::detail
