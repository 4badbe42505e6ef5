// The engine's layer kernels: convolution and linear layers with their bias,
// residual add and activation fused, over a weight packed dense or sparse.
// Each runs a tile — images [b0, b1) and output rows [r0, r1) for a
// convolution, rows [m0, m1) of the batch for a linear layer — on the calling
// thread, or over whole tensors in parallel (layers mode).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "neurite/engine/engine.h"
#include "neurite/kernels/layout.h"
#include "neurite/kernels/rows.h"
#include "neurite/kernels/sparse.h"

namespace neurite::engine::detail {

using kernels::Activation;
using kernels::BlockSparse;
using kernels::ConvGeometry;
using kernels::PackedWeight;
using kernels::WeightFormat;

struct Fused {
  std::vector<float> bias;  // per output feature; empty: none
  bool residual = false;    // adds a tensor of the output's shape
  Activation activation = Activation::none;
};

// A convolution (groups 1) as a direct sparse-times-dense product over phase
// planes of the padded input (neurite/kernels/layout.h).
class PackedConv {
 public:
  PackedConv(const ConvGeometry& g, PackedWeight w, Fused fused, kernels::Isa isa);
  // Output rows [r0, r1) of images [b0, b1) of y (N, F, OH, OW), on this thread.
  void run_tile(const float* x, const float* residual, float* y, int64_t b0, int64_t b1, int64_t r0, int64_t r1) const;
  // All of y, in parallel.
  void run(const float* x, const float* residual, float* y) const;
  const ConvGeometry& geometry() const { return g_; }
  const PackedWeight& weight() const { return w_; }
  // Bytes a tile of `images` x `rows` output rows touches: input window, planes, output.
  int64_t tile_bytes(int64_t images, int64_t rows) const;

 private:
  ConvGeometry g_;
  PackedWeight w_;
  Fused fused_;
  kernels::Isa isa_;
};

// A convolution by oneDNN (any groups), image by image on oneTBB, each
// primitive single-threaded: oneDNN's own OpenMP threads would fight
// oneTBB's for the cores. Its output is kept channel-blocked (nChw16c) when
// the filters allow, and read blocked by the DenseConvs after it, so a chain
// of them reorders only at its ends. A batch smaller than the threads splits
// the filters instead, in halves of whole 16-channel blocks (an image of 16
// filters runs on one thread: splitting its rows cost more than it gained).
// One call's buffers: the plain NCHW input, residual and output, and the
// channel-blocked ones chained convolutions hand over (null where unused).
struct DenseConvBuffers {
  const float* x = nullptr;
  const float* residual = nullptr;
  float* y = nullptr;
  float* y_blocked = nullptr;               // this conv's output in its blocked layout, when it writes one
  const float* x_blocked = nullptr;         // the producer's blocked output, when reading the input blocked
  const float* residual_blocked = nullptr;  // likewise for the residual
};

class DenseConv {
 public:
  DenseConv(const ConvGeometry& g, int64_t groups, const float* weight, Fused fused, int threads);
  ~DenseConv();
  // Whether the input (residual) may arrive as `producer`'s blocked output,
  // and from now on does when it may; returns whether it does.
  bool read_input_from(const DenseConv& producer);
  bool read_residual_from(const DenseConv& producer);
  // Whether anything reads the output in plain NCHW (default true).
  void write_plain(bool on) { write_plain_ = on; }
  bool reads_blocked_input() const { return blocked_input_; }
  bool reads_blocked_residual() const { return blocked_residual_; }
  // Floats of the blocked output buffer a call needs (0: it writes plain NCHW only).
  int64_t blocked_output_size() const;
  // Images [b0, b1); threads > 1 runs them (or filter parts) in parallel.
  void run(const DenseConvBuffers& io, int64_t b0, int64_t b1, int threads);
  const ConvGeometry& geometry() const { return g_; }

 private:
  struct Primitives;
  struct Variant;
  Variant& variant(int64_t images);
  const float* source(const DenseConvBuffers& io, int64_t n, int64_t images, Variant& v);
  float* destination(const DenseConvBuffers& io, int64_t n, int64_t images, Variant& v);
  void write_plain_output(const float* dst, float* y, int64_t n, Variant& v);
  void run_call(const DenseConvBuffers& io, int64_t n, int64_t images);
  std::unique_ptr<Primitives> p_;
  ConvGeometry g_;
  Fused fused_;
  bool blocked_input_ = false, blocked_residual_ = false;
  bool write_plain_ = true;
};

// y (M, N) = act(x (M, K) · Wᵀ + bias + residual) for W (N, K).
class LinearKernel {
 public:
  static constexpr int64_t kFewRows = 4;  // up to this many rows: dot products per feature (sparse_rows)
  LinearKernel(int64_t in_features, int64_t out_features, const float* weight, WeightFormat format, Fused fused,
               kernels::Isa isa);
  // Rows [m0, m1) of the batch; threads > 1 splits the work.
  void run(const float* x, const float* residual, float* y, int64_t m0, int64_t m1, int threads) const;
  // Sparse forms only: read x, or write y, feature-major — (features, ld) with
  // ld = kernels::feature_major_ld(rows) for the batch's `rows` — as the next or
  // previous sparse layer of a chain does, skipping two transposes.
  void set_feature_major(bool input, bool output, int64_t rows);
  int64_t in_features() const { return k_; }
  int64_t out_features() const { return n_; }
  // Rows of a feature-major output: the features padded to whole blocks, which the product writes.
  int64_t feature_major_rows() const { return format_ == WeightFormat::dense ? n_ : sparse_.pattern.rows; }
  WeightFormat format() const { return format_; }
  double density() const { return density_; }

 private:
  int64_t k_, n_;
  WeightFormat format_;
  double density_;
  int64_t ld_ = 0;
  std::vector<float> dense_;  // Wᵀ (K, ld_) for dense
  void sparse_chunk(const float* x, const float* residual, float* y, int64_t m0, int64_t m1, int threads) const;
  void sparse_rows(const float* x, const float* residual, float* y, int64_t m0, int64_t m1, int threads) const;
  void finish_rows(float* ys, const float* res, int64_t m, int threads) const;
  PackedWeight sparse_;
  Fused fused_;
  kernels::Isa isa_;
  bool fm_in_ = false, fm_out_ = false;
  int64_t fm_ld_ = 0;
};


// Max or average pooling of planes [p0, p1) of x (planes, H, W) into y
// (planes, OH, OW); `g` gives sizes, kernel, strides and pads (channels and
// filters unused). Average divides by the window's inputs inside the image
// unless include_pad.
void pool_planes(const ConvGeometry& g, bool is_max, bool include_pad, const float* x, float* y, int64_t p0,
                 int64_t p1);

}  // namespace neurite::engine::detail
