// Constant folding: every node whose inputs are known before run time is
// run once by the reference executor and becomes an initializer.
#include <set>

#include "engine/reference_ops.h"
#include "engine/reference_values.h"
#include "neurite/autograd/ops.h"
#include "neurite/engine/reference.h"
#include "neurite/error.h"

namespace neurite::engine {

using detail::ints_shape;
using autograd::Dtype;

void fold_constants(Graph& graph, bool fold_weights) {
  graph.validate();
  bool shapes_known = true;
  try {
    graph.infer_shapes();
  } catch (const Error&) {
    shapes_known = false;  // fold what needs no shapes
  }
  autograd::NoGradGuard no_grad;
  std::map<std::string, Tensor> known;    // values known before run time
  std::map<std::string, Tensor> partial;  // Shape outputs with -1 for sizes known only at run time
  std::set<std::string> weights;          // float initializers: left to the engine's own passes
  for (const auto& [name, t] : graph.initializers) {
    known[name] = t;
    if (t.dtype() == Dtype::f32 && t.dim() >= 1 && !fold_weights) weights.insert(name);
  }
  std::vector<bool> folded(graph.nodes.size(), false);
  for (size_t i : graph.topological_order()) {
    const Node& n = graph.nodes[i];
    std::vector<Tensor> in;
    bool all_known = true, reads_weight = false, reads_partial = false;
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        in.emplace_back();
      } else if (known.count(name) != 0) {
        in.push_back(known.at(name));
        reads_weight = reads_weight || weights.count(name) != 0;
      } else if (partial.count(name) != 0) {
        in.push_back(partial.at(name));
        reads_partial = true;
      } else {
        all_known = false;
      }
    }
    std::vector<Tensor> out;
    if (n.op != OpKind::shape && (!all_known || reads_weight)) continue;
    if (n.op == OpKind::shape) {  // needs only its input's shape
      if (!shapes_known) continue;
      Tensor dims = ints_shape(graph.values.at(n.inputs[0]).shape, n);
      if (std::any_of(dims.data<int64_t>(), dims.data<int64_t>() + dims.numel(), [](int64_t d) { return d < 0; })) {
        partial[n.outputs[0]] = dims;
        continue;
      }
      out = {dims};
    } else {
      if (reads_partial && n.op != OpKind::gather && n.op != OpKind::slice) continue;
      out = detail::run_node(n, in);
      if (reads_partial) {  // a pick from a partly known shape: known if it picked no run-time size
        const Tensor& t = out.at(0);
        if (std::any_of(t.data<int64_t>(), t.data<int64_t>() + t.numel(), [](int64_t d) { return d < 0; })) continue;
      }
    }
    folded[i] = true;
    for (size_t k = 0; k < n.outputs.size() && k < out.size(); ++k)
      if (!n.outputs[k].empty()) known[n.outputs[k]] = out[k];
  }
  // Keep the unfolded nodes; their constant inputs become initializers, unread initializers go.
  std::vector<Node> nodes;
  std::set<std::string> read;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!folded[i]) {
      nodes.push_back(graph.nodes[i]);
      read.insert(graph.nodes[i].inputs.begin(), graph.nodes[i].inputs.end());
    }
  for (const ValueInfo& v : graph.outputs) read.insert(v.name);
  std::map<std::string, Tensor> initializers;
  for (const std::string& name : read)
    if (auto it = known.find(name); it != known.end()) initializers.emplace(name, it->second);
  graph.nodes = std::move(nodes);
  graph.initializers = std::move(initializers);
  graph.values.clear();
}

}  // namespace neurite::engine
