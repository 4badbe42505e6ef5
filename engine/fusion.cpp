// Pattern fusion: what exporters write from primitives becomes the one node
// the engine has a kernel for. Matching follows the data flow from the
// pattern's distinctive op (ReduceMean, Erf, Tanh) and checks every constant,
// so a graph matches by its structure, whatever its nodes are called.
#include <cmath>
#include <optional>

#include "engine/graph_index.h"
#include "engine/passes.h"

namespace neurite::engine::detail {

namespace {

class Matcher {
 public:
  explicit Matcher(Graph& graph) : g_(graph), index_(graph) {}

  // The node writing `value` when it is of kind `op`.
  const Node* producer(const std::string& value, OpKind op) const {
    const auto i = index_.producer(value);
    return i && g_.nodes[*i].op == op ? &g_.nodes[*i] : nullptr;
  }
  // The only reader of `value` when it is of kind `op`.
  const Node* sole_consumer(const std::string& value, OpKind op) const {
    const auto i = index_.sole_consumer(value);
    return i && g_.nodes[*i].op == op ? &g_.nodes[*i] : nullptr;
  }
  // The value of a one-element float constant.
  std::optional<float> scalar(const std::string& value) const {
    const Tensor* t = g_.constant(value);
    if (t == nullptr || t->numel() != 1 || t->dtype() != autograd::Dtype::f32) return std::nullopt;
    return t->data<float>()[0];
  }
  bool is_scalar(const std::string& value, float expected, float tolerance = 1e-5f) const {
    const auto v = scalar(value);
    return v && std::fabs(*v - expected) <= tolerance * std::max(1.0f, std::fabs(expected));
  }
  // For a binary node reading `one`: its other operand ("" when it reads `one` twice).
  static std::string other(const Node& n, const std::string& one) {
    if (n.inputs[0] == one) return n.inputs[1] == one ? "" : n.inputs[1];
    return n.inputs[1] == one ? n.inputs[0] : "";
  }
  // A ReduceMean over the last axis only, keeping it.
  bool last_axis_mean(const Node& n) const {
    if (n.op != OpKind::reduce_mean || n.integer("keepdims", 1) == 0) return false;
    const auto axes = n.integers("axes");
    const int64_t rank = static_cast<int64_t>(g_.values.at(n.inputs[0]).shape.size());
    return (n.inputs.size() < 2 || n.inputs[1].empty()) && axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
  }
  // Index of node n in the graph.
  size_t at(const Node& n) const { return static_cast<size_t>(&n - g_.nodes.data()); }

