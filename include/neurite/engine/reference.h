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
// Folds what is known before run time: Constant nodes, shape arithmetic
// (Shape of a value whose sizes are fixed, and picks of the fixed sizes from
// one whose batch is dynamic) and every node whose inputs are all such
// constants, into initializers; drops initializers nothing reads. Float
// weights are left as they are (a Transpose of a weight stays a node), so a
// traced model's graph keeps its parameters' names; import calls it so.
// `fold_weights` folds nodes that read float weights too (the engine's pass).
void fold_constants(Graph& graph, bool fold_weights = false);

std::map<std::string, Tensor> run_reference(const Graph& graph, const std::map<std::string, Tensor>& inputs);

}  // namespace neurite::engine
