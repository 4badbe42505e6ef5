// Small graphs the engine tests share.
#pragma once

#include <vector>

#include "neurite/engine/graph.h"

namespace neurite::engine {

inline Tensor ints(std::vector<int64_t> v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, autograd::Dtype::i64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

// A ResNet-style block and classifier: conv - bn - relu - add - pool - flatten - gemm.
inline Graph small_cnn() {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 3, 32, 32}});
  g.initializers.emplace("conv.weight", Tensor::zeros({16, 3, 3, 3}));
  g.initializers.emplace("down.weight", Tensor::zeros({16, 3, 1, 1}));
  for (const char* p : {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"})
    g.initializers.emplace(p, Tensor::zeros({16}));
  g.initializers.emplace("fc.weight", Tensor::zeros({10, 16}));
  g.initializers.emplace("fc.bias", Tensor::zeros({10}));
  // Deliberately out of order: the graph sorts itself.
  g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"flat", "fc.weight", "fc.bias"}, .outputs = {"logits"},
                     .attributes = {{"transB", int64_t{1}}}});
  g.nodes.push_back({.op = OpKind::conv, .name = "conv", .inputs = {"x", "conv.weight"}, .outputs = {"c"},
                     .attributes = {{"kernel_shape", std::vector<int64_t>{3, 3}},
                                    {"pads", std::vector<int64_t>{1, 1, 1, 1}},
                                    {"strides", std::vector<int64_t>{2, 2}}}});
  g.nodes.push_back({.op = OpKind::batch_norm, .name = "bn",
                     .inputs = {"c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}, .outputs = {"b"}});
  g.nodes.push_back({.op = OpKind::relu, .name = "relu", .inputs = {"b"}, .outputs = {"r"}});
  g.nodes.push_back({.op = OpKind::conv, .name = "down", .inputs = {"x", "down.weight"}, .outputs = {"d"},
                     .attributes = {{"strides", std::vector<int64_t>{2, 2}}}});
  g.nodes.push_back({.op = OpKind::add, .name = "add", .inputs = {"r", "d"}, .outputs = {"s"}});
  g.nodes.push_back({.op = OpKind::global_average_pool, .name = "pool", .inputs = {"s"}, .outputs = {"p"}});
  g.nodes.push_back({.op = OpKind::flatten, .name = "flatten", .inputs = {"p"}, .outputs = {"flat"}});
  g.outputs.push_back({"logits"});
  return g;
}

}  // namespace neurite::engine
