// The plan's step kinds: a fused convolution or linear layer, row kernels,
// copies, batched products, pooling, and graph nodes run as the reference
// executor runs them. engine/compile.cpp makes them, engine/engine.cpp runs them.
#pragma once

#include <memory>
#include <vector>

#include "engine/kernels.h"
#include "engine/plan.h"

namespace neurite::engine::detail {

class ConvStep : public Step {
 public:
  std::unique_ptr<PackedConv> packed;
  std::unique_ptr<DenseConv> dense;
  int64_t tile_images = 1;  // images per run_slice tile of the packed kernel

  const float* x(Values& v) const;
  const float* res(Values& v) const;
  float* y(Values& v) const;

  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
  void run_band(Values& v, int64_t b0, int64_t b1, int64_t r0, int64_t r1) override;
};

class LinearStep : public Step {
 public:
  std::unique_ptr<LinearKernel> kernel;
  int64_t rows_per_item = 1;  // rows of the (M, K) view per batch item
  int64_t total_rows = 0;             // of the whole batch
  bool in_fm = false, out_fm = false;  // feature-major input / output (link_feature_major)

  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
};

// Softmax, LayerNormalization or a mean over the contiguous last axis (or axes).
class RowStep : public Step {
 public:
  enum class Kind { softmax, layer_norm, mean } kind = Kind::softmax;
  int64_t n = 1, rows_per_item = 1;
  std::vector<float> scale, bias;
  float epsilon = 1e-5f;

  void rows(Values& v, int64_t r0, int64_t r1, int threads) const;
  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
};

// Transpose that keeps the last axis in place, or Slice of one axis with
// step 1: copies of contiguous runs, computed per batch item.
class CopyStep : public Step {
 public:
  Shape in_shape, out_shape;
  std::vector<int64_t> perm;    // Transpose
  int64_t axis = -1, start = 0;  // Slice

  void items(Values& v, int64_t b0, int64_t b1, int threads) const;
  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
};

// MatMul of two activations (B..., M, K) x (B..., K, N), batch dimensions
// equal: one single-threaded sgemm per matrix, matrices in parallel. A
// Transpose of B's last two axes that only this reads is folded in (transB).
class BatchedMatMulStep : public Step {
 public:
  int64_t batch = 1, m = 1, n = 1, k = 1, items_per_batch = 1;
  bool trans_b = false;

  void matrices(Values& v, int64_t i0, int64_t i1, int threads) const;
  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
};

// MaxPool / AveragePool over NCHW planes.
class PoolStep : public Step {
 public:
  ConvGeometry geo;
  bool is_max = true, include_pad = false;

  void planes(Values& v, int64_t b0, int64_t b1, int threads) const;
  void run(Values& v, int threads) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int threads) override;
};

// A node the engine has no kernel for, run as the reference executor runs it.
class NodeStep : public Step {
 public:
  Node node;
  std::vector<bool> sliced;      // per input: batch-major, cut to the slice
  int shape_input = -1;          // Reshape / Expand: the shape input, rewritten per slice
  Shape out_shape;               // of output 0

  void run(Values& v, int) override;
  void run_slice(Values& v, int64_t b0, int64_t b1, int) override;
};

}  // namespace neurite::engine::detail
