// The reference executor's one op switch, for the engine's steps that run a
// node as the reference executor does.
#pragma once

#include <vector>

#include "neurite/autograd/variable.h"
#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

// The outputs of node n for inputs `in` (undefined tensors for optional
// inputs left out). Throws ValueError or ShapeError naming the node.
std::vector<Tensor> run_node(const Node& n, const std::vector<Tensor>& in);

// Conv, MaxPool and AveragePool as ONNX defines them (1-D or 2-D, any pads,
// ceil_mode) on the autograd ops, for the reference executor and for
// GraphModule's training forward (engine/window_ops.cpp).
autograd::Variable conv(const Node& n, const autograd::Variable& x, const autograd::Variable& weight,
                        const autograd::Variable& bias);
autograd::Variable pool(const Node& n, const autograd::Variable& x);

}  // namespace neurite::engine::detail
