// The reference executor's one op switch, for the engine's steps that run a
// node as the reference executor does.
#pragma once

#include <vector>

#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

// The outputs of node n for inputs `in` (undefined tensors for optional
// inputs left out). Throws ValueError or ShapeError naming the node.
std::vector<Tensor> run_node(const Node& n, const std::vector<Tensor>& in);

}  // namespace neurite::engine::detail
