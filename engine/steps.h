// The plan's step kinds: a fused convolution or linear layer, row kernels,
// copies, batched products, pooling, and graph nodes run as the reference
// executor runs them. engine/compile.cpp makes them, engine/engine.cpp runs them.
#pragma once

#include <memory>
#include <vector>

#include "engine/kernels.h"
#include "engine/plan.h"
#include "engine/qdq.h"
#include "neurite/kernels/int8.h"
#include "neurite/kernels/elementwise.h"
#include "neurite/kernels/gemm.h"

namespace neurite::engine::detail {

class ConvStep : public Step {
 public:
  std::unique_ptr<PackedConv> packed;
  std::unique_ptr<DenseConv> dense;
  int64_t tile_images = 1;  // images per run_slice tile of the packed kernel
  // The dense kernel's channel-blocked buffers (value ids, -1: none): its own
  // output, and the producers' outputs it reads instead of the plain ones.
  int y_blocked = -1, x_blocked = -1, residual_blocked = -1;

  const float* x(Values& v) const;
  const float* res(Values& v) const;
  float* y(Values& v) const;
  DenseConvBuffers dense_buffers(Values& v) const;

  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
  void run_band(Values& v, int64_t b0, int64_t b1, int64_t r0, int64_t r1) override;
};

// A step whose work splits into units (rows, matrices, images, batch items),
// a fixed number per batch item: run covers them all, run_slice a slice's.
class UnitStep : public Step {
 public:
  int64_t units = 0, units_per_item = 1;
  // Units [u0, u1); threads > 1 splits them.
  virtual void run_units(Values& v, int64_t u0, int64_t u1, int threads) const = 0;
  void run(Values& v, int threads) override { run_units(v, 0, units, threads); }
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override {
    run_units(v, b0 * units_per_item, b1 * units_per_item, threads);
  }
};

// Units: rows of the (M, K) view of the input.
class LinearStep : public UnitStep {
 public:
  std::unique_ptr<LinearKernel> kernel;
  bool in_fm = false, out_fm = false;  // feature-major input / output (link_feature_major)

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Softmax, LayerNormalization or a mean over the contiguous last axis (or axes).
// Units: rows of n floats.
class RowStep : public UnitStep {
 public:
  enum class Kind { softmax, layer_norm, mean } kind = Kind::softmax;
  int64_t n = 1;
  std::vector<float> scale, bias;
  float epsilon = 1e-5f;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// A mean over consecutive axes before the last: x viewed as (outer,
// reduced, inner) into (outer, inner). Units: outer items.
class MeanAxesStep : public UnitStep {
 public:
  int64_t reduced = 1, inner = 1;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Transpose or Slice: copies of contiguous runs (strided reads where the
// last axis moved or steps). Units: items of the output's first axis.
class CopyStep : public UnitStep {
 public:
  Shape in_shape, out_shape;
  int64_t axis = -1, start = 0;  // a Slice of one axis with step 1: whole runs
  // Otherwise out[i...] = in[offset + Σ i_d · strides[d]]: a Transpose (its
  // strides permuted) or a Slice of several axes or steps.
  int64_t offset = 0;
  std::vector<int64_t> strides;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
  void run(Values& v, int threads) override;  // a slice of axis 0 is a view
};

// MatMul of two activations (B..., M, K) x (B..., K, N), batch dimensions
// equal: one single-threaded sgemm per matrix, matrices in parallel. The
// operands and the result are strided views (engine/views.h), so the head
// reshapes, transposes and scalings around attention cost no pass of their
// own: each matrix is an offset and a leading dimension. Units: matrices.
class BatchedMatMulStep : public UnitStep {
 public:
  kernels::GemmShape shape{};
  float alpha = 1;
  int64_t lda = 0, ldb = 0, ldc = 0;
  std::vector<int64_t> a_at, b_at, c_at;  // per matrix: its offset in each buffer

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Attention: MatMul(Q, Kᵀ) [times a constant] [plus a mask], Softmax over
// its last axis, MatMul with V, as one step. Each matrix's scores stay in a scratch of the calling thread
// (m x n floats) instead of a pass through memory per op. Units: matrices.
class AttentionStep : public UnitStep {
 public:
  BatchedMatMulStep scores, values;  // Q·Kᵀ into the scratch; scratch·V into the output
  // A mask added to the (scaled) scores: its value id (-1: none), each
  // matrix's offset in it and its row stride (0: one row for all).
  int mask = -1;
  std::vector<int64_t> mask_at;
  int64_t mask_row_stride = 0;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Gather of rows along axis 0 of a float table (an embedding lookup) by
// int64 indices, negative ones counting from the end. Units: indices.
class GatherRowsStep : public UnitStep {
 public:
  int64_t rows = 0, row = 1;  // the table's rows and floats per row

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Concat of float tensors along one axis: per item of the axes before it,
// each input's run copied in turn. Units: items of the axes before the axis.
class ConcatStep : public UnitStep {
 public:
  std::vector<int64_t> runs;  // per input: floats per unit (its extent along the axis times the inner size)

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// MaxPool / AveragePool over NCHW planes. Units: images.
class PoolStep : public UnitStep {
 public:
  ConvGeometry geo;
  bool is_max = true, include_pad = false;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Ops over masks and indices (int64, bool held as 0/1 in int64) or mixing
// them with floats: what exporters write around attention and padding masks.
enum class TypedOp : uint8_t { where, equal, logical_not, cast, expand };

// An elementwise op over numpy-broadcast tensors: a float unary or binary map,
// or a typed op of one to three operands. The output's dimensions are
// collapsed where every input broadcasts alike (the first, the batch, kept
// apart), so each input is read along the last dimension either as a
// contiguous run or as one repeated value. Units: chunks of at most kChunk
// elements of the rows of that last dimension.
class ElementwiseStep : public UnitStep {
 public:
  static constexpr int64_t kChunk = 8192;
  enum class Kind : uint8_t { unary, binary, typed } kind = Kind::unary;
  kernels::Unary unary;
  kernels::BinaryOp binary = kernels::BinaryOp::add;
  TypedOp typed = TypedOp::where;
  bool to_bool = false;                       // a cast to bool: nonzero becomes 1
  std::vector<autograd::Dtype> types;         // per input, then the output
  std::vector<int64_t> dims;                  // collapsed output dimensions
  std::vector<std::vector<int64_t>> strides;  // per input and dimension; 0 where it broadcasts
  int64_t chunks_per_row = 1;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// DequantizeLinear(QuantizeLinear(x)) on the same grids, in one float pass.
// Units: items of the first axis (the grids' axis is another).
class FakeQuantizeStep : public UnitStep {
 public:
  QdqGrids grids;  // their axis counted within an item
  Shape item;      // an item's shape

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Gemm or MatMul on 8-bit grids: x quantised on its grid to uint8 quads,
// int8 weights in 1x4 groups, exact int32 sums (neurite/kernels/int8.h), then
// in float the scales, bias, residual and activation. Units: rows of the
// (M, K) view of the input.
class Int8LinearStep : public UnitStep {
 public:
  kernels::Int8Groups weight;  // (N, K)
  std::vector<float> scale;    // per output feature: x's scale times its weight scale
  kernels::QuantGrid x_grid;
  Fused fused;
  kernels::Isa isa = kernels::Isa::reference;

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// Conv (groups 1) on 8-bit grids without copies of its input: each image
// quantised once into zero-point-padded planes of four channels interleaved,
// one plane per stride phase (for stride 2: even and odd rows and columns),
// and each (tap, channel quad) of the weight reading its phase's plane
// shifted by the tap (kernels::int8_gemm's quad offsets). Items are output
// pixels on the phase planes' width (the columns past the output's are
// computed and dropped). Units: images.
class Int8ConvStep : public UnitStep {
 public:
  kernels::Int8Groups weight;        // (F, taps · channel quads · 4)
  std::vector<int64_t> quad_offset;  // per (tap, channel quad): phase plane and shift
  std::vector<float> scale;          // per feature: x's scale times its weight scale
  kernels::QuantGrid x_grid;
  Fused fused;
  kernels::Isa isa = kernels::Isa::reference;
  int64_t channels = 0, height = 0, width = 0, pad_top = 0, pad_left = 0, stride_h = 1, stride_w = 1;
  int64_t phase_width = 0, out_h = 0, out_w = 0;
  int64_t items = 0;  // out_h · phase_width, whole vectors of 16
  int64_t plane = 0;  // items of one channel quad's phase plane

  void run_units(Values& v, int64_t u0, int64_t u1, int threads) const override;
};

// A node the engine has no kernel for, run as the reference executor runs it.
class NodeStep : public Step {
 public:
  Node node;
  std::vector<bool> sliced;      // per input: batch-major, cut to the slice
  int shape_input = -1;          // Reshape, Expand, Resize: the output's shape, rewritten per slice
  Shape out_shape;               // of output 0

  void run(Values& v, int) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int) override;
};

}  // namespace neurite::engine::detail
