// QuantizeLinear and DequantizeLinear as ONNX defines them (opset 13): a
// node's grids, checked, and the loops the reference executor and the
// engine's steps share (the arithmetic is neurite/kernels/quantize.h's).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "neurite/engine/graph.h"
#include "neurite/kernels/quantize.h"

namespace neurite::engine::detail {

struct QdqGrids {
  int64_t axis = -1;  // -1: one grid for the whole tensor
  autograd::Dtype type = autograd::Dtype::u8;  // of the quantised values: int8 or uint8
  std::vector<kernels::QuantGrid> grids;       // one, or one per index of axis
};

// The grids of node n (a QuantizeLinear or DequantizeLinear) from its scale
// and zero point (undefined: 0 of `type`: uint8 for QuantizeLinear, the
// input's for DequantizeLinear) for an x of `shape`. ValueError naming
// the node: a scale not positive and finite, a zero point of another shape
// than the scale or not 8-bit, per-axis grids that do not match x's axis, or
// an axis outside x.
QdqGrids qdq_grids(const Node& n, const Tensor& scale, const Tensor& zero_point, const Shape& shape,
                   autograd::Dtype type = autograd::Dtype::u8);

Tensor quantize_linear(const QdqGrids& g, const Tensor& x);    // float32 -> int8 or uint8
Tensor dequantize_linear(const QdqGrids& g, const Tensor& q);  // int8 or uint8 -> float32
// DequantizeLinear(QuantizeLinear(x)) in one pass, into y (which may be x).
void fake_quantize(const QdqGrids& g, const float* x, float* y, const Shape& shape);

// ONNX's scale and zero point of a fake quantiser's grids (`scale` float32 and
// `zero_point` int64, one per channel): scalars for one grid, vectors when
// per_axis; the zero point int8 for qmin < 0, else uint8. ValueError naming
// `where` for grids that are not 8-bit ([-128, 127] or [0, 255]).
std::pair<Tensor, Tensor> onnx_grids(const Tensor& scale, const Tensor& zero_point, int64_t qmin, int64_t qmax,
                                     bool per_axis, const std::string& where);

// The same grids on the same axis: a DequantizeLinear that undoes its QuantizeLinear.
bool same_grids(const QdqGrids& a, const QdqGrids& b);

// A constant weight on an int8 grid: DequantizeLinear of an int8 initializer
// or of QuantizeLinear of a float one. Constant folding turns it into floats;
// this is its 8-bit form, for the INT8 kernels, with the floats it folds to
// (a later pass that rewrites the weight, such as batch-norm folding, leaves
// floats that differ: the weight is then float only).
struct QuantizedWeight {
  Tensor q;  // int8
  QdqGrids grids;
  Tensor dequantized;
};
// Every such weight of g, by the DequantizeLinear output's name.
std::map<std::string, QuantizedWeight> quantized_weights(const Graph& g);

}  // namespace neurite::engine::detail
