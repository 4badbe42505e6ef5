// Graph-to-graph passes the engine runs before planning. Each keeps the
// graph's outputs as they were, so the reference executor checks it.
#pragma once

#include <map>
#include <string>

#include "engine/qdq.h"
#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

// Gives every input the shape in `shapes`, else its dynamic first dimension
// the size `batch`; infers shapes and folds everything known at compile
// time, weights included. ShapeError naming the input for a shape that does
// not fit, or a dynamic dimension other than the first left unsized.
void specialize(Graph& graph, int64_t batch, const std::map<std::string, Shape>& shapes = {});

// BatchNormalization after a Conv or Gemm whose output only it reads, with
// constant parameters, becomes the Conv's (Gemm's) scaled weight and bias.
// A convolution's int8 weight (`quantized`, engine/qdq.h) takes the batch
// norm into its per-channel scales instead (the int8 values stay, negated
// for a negative factor), and its floats become those of the new grids.
void fold_batch_norm(Graph& graph, std::map<std::string, QuantizedWeight>* quantized = nullptr);
// A Mul, Div or Add of a per-channel constant after a Conv whose output only
// it reads becomes the Conv's weight and bias (an int8 weight's grids, as
// above): what PyTorch's QAT export writes between a convolution and its
// batch norm (Conv, Div by the BN factors, Add of the bias, BatchNormalization).
void fold_channel_affine(Graph& graph, std::map<std::string, QuantizedWeight>* quantized = nullptr);

// Rewrites what exporters write from primitives into the ops the engine has
// kernels for (engine/fusion.cpp): LayerNormalization from ReduceMean, Sub,
// Pow (or Mul), Add, Sqrt, Div [, Mul, Add] over the last axis; Gelu from
// its Erf form and its Tanh form. Matching is by structure and constants.
void fuse_patterns(Graph& graph);

// Drops nodes no graph output depends on, and the initializers only they read.
void drop_dead_nodes(Graph& graph);

}  // namespace neurite::engine::detail
