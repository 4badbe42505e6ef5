// Strided views: a value that a chain of layout ops (Transpose, Reshape,
// Slice, Squeeze, Unsqueeze, Identity) and scalings (Mul or Div by a scalar)
// computes from another value's buffer, read in place instead of copied.
// Batched products read their operands and write their result through views,
// which folds away the head reshapes and transposes exporters write around
// attention.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

struct Lowering;

// One run of elements along a dimension: `size` steps of `stride` elements.
struct Axis {
  int64_t size, stride;
};

struct StridedView {
  std::string base;  // the value whose buffer holds the elements
  int64_t offset = 0;
  // Per dimension of the value, its axes, outer first: a dimension that a
  // reshape merged from axes of unequal strides (heads of several items) has
  // more than one. An empty list: a dimension of size 1.
  std::vector<std::vector<Axis>> dims;
  float scale = 1;            // the factor the chain's scalings multiplied by
  std::vector<size_t> nodes;  // the chain's nodes (graph indices), folded into the reader

  int64_t size(size_t d) const;
  // The dimension's one stride; nullopt when it has several axes.
  std::optional<int64_t> stride(size_t d) const;
};

// One sliced axis of a Slice with constant starts, axes and steps: where it
// starts (clamped to the axis) and its step.
struct SlicedAxis {
  size_t axis;
  int64_t start, step;
};
// The axes node n (a Slice) cuts from a tensor of shape `in`; nullopt when its
// starts, axes or steps are not constants or a step is below 1.
std::optional<std::vector<SlicedAxis>> constant_slice(const Graph& g, const Node& n, const Shape& in);

// A batched product's operands and result.
struct BatchedViews {
  StridedView a, b, c;
};

// `value` as a view of the buffer furthest back that a chain of layout ops
// and scalings, each value of it read by the next alone, leads to; the value
// itself (no nodes) when none does.
StridedView read_view(const Lowering& l, const std::string& value);

// `value` itself, contiguous.
StridedView read_view_of_itself(const Lowering& l, const std::string& value);

// Where a product writing `value` (shape `dims`) may write instead: into the
// output of the Transpose that alone reads it, with that Transpose's strides
// inverted. nullopt when no such Transpose keeps the last axis last.
std::optional<StridedView> write_view(const Lowering& l, const std::string& value);

}  // namespace neurite::engine::detail