 private:
  Graph& g_;
  GraphIndex index_;
};

// x·½·(1 + e) from the node that adds 1 to e (Erf or Tanh of x's argument):
// the last node of the product, or null.
const Node* gelu_tail(const Matcher& m, const Node& erf, const std::string& x) {
  const Node* plus_one = m.sole_consumer(erf.outputs[0], OpKind::add);
  if (plus_one == nullptr || !m.is_scalar(Matcher::other(*plus_one, erf.outputs[0]), 1.0f)) return nullptr;
  const std::string& a = plus_one->outputs[0];
  const Node* m1 = m.sole_consumer(a, OpKind::mul);
  if (m1 == nullptr) return nullptr;
  const std::string o1 = Matcher::other(*m1, a);
  if (o1 == x || m.is_scalar(o1, 0.5f)) {  // (x·a)·½ or (½·a)·x
    const Node* m2 = m.sole_consumer(m1->outputs[0], OpKind::mul);
    if (m2 == nullptr) return nullptr;
    const std::string o2 = Matcher::other(*m2, m1->outputs[0]);
    return (o1 == x ? m.is_scalar(o2, 0.5f) : o2 == x) ? m2 : nullptr;
  }
  if (const Node* half = m.producer(o1, OpKind::mul)) {  // (x·½)·a
    const std::string h = Matcher::other(*half, x);
    if (m.is_scalar(h, 0.5f)) return m1;
  }
  return nullptr;
}

// Erf(x / √2) or Erf(x · 1/√2): x, or "".
std::string erf_argument(const Matcher& m, const Node& erf) {
  if (const Node* d = m.producer(erf.inputs[0], OpKind::div); d && m.is_scalar(d->inputs[1], std::sqrt(2.0f)))
    return d->inputs[0];
  if (const Node* p = m.producer(erf.inputs[0], OpKind::mul)) {
    for (int k = 0; k < 2; ++k)
      if (m.is_scalar(p->inputs[1 - k], std::sqrt(0.5f))) return p->inputs[k];
  }
  return "";
}

// Tanh(√(2/π) · (x + 0.044715 · x³)), x³ as x·(x·x), (x·x)·x or Pow(x, 3): x, or "".
std::string tanh_gelu_argument(const Matcher& m, const Node& tanh) {
  const Node* scaled = m.producer(tanh.inputs[0], OpKind::mul);
  if (scaled == nullptr) return "";
  for (int k = 0; k < 2; ++k) {
    if (!m.is_scalar(scaled->inputs[1 - k], std::sqrt(2.0f / static_cast<float>(M_PI)), 1e-4f)) continue;
    const Node* sum = m.producer(scaled->inputs[k], OpKind::add);
    if (sum == nullptr) return "";
    for (int j = 0; j < 2; ++j) {
      const std::string& x = sum->inputs[j];
      const Node* cubic = m.producer(sum->inputs[1 - j], OpKind::mul);
      if (cubic == nullptr) continue;
      for (int c = 0; c < 2; ++c) {
        if (!m.is_scalar(cubic->inputs[1 - c], 0.044715f, 1e-4f)) continue;
        const std::string& cube = cubic->inputs[c];
        if (const Node* p = m.producer(cube, OpKind::pow); p && p->inputs[0] == x && m.is_scalar(p->inputs[1], 3.0f))
          return x;
        if (const Node* p = m.producer(cube, OpKind::mul)) {
          const std::string sq = Matcher::other(*p, x);
          if (const Node* s = sq.empty() ? nullptr : m.producer(sq, OpKind::mul);
              s && s->inputs[0] == x && s->inputs[1] == x)
            return x;
        }
      }
    }
  }
  return "";
}

Node make_node(OpKind op, const Node& replaced, std::vector<std::string> inputs) {
  return Node{.op = op, .name = replaced.name, .inputs = std::move(inputs), .outputs = {replaced.outputs[0]}, .attributes = {}};
}

// (x - mean(x)) / sqrt(mean((x - mean(x))²) + eps) [· gamma] [+ beta], the
// mean over the last axis, from the normalising Div: the LayerNormalization
// replacing the last node, or nullopt.
std::optional<std::pair<size_t, Node>> layer_norm(Graph& g, const Matcher& m, const Node& div) {
  const Node* sub = m.producer(div.inputs[0], OpKind::sub);
  const Node* root = m.producer(div.inputs[1], OpKind::sqrt);
  if (sub == nullptr || root == nullptr) return std::nullopt;
  const std::string& x = sub->inputs[0];
  const std::string& d = div.inputs[0];  // x - mean
  const Node* mean = m.producer(sub->inputs[1], OpKind::reduce_mean);
  if (mean == nullptr || mean->inputs[0] != x || !m.last_axis_mean(*mean)) return std::nullopt;
  const Node* plus_eps = m.producer(root->inputs[0], OpKind::add);
  if (plus_eps == nullptr) return std::nullopt;
  std::optional<float> eps;
  const Node* variance = nullptr;
  for (int k = 0; k < 2 && !variance; ++k) {
    eps = m.scalar(plus_eps->inputs[1 - k]);
    variance = eps ? m.producer(plus_eps->inputs[k], OpKind::reduce_mean) : nullptr;
  }
  if (variance == nullptr || !m.last_axis_mean(*variance)) return std::nullopt;
  const Node* square = m.producer(variance->inputs[0], OpKind::pow);
  if (square != nullptr ? square->inputs[0] != d || !m.is_scalar(square->inputs[1], 2.0f) : false) return std::nullopt;
  if (square == nullptr) {
    square = m.producer(variance->inputs[0], OpKind::mul);
    if (square == nullptr || square->inputs[0] != d || square->inputs[1] != d) return std::nullopt;
  }
  // The affine tail: a Mul by a constant of the last axis' length, then an Add of one.
  const int64_t n = g.values.at(x).shape.back();
  auto per_feature = [&](const std::string& v) {
    const Tensor* t = g.constant(v);
    return t != nullptr && t->dtype() == autograd::Dtype::f32 && t->numel() == n && t->dim() >= 1 && t->size(-1) == n;
  };
  const Node* last = &div;
  std::string gamma, beta;
  if (const Node* scale = m.sole_consumer(last->outputs[0], OpKind::mul)) {
    if (const std::string o = Matcher::other(*scale, last->outputs[0]); per_feature(o)) gamma = o, last = scale;
  }
  if (!gamma.empty()) {
    if (const Node* shift = m.sole_consumer(last->outputs[0], OpKind::add)) {
      if (const std::string o = Matcher::other(*shift, last->outputs[0]); per_feature(o)) beta = o, last = shift;
    }
  }
  auto constant = [&](const std::string& name, const std::string& from, float fill) {
    const std::string made = last->name + name;
    g.initializers[made] = from.empty() ? Tensor::full({n}, fill) : g.constant(from)->reshape({n}).clone();
    return made;
  };
  Node ln = make_node(OpKind::layer_norm, *last, {x, constant(".ln_scale", gamma, 1.0f), constant(".ln_bias", beta, 0.0f)});
  ln.attributes["axis"] = int64_t{-1};
  ln.attributes["epsilon"] = static_cast<double>(*eps);
  return std::make_pair(m.at(*last), std::move(ln));
}

}  // namespace

void fuse_patterns(Graph& graph) {
  graph.infer_shapes();
  std::vector<std::pair<size_t, Node>> replacements;
  {
    const Matcher m(graph);
    for (const Node& n : graph.nodes) {
      if (n.op == OpKind::div) {
        if (auto r = layer_norm(graph, m, n)) replacements.push_back(std::move(*r));
      } else if (n.op == OpKind::erf || n.op == OpKind::tanh) {
        const std::string x = n.op == OpKind::erf ? erf_argument(m, n) : tanh_gelu_argument(m, n);
        if (x.empty()) continue;
        if (const Node* last = gelu_tail(m, n, x)) {
          Node gelu = make_node(OpKind::gelu, *last, {x});
          gelu.attributes["approximate"] = std::string(n.op == OpKind::erf ? "none" : "tanh");
          replacements.emplace_back(m.at(*last), std::move(gelu));
        }
      }
    }
  }
  if (replacements.empty()) return;
  for (auto& [at, node] : replacements) graph.nodes[at] = std::move(node);
  drop_dead_nodes(graph);
}

}  // namespace neurite::engine::detail
