// neurite/engine/reference.h — the plain reference executor: runs a Graph
// node by node on the autograd ops, with no gradients and no planning. The
// engine's compiled plans are checked against it.
//
//   auto outputs = engine::run_reference(graph, {{"input", x}});   // name -> tensor, the graph's outputs
#pragma once

#include <map>
#include <string>

#include "neurite/engine/graph.h"

namespace neurite::engine {

// Every graph input must be given, with its type and the fixed dimensions of
// its shape (ShapeError naming the input otherwise). Returns the outputs by name.
// Throws ShapeError or ValueError naming the node whose inputs do not fit it.
std::map<std::string, Tensor> run_reference(const Graph& graph, const std::map<std::string, Tensor>& inputs);

}  // namespace neurite::engine
