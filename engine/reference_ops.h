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
// GraphModule's training forward (engine/autograd_ops.cpp).
autograd::Variable conv(const Node& n, const autograd::Variable& x, const autograd::Variable& weight,
                        const autograd::Variable& bias);
autograd::Variable pool(const Node& n, const autograd::Variable& x);
// Pad with its pads, constant value and axes (all axes when empty) read from the node's inputs.
autograd::Variable pad(const Node& n, const autograd::Variable& x, const std::vector<int64_t>& pads, float value,
                       const std::vector<int64_t>& axes);
// Resize (nearest or linear, along every axis) to `sizes`, or by `scales` when sizes is empty.
autograd::Variable resize(const Node& n, const autograd::Variable& x, const std::vector<float>& scales,
                          const Shape& sizes);
// Any Reduce* node over `axes` (its input or attribute; empty: all, or none with noop_with_empty_axes).
autograd::Variable reduce(const Node& n, const autograd::Variable& x, const std::vector<int64_t>& axes);
// The axes a reduction runs over: non-negative, sorted, each once; all when `axes` is empty.
std::vector<int64_t> reduced_axes(const Node& n, std::vector<int64_t> axes, int64_t rank);

}  // namespace neurite::engine::detail
