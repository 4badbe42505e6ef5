#include "engine/passes.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "neurite/error.h"
#include "neurite/engine/reference.h"
#include "engine/graph_index.h"

namespace neurite::engine::detail {

void specialize(Graph& graph, int64_t batch, const std::map<std::string, Shape>& shapes) {
  check<ValueError>(batch >= 1, "compile: batch size must be at least 1, got {}", batch);
  for (const auto& named : shapes) {
    const std::string& name = named.first;
    check<ShapeError>(std::any_of(graph.inputs.begin(), graph.inputs.end(), [&](const ValueInfo& v) { return v.name == name; }),
                      "compile: input_shapes names '{}', which is not an input of the graph", name);
  }
  for (ValueInfo& in : graph.inputs) {
    if (auto it = shapes.find(in.name); it != shapes.end()) {
      const Shape& given = it->second;
      bool fits = given.size() == in.shape.size();
      for (size_t d = 0; fits && d < given.size(); ++d) fits = given[d] >= 1 && (in.shape[d] < 0 || in.shape[d] == given[d]);
      check<ShapeError>(fits, "compile: input '{}' is {}, the graph expects {}", in.name, autograd::to_string(given),
                        autograd::to_string(in.shape));
      in.shape = given;
      continue;
    }
    for (size_t d = 0; d < in.shape.size(); ++d)
      if (in.shape[d] < 0) {
        check<ShapeError>(d == 0,
                          "compile: input '{}' {} has a dynamic dimension {}; give its size (CompileOptions::input_shapes, "
                          "neurite bench --shape)",
                          in.name, autograd::to_string(in.shape), d);
        in.shape[d] = batch;
      }
  }
  // Each round's shapes reveal more: a Reshape whose target was computed from
  // a Shape has a known output only after that Shape folded.
  for (size_t before = graph.nodes.size() + 1; graph.nodes.size() < before;) {
    before = graph.nodes.size();
    fold_constants(graph, /*fold_weights=*/true);
  }
  graph.infer_shapes();
}

namespace {

// A weight of `producer` that this pass may rewrite: read by it alone.
Tensor* own_initializer(Graph& graph, const GraphIndex& index, const std::string& name) {
  auto it = graph.initializers.find(name);
  if (it == graph.initializers.end() || it->second.dtype() != autograd::Dtype::f32 || index.readers(name) != 1)
    return nullptr;
  return &it->second;
}

}  // namespace

namespace {

// Multiplies feature f of an int8 weight (F, ...) by factor(f) through its
// grids: per-channel scales times |factor|, the int8 values negated where the
// factor is negative. False (the weight untouched) for zero points other
// than 0 or where a value is -128, which has no negation.
template <typename Factor>
bool fold_into_grids(QuantizedWeight& w, int64_t features, Factor factor) {
  if (w.q.dim() < 1 || w.q.size(0) != features || (w.grids.axis >= 0 && w.grids.axis != 0)) return false;
  for (const kernels::QuantGrid& g : w.grids.grids)
    if (g.zero_point != 0) return false;  // negating q would need the zero point negated too
  const int64_t per_feature = w.q.numel() / features;
  int8_t* q = w.q.data<int8_t>();
  for (int64_t f = 0; f < features; ++f)
    if (factor(f) < 0)
      for (int64_t k = 0; k < per_feature; ++k)
        if (q[f * per_feature + k] == -128) return false;
  w.q = w.q.clone();
  q = w.q.data<int8_t>();
  QdqGrids grids = w.grids;
  grids.axis = 0;
  grids.grids.assign(static_cast<size_t>(features), w.grids.grids[0]);
  for (int64_t f = 0; f < features; ++f) {
    grids.grids[f] = w.grids.grids[w.grids.axis < 0 ? 0 : f];
    const float s = factor(f);
    grids.grids[f].scale *= std::abs(s);
    if (s < 0)
      for (int64_t k = 0; k < per_feature; ++k) q[f * per_feature + k] = static_cast<int8_t>(-q[f * per_feature + k]);
  }
  w.grids = std::move(grids);
  w.dequantized = dequantize_linear(w.grids, w.q);
  return true;
}

}  // namespace

namespace {

// The per-channel values of a constant that broadcasts along axis 1 of an
// (N, F, H, W) output: F values, or one for all; empty otherwise.
std::vector<float> per_channel(const Tensor* c, int64_t features) {
  if (c == nullptr || c->dtype() != autograd::Dtype::f32) return {};
  if (c->numel() == 1) return std::vector<float>(static_cast<size_t>(features), c->data<float>()[0]);
  const Shape& s = c->shape();
  // [F, 1, 1] or [1, F, 1, 1]: F at the fourth axis from the right, ones after.
  if (c->numel() != features || s.size() < 3 || s[s.size() - 3] != features) return {};
  return std::vector<float>(c->data<float>(), c->data<float>() + features);
}

}  // namespace

void fold_channel_affine(Graph& graph, std::map<std::string, QuantizedWeight>* quantized) {
  for (bool changed = true; changed;) {
    changed = false;
    const GraphIndex index(graph);
    for (size_t i = 0; i < graph.nodes.size() && !changed; ++i) {
      const Node& op = graph.nodes[i];
      if (op.op != OpKind::mul && op.op != OpKind::div && op.op != OpKind::add) continue;
      for (size_t side = 0; side < 2 && !changed; ++side) {
        if (op.op == OpKind::div && side == 1) break;  // c / conv is no affine map of the conv
        const auto from = index.producer(op.inputs[side]);
        if (!from || graph.nodes[*from].op != OpKind::conv || index.readers(op.inputs[side]) != 1) continue;
        Node& conv = graph.nodes[*from];
        Tensor* w = own_initializer(graph, index, conv.inputs[1]);
        if (w == nullptr || w->dim() != 4 || conv.integer("group", 1) != 1) continue;
        const int64_t features = w->size(0);
        const std::vector<float> c = per_channel(graph.constant(op.inputs[1 - side]), features);
        if (c.empty()) continue;
        Tensor bias = Tensor::zeros({features});
        if (conv.inputs.size() > 2 && !conv.inputs[2].empty()) {
          Tensor* b = own_initializer(graph, index, conv.inputs[2]);
          if (b == nullptr || b->numel() != features) continue;
          bias = b->clone();
        }
        float* pb = bias.data<float>();
        if (op.op == OpKind::add) {
          for (int64_t f = 0; f < features; ++f) pb[f] += c[f];
        } else {
          auto factor = [&](int64_t f) { return op.op == OpKind::mul ? c[f] : 1.0f / c[f]; };
          auto it = quantized != nullptr ? quantized->find(conv.inputs[1]) : std::map<std::string, QuantizedWeight>::iterator();
          if (quantized != nullptr && it != quantized->end() && fold_into_grids(it->second, features, factor)) {
            *w = it->second.dequantized;
          } else {
            if (quantized != nullptr && it != quantized->end()) quantized->erase(it);  // float from here on
            *w = w->clone();
            const int64_t per_feature = w->numel() / features;
            for (int64_t f = 0; f < features; ++f)
              for (int64_t k = 0; k < per_feature; ++k) w->data<float>()[f * per_feature + k] *= factor(f);
          }
          for (int64_t f = 0; f < features; ++f) pb[f] *= factor(f);
        }
        const std::string bias_name = conv.inputs.size() > 2 && !conv.inputs[2].empty() ? conv.inputs[2] : op.name + ".folded_bias";
        graph.initializers[bias_name] = bias;
        if (conv.inputs.size() < 3) conv.inputs.resize(3);
        conv.inputs[2] = bias_name;
        conv.outputs[0] = op.outputs[0];
        graph.nodes.erase(graph.nodes.begin() + static_cast<std::ptrdiff_t>(i));
        changed = true;
      }
    }
  }
}

void fold_batch_norm(Graph& graph, std::map<std::string, QuantizedWeight>* quantized) {
  const GraphIndex index(graph);
  std::vector<bool> removed(graph.nodes.size(), false);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& bn = graph.nodes[i];
    // Training mode (ONNX's training_mode, or statistics outputs asked for)
    // normalises with the batch's statistics: not foldable.
    if (bn.op != OpKind::batch_norm || bn.outputs.size() != 1 || bn.integer("training_mode", 0) != 0) continue;
    const auto from = index.producer(bn.inputs[0]);
    if (!from || index.readers(bn.inputs[0]) != 1) continue;
    Node& p = graph.nodes[*from];
    const bool is_conv = p.op == OpKind::conv;
    if (!is_conv && !(p.op == OpKind::gemm && !p.integer("transA", 0))) continue;
    std::vector<const Tensor*> stats;
    for (size_t k = 1; k < 5; ++k) stats.push_back(graph.constant(bn.inputs[k]));
    if (std::find(stats.begin(), stats.end(), static_cast<const Tensor*>(nullptr)) != stats.end()) continue;
    Tensor* w = own_initializer(graph, index, p.inputs[1]);
    if (w == nullptr) continue;
    const int64_t features = stats[0]->numel();
    const bool trans_b = !is_conv && p.integer("transB", 0) != 0;
    const int64_t w_features = is_conv || trans_b ? w->size(0) : w->size(1);
    if (w_features != features) continue;
    Tensor bias;
    if (p.inputs.size() > 2 && !p.inputs[2].empty()) {
      Tensor* b = own_initializer(graph, index, p.inputs[2]);
      if (b == nullptr || b->numel() != features) continue;
      bias = b->clone();  // initializers share storage with the caller's graph
    } else {
      bias = Tensor::zeros({features});
    }
    // y = (x·W + b - mean) · s + beta with s = gamma / sqrt(var + eps)
    const double eps = bn.real("epsilon", 1e-5);
    const float *gamma = stats[0]->data<float>(), *beta = stats[1]->data<float>();
    const float *mean = stats[2]->data<float>(), *var = stats[3]->data<float>();
    const float alpha = is_conv ? 1.0f : static_cast<float>(p.real("alpha", 1.0));
    const float bias_scale = is_conv ? 1.0f : static_cast<float>(p.real("beta", 1.0));
    *w = w->clone();
    float* pw = w->data<float>();
    float* pb = bias.data<float>();
    const int64_t per_feature = w->numel() / features;
    auto factor = [&](int64_t f) { return static_cast<float>(gamma[f] / std::sqrt(static_cast<double>(var[f]) + eps)); };
    QuantizedWeight* int8 = nullptr;
    if (auto it = quantized != nullptr && is_conv ? quantized->find(p.inputs[1]) : std::map<std::string, QuantizedWeight>::iterator();
        quantized != nullptr && is_conv && it != quantized->end())
      int8 = fold_into_grids(it->second, features, factor) ? &it->second : nullptr;
    if (int8 != nullptr) *w = int8->dequantized;  // the floats of the new grids: what both paths compute
    for (int64_t f = 0; f < features; ++f) {
      const float s = factor(f);
      if (int8 != nullptr) {
        // the weight took s already
      } else if (is_conv || trans_b) {
        for (int64_t k = 0; k < per_feature; ++k) pw[f * per_feature + k] *= s * alpha;
      } else {
        for (int64_t k = 0; k < per_feature; ++k) pw[k * features + f] *= s * alpha;
      }
      pb[f] = (bias_scale * pb[f] - mean[f]) * s + beta[f];
    }
    std::string bias_name = p.inputs.size() > 2 && !p.inputs[2].empty() ? p.inputs[2] : bn.name + ".folded_bias";
    graph.initializers[bias_name] = bias.reshape({features});
    if (p.inputs.size() < 3) p.inputs.resize(3);
    p.inputs[2] = bias_name;
    if (!is_conv) {
      p.attributes["alpha"] = 1.0;
      p.attributes["beta"] = 1.0;
    }
    p.outputs[0] = bn.outputs[0];
    removed[i] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  drop_dead_nodes(graph);
}

void drop_dead_nodes(Graph& graph) {
  std::set<std::string> live;
  for (const ValueInfo& v : graph.outputs) live.insert(v.name);
  const std::vector<size_t> order = graph.topological_order();
  std::vector<bool> keep(graph.nodes.size(), false);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Node& n = graph.nodes[*it];
    keep[*it] = std::any_of(n.outputs.begin(), n.outputs.end(), [&](const std::string& o) { return live.count(o); });
    if (keep[*it]) live.insert(n.inputs.begin(), n.inputs.end());
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  for (auto it = graph.initializers.begin(); it != graph.initializers.end();)
    it = live.count(it->first) ? std::next(it) : graph.initializers.erase(it);
  graph.values.clear();
}

}  // namespace neurite::engine::detail
