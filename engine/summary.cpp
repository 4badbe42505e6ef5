// summarize: a model's layers with weights, read off its trace.
#include <fmt/format.h>

#include <algorithm>

#include "neurite/engine/trace.h"

namespace neurite::engine {

ModelSummary summarize(layers::UnaryModule& module, const Tensor& example) {
  Graph g = trace(module, example, {.dynamic_batch = false});
  g.infer_shapes();
  ModelSummary s;
  s.parameters = module.parameter_count();
  for (const Node& n : g.nodes) {
    if (n.op != OpKind::conv && n.op != OpKind::gemm && n.op != OpKind::matmul) continue;
    const auto w = g.initializers.find(n.inputs.size() > 1 ? n.inputs[1] : "");
    if (w == g.initializers.end() || w->second.dim() < 2 || w->second.dtype() != autograd::Dtype::f32) continue;
    const Tensor& weight = w->second;
    LayerSummary l;
    l.name = w->first.ends_with(".weight") ? w->first.substr(0, w->first.size() - 7) : w->first;
    l.op = std::string(op_info(n.op).onnx);
    l.output = g.values.at(n.outputs[0]).shape;
    l.parameters = weight.numel();
    if (n.inputs.size() > 2 && g.initializers.count(n.inputs[2])) l.parameters += g.initializers.at(n.inputs[2]).numel();
    // Multiply-adds per output element: a conv's window (in/groups x kh x kw), a product's shared dimension.
    const int64_t per_output = n.op == OpKind::conv     ? weight.numel() / weight.size(0)
                               : n.op == OpKind::gemm   ? (n.integer("transB", 0) != 0 ? weight.size(1) : weight.size(0))
                                                        : weight.size(0);
    l.flops = 2.0 * static_cast<double>(autograd::numel(l.output)) * static_cast<double>(per_output);
    const float* p = weight.data<float>();
    l.sparsity = static_cast<double>(std::count(p, p + weight.numel(), 0.0f)) / static_cast<double>(weight.numel());
    s.flops += l.flops;
    s.sparse_flops += l.flops * (1 - l.sparsity);
    s.layers.push_back(l);
  }
  return s;
}

std::string ModelSummary::to_string() const {
  std::string out = fmt::format("{:<32} {:<6} {:>18} {:>12} {:>12} {:>9}\n", "layer", "op", "output", "parameters",
                                "MFLOPs", "sparsity");
  for (const LayerSummary& l : layers)
    out += fmt::format("{:<32} {:<6} {:>18} {:>12} {:>12.3f} {:>8.1f}%\n", l.name, l.op, autograd::to_string(l.output),
                       l.parameters, l.flops / 1e6, 100 * l.sparsity);
  out += fmt::format("{} parameters; {:.3f} MFLOPs per batch dense, {:.3f} with the zeros skipped ({:.2f}x fewer)\n",
                     parameters, flops / 1e6, sparse_flops / 1e6, sparse_flops > 0 ? flops / sparse_flops : 0.0);
  return out;
}

}  // namespace neurite::engine
