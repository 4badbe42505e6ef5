// Sparse forms of pruned weights and the ops that train them
// (neurite/autograd/sparse.h). The products themselves live in
// kernels/sparse.*; this file lays out their operands.
#include "neurite/autograd/sparse.h"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

#include "neurite/kernels/cache.h"
#include "neurite/kernels/layout.h"
#include "neurite/kernels/rows.h"
#include "neurite/kernels/scratch.h"
#include "neurite/kernels/sparse.h"
#include "neurite/kernels/transpose.h"
#include "neurite/error.h"
#include "neurite/parallel.h"
#include "neurite/autograd/profile.h"

namespace neurite::autograd {

using kernels::BlockSparse;

SparseWeight::~SparseWeight() = default;

namespace {

// True when the (rows, cols) mask divides into whole blocks of `format`, each all kept or all pruned.
bool has_blocks(const float* m, int64_t rows, int64_t cols, kernels::WeightFormat format) {
  const kernels::BlockShape b = kernels::block_shape(format);
  if (rows % b.rows != 0 || cols % b.cols != 0) return false;
  return kernels::count_nonzero(m, rows * cols) == 0 || kernels::fill_ratio(m, rows, cols, format) == 1.0;
}

struct Block {
  int64_t row_block;
  int32_t col[4];
  int64_t value_at;
};

// A BlockSparse from blocks in any order (a stable counting sort by row block).
std::unique_ptr<BlockSparse> assemble(int br, int bc, int64_t rows, int64_t cols, const std::vector<Block>& blocks) {
  auto a = std::make_unique<BlockSparse>();
  a->block_rows = br;
  a->block_cols = bc;
  a->rows = rows;
  a->cols = cols;
  const int64_t row_blocks = rows / br;
  a->row_ptr.assign(static_cast<size_t>(row_blocks + 1), 0);
  for (const Block& b : blocks) ++a->row_ptr[static_cast<size_t>(b.row_block + 1)];
  for (int64_t r = 0; r < row_blocks; ++r) a->row_ptr[r + 1] += a->row_ptr[r];
  std::vector<int64_t> next(a->row_ptr.begin(), a->row_ptr.end() - 1);
  a->col.resize(blocks.size() * static_cast<size_t>(bc));
  a->value_at.resize(blocks.size());
  for (const Block& b : blocks) {
    const int64_t at = next[static_cast<size_t>(b.row_block)]++;
    std::copy(b.col, b.col + bc, a->col.begin() + at * bc);
    a->value_at[static_cast<size_t>(at)] = static_cast<int32_t>(b.value_at);
  }
  return a;
}

}  // namespace

double SparseWeight::density() const {
  const int64_t n = autograd::numel(shape_);
  return n == 0 ? 0.0 : static_cast<double>(nnz()) / static_cast<double>(n);
}

std::shared_ptr<const SparseWeight> SparseWeight::linear(const Tensor& mask, std::optional<kernels::WeightFormat> format) {
  return build(mask, std::nullopt, format);
}

std::shared_ptr<const SparseWeight> SparseWeight::conv2d(const Tensor& mask, const Conv2dOptions& options,
                                                         std::optional<kernels::WeightFormat> format) {
  return build(mask, options, format);
}

std::shared_ptr<const SparseWeight> SparseWeight::build(const Tensor& mask, std::optional<Conv2dOptions> conv,
                                                        std::optional<kernels::WeightFormat> format) {
  const Shape& shape = mask.shape();
  const char* what = conv ? "conv2d" : "linear";
  check<ShapeError>(mask.dtype() == Dtype::f32 && shape.size() == (conv ? 4u : 2u),
                    "sparse {} weight: the mask must be float32 {}, got {}", what,
                    conv ? "(F, C, KH, KW)" : "(out, in)", ShapeArg{shape});
  check(!conv || conv->groups == 1, "sparse conv2d weight: groups {} is not supported (depthwise stays dense)",
        conv ? conv->groups : 1);
  // The weight as a (rows, cols) matrix: cols = (channel, tap) for convolutions.
  kernels::ConvGeometry g{.channels = shape[1], .filters = shape[0], .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1,
                          .dw = 1};
  if (conv) {
    g.kh = shape[2], g.kw = shape[3];
    g.sh = conv->stride_h, g.sw = conv->stride_w, g.dh = conv->dilation_h, g.dw = conv->dilation_w;
  }
  const int64_t rows = g.filters, cols = g.channels * g.taps();
  check(rows * cols < (int64_t{1} << 31), "sparse {} weight {}: more than 2^31 entries", what, ShapeArg{shape});
  const float* m = mask.data<float>();

  using kernels::WeightFormat;
  WeightFormat f = WeightFormat::csr;
  if (format) {
    f = *format;
    check(f != WeightFormat::dense, "sparse {} weight {}: format dense is not a sparse form", what, ShapeArg{shape});
    check(f == WeightFormat::csr || has_blocks(m, rows, cols, f),
          "sparse {} weight {}: the mask has no {} block structure", what, ShapeArg{shape}, to_string(f));
  } else if (has_blocks(m, rows, cols, WeightFormat::rows4)) {
    f = WeightFormat::rows4;
  } else if (has_blocks(m, rows, cols, WeightFormat::cols4)) {
    f = WeightFormat::cols4;
  }
  const kernels::BlockShape block = kernels::block_shape(f);
  const int bc = block.cols;

  auto w = std::shared_ptr<SparseWeight>(new SparseWeight());
  w->shape_ = shape;
  w->format_ = f;
  w->conv_ = conv;
  // Forward: W as (rows, cols), blocks in row-major order, values in block order.
  w->forward_ = std::make_unique<BlockSparse>(kernels::pack(m, rows, cols, f).pattern);
  std::vector<Block> forward, transposed;
  const BlockSparse& a = *w->forward_;
  for (int64_t rb = 0; rb < a.row_blocks(); ++rb)
    for (int64_t e = a.row_ptr[rb]; e < a.row_ptr[rb + 1]; ++e) {
      Block b{.row_block = rb, .col = {}, .value_at = a.value_at[e]};
      for (int c = 0; c < bc; ++c) b.col[c] = a.col[e * bc + c];
      forward.push_back(b);
    }

  // Transposed, for the input gradient: a row per (phase, channel) of the
  // input, a column per (filter, tap); each tap feeds the phase plane it reads.
  const int64_t t_rows = g.phases() * g.channels, t_cols = rows * g.taps();
  auto t_row = [&](int64_t col) {
    const int64_t c = col / g.taps(), tap = col % g.taps();
    return g.phase(tap / g.kw, tap % g.kw) * g.channels + c;
  };
  auto t_col = [&](int64_t row, int64_t col) { return static_cast<int32_t>(row * g.taps() + col % g.taps()); };
  int tbr = 1, tbc = 1;
  if (f == WeightFormat::rows4) {  // a 4x1 block (4 filters, one tap) is a 1x4 block of the transpose
    tbc = 4;
    for (const Block& b : forward) {
      Block t{.row_block = t_row(b.col[0]), .col = {}, .value_at = b.value_at};
      for (int r = 0; r < 4; ++r) t.col[r] = t_col(b.row_block * 4 + r, b.col[0]);
      transposed.push_back(t);
    }
  } else if (f == WeightFormat::cols4 && g.taps() == 1 && g.phases() == 1) {  // 1x4 over channels -> 4x1
    tbr = 4;
    for (const Block& b : forward)
      transposed.push_back({.row_block = b.col[0] / 4, .col = {t_col(b.row_block, b.col[0])}, .value_at = b.value_at});
  } else {  // element by element
    for (const Block& b : forward)
      for (int c = 0; c < bc; ++c)
        transposed.push_back(
            {.row_block = t_row(b.col[c]), .col = {t_col(b.row_block, b.col[c])}, .value_at = b.value_at + c});
  }
  w->transposed_ = assemble(tbr, tbc, t_rows, t_cols, transposed);
  return w;
}

int64_t SparseWeight::nnz() const { return forward_->nnz(); }

int64_t SparseWeight::index_bytes() const {
  auto pattern = [](const BlockSparse& a) {
    return static_cast<int64_t>(a.row_ptr.size() * sizeof(int64_t) + a.col.size() * sizeof(int32_t) +
                                a.value_at.size() * sizeof(int32_t));
  };
  return pattern(*forward_) + pattern(*transposed_);
}

namespace {
// Calls f(value index, dense flat index) for every kept entry of a forward pattern.
template <typename F>
void for_each_entry(const BlockSparse& a, F f) {
  const int br = a.block_rows, bc = a.block_cols;
  for (int64_t rb = 0; rb < a.row_blocks(); ++rb)
    for (int64_t e = a.row_ptr[rb]; e < a.row_ptr[rb + 1]; ++e)
      for (int r = 0; r < br; ++r)
        for (int c = 0; c < bc; ++c) f(a.value_at[e] + r * bc + c, (rb * br + r) * a.cols + a.col[e * bc + c]);
}
}  // namespace

Tensor SparseWeight::gather(const Tensor& dense) const {
  check<ShapeError>(dense.shape() == shape_, "SparseWeight::gather: expected {}, got {}", ShapeArg{shape_},
                    ShapeArg{dense.shape()});
  Tensor values = Tensor::empty({nnz()});
  const float* d = dense.data<float>();
  float* v = values.data<float>();
  for_each_entry(*forward_, [&](int64_t k, int64_t at) { v[k] = d[at]; });
  return values;
}

void SparseWeight::scatter(const Tensor& values, Tensor& dense) const {
  check<ShapeError>(dense.shape() == shape_ && values.shape() == Shape{nnz()},
                    "SparseWeight::scatter: expected values [{}] and {}, got {} and {}", nnz(), ShapeArg{shape_},
                    ShapeArg{values.shape()}, ShapeArg{dense.shape()});
  const float* v = values.data<float>();
  float* d = dense.data<float>();
  for_each_entry(*forward_, [&](int64_t k, int64_t at) { d[at] = v[k]; });
}

namespace {

// Feature-major copies for the linear op: the batch becomes the contiguous
// dimension, each feature's row padded to `ld` floats.
using kernels::feature_major_ld;
Tensor to_feature_major(const float* x, int64_t n, int64_t features) {
  const int64_t ld = feature_major_ld(n);
  Tensor t = Tensor::empty({features, ld});
  kernels::transpose(x, n, features, features, t.data<float>(), ld, true);
  return t;
}
void from_feature_major(const Tensor& t, int64_t n, int64_t features, float* y) {
  kernels::transpose(t.data<float>(), features, n, feature_major_ld(n), y, features, false);
}

// Runs spmm over all rows of a and pixels [0, pixels): threads take chunks of
// pixels whose dense rows fit in L2, and run every row over their chunk, so
// the chunk is read from memory once. Few chunks (a small batch) split rows too.
void spmm_parallel(const BlockSparse& a, const float* values, kernels::DenseRows b, float* y, int64_t ldy,
                   int64_t pixels, kernels::Isa isa) {
  const int64_t chunk =
      std::clamp<int64_t>((int64_t{1} << 16) / std::max<int64_t>(a.cols, 1) / 64 * 64, 64, std::max<int64_t>(pixels, 64));
  const int64_t chunks = (pixels + chunk - 1) / chunk;
  const int64_t row_split = std::clamp<int64_t>(4 * num_threads() / chunks, 1, a.row_blocks());
  tbb::parallel_for(int64_t{0}, chunks * row_split, [&](int64_t task) {
    const int64_t c = task / row_split, part = task % row_split;
    kernels::spmm(a, values, b, y, ldy, part * a.row_blocks() / row_split, (part + 1) * a.row_blocks() / row_split,
                  c * chunk, std::min(pixels, (c + 1) * chunk), isa);
  });
}

// The weight gradient at the kept positions of a: dvalues[(r, c)] = sum over
// p < pixels of dy[r*lddy + p] * B_c[p]; threads split rows, each dot product
// runs the full length (chunking it to keep B in L2 measured slower: one
// horizontal sum per entry and chunk).
Tensor sddmm_all(const BlockSparse& a, const float* dy, int64_t lddy, kernels::DenseRows b, int64_t pixels,
                 kernels::Isa isa) {
  Tensor dv = Tensor::zeros({a.nnz()});
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.row_blocks(), std::max<int64_t>(1, 8 / a.block_rows)),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      kernels::sddmm(a, dy, lddy, b, dv.data<float>(), r.begin(), r.end(), 0, pixels, isa);
                    });
  return dv;
}

// The bias gradient: the sum of each of `count` rows of `length` floats.
Tensor row_sums(const float* rows, int64_t count, int64_t ld, int64_t length) {
  Tensor sums = Tensor::empty({count});
  float* out = sums.data<float>();
  tbb::parallel_for(int64_t{0}, count, [&](int64_t r) {
    const float* row = rows + r * ld;
    out[r] = static_cast<float>(kernels::lane_sum(length, [row](int64_t k) { return row[k]; }));
  });
  return sums;
}

void check_values(const SparseWeight& w, const Variable& values, const char* op) {
  check<ShapeError>(values.dtype() == Dtype::f32 && values.shape() == Shape{w.nnz()},
                    "{}: values must be float32 [{}] for a sparse weight {} with {} kept, got {}", op, w.nnz(),
                    ShapeArg{w.shape()}, w.nnz(), ShapeArg{values.shape()});
}

void check_bias(const Variable& bias, int64_t features, const char* op) {
  if (bias.defined())
    check<ShapeError>(bias.dtype() == Dtype::f32 && bias.shape() == Shape{features}, "{}: bias must be [{}], got {}",
                      op, features, ShapeArg{bias.shape()});
}

}  // namespace

Variable sparse_linear(const Variable& x, const std::shared_ptr<const SparseWeight>& w, const Variable& values,
                       const Variable& bias, kernels::Isa isa) {
  check(w != nullptr && !w->is_conv(), "sparse_linear: needs the sparse form of a linear weight");
  check_values(*w, values, "sparse_linear");
  const int64_t out_features = w->shape()[0], in_features = w->shape()[1];
  check<ShapeError>(x.dtype() == Dtype::f32 && x.dim() >= 1 && x.size(-1) == in_features,
                    "sparse_linear: weight {} expects {} input features, got input {}", ShapeArg{w->shape()},
                    in_features, ShapeArg{x.shape()});
  check_bias(bias, out_features, "sparse_linear");
  const int64_t n = x.numel() / in_features;
  Shape out_shape = x.shape();
  out_shape.back() = out_features;

  // Feature-major operands, so the batch is the contiguous dimension.
  const int64_t ld = feature_major_ld(n);
  std::vector<int64_t> in_offset(static_cast<size_t>(in_features)), out_offset(static_cast<size_t>(out_features));
  for (int64_t c = 0; c < in_features; ++c) in_offset[c] = c * ld;
  for (int64_t o = 0; o < out_features; ++o) out_offset[o] = o * ld;
  Tensor y = Tensor::empty(out_shape);
  {
    const Tensor xt = to_feature_major(x.data().data<float>(), n, in_features);
    Tensor yt = Tensor::empty({out_features, ld});
    spmm_parallel(w->forward_pattern(), values.data().data<float>(), {xt.data<float>(), in_offset.data()},
                  yt.data<float>(), ld, n, isa);
    from_feature_major(yt, n, out_features, y.data<float>());
  }
  if (bias.defined()) {
    const float* b = bias.data().data<float>();
    float* py = y.data<float>();
    tbb::parallel_for(int64_t{0}, n, [&](int64_t r) {
      for (int64_t o = 0; o < out_features; ++o) py[r * out_features + o] += b[o];
    });
  }

  std::vector<Variable> inputs{x, values};
  if (bias.defined()) inputs.push_back(bias);
  return named(Variable(y, inputs,
                  [w, n, in_features, out_features, isa, in_offset = std::move(in_offset),
                   out_offset = std::move(out_offset)](const Tensor& g, std::vector<Variable>& in) {
                    const Tensor gt = to_feature_major(g.data<float>(), n, out_features);
                    const int64_t ld = feature_major_ld(n);
                    const float* v = in[1].data().data<float>();
                    if (in[0].requires_grad()) {  // dxᵀ = Wᵀ · gᵀ
                      Tensor dxt = Tensor::empty({in_features, ld}), dx = Tensor::empty(in[0].shape());
                      spmm_parallel(w->transposed_pattern(), v, {gt.data<float>(), out_offset.data()},
                                    dxt.data<float>(), ld, n, isa);
                      from_feature_major(dxt, n, in_features, dx.data<float>());
                      in[0].add_grad(std::move(dx));
                    }
                    if (in[1].requires_grad()) {  // dW at the kept positions: gᵀ rows · xᵀ rows
                      const Tensor xt = to_feature_major(in[0].data().data<float>(), n, in_features);
                      in[1].add_grad(sddmm_all(w->forward_pattern(), gt.data<float>(), ld,
                                               {xt.data<float>(), in_offset.data()}, n, isa));
                    }
                    if (in.size() > 2 && in[2].requires_grad())
                      in[2].add_grad(row_sums(gt.data<float>(), out_features, ld, n));
                  }), "sparse_linear");
}

namespace {

// The layout of a direct sparse convolution in training: the phase planes
// of neurite/kernels/layout.h over whole padded images, for groups of samples
// sized so that their operands stay in L2 (small images pack many samples into
// one product). The output gradient is laid out like the output, in rows of
// ld_dy with zeros around the valid pixels, `front` floats in: the transposed
// product (the input gradient) then reads true gradients only, each tap
// (i, j) of filter f at offset front + f·ld_dy - shift(i, j).
struct ConvPlan {
  kernels::ConvGeometry g;
  int64_t group;
  std::optional<kernels::PhasePlanes> planes;
  int64_t ld_dy;
  std::vector<int64_t> x_offset, dy_offset;

  ConvPlan(const SparseWeight& w, const Shape& x) {
    const Conv2dOptions& o = w.conv_options();
    const int64_t kh = w.shape()[2], kw = w.shape()[3];
    g = {.batch = x[0], .channels = w.shape()[1], .height = x[2], .width = x[3], .filters = w.shape()[0],
         .kh = kh, .kw = kw, .sh = o.stride_h, .sw = o.stride_w, .dh = o.dilation_h, .dw = o.dilation_w,
         .pad_top = o.pad_h, .pad_left = o.pad_w, .pad_bottom = o.pad_h, .pad_right = o.pad_w,
         .out_h = (x[2] + 2 * o.pad_h - o.dilation_h * (kh - 1) - 1) / o.stride_h + 1,
         .out_w = (x[3] + 2 * o.pad_w - o.dilation_w * (kw - 1) - 1) / o.stride_w + 1};
    const int64_t window = g.height + g.pad_top + g.pad_bottom;  // every padded row: dx reads them all back
    const int64_t plane = kernels::PhasePlanes(g, 1, window).plane();
    // Input planes and output rows of a group within 5/16 of L2 (320 KiB of
    // 1 MiB measured best: the weights and the product's rows share it).
    const int64_t budget = kernels::l2_cache_bytes() * 5 / 16;
    const int64_t per_sample = (g.phases() * g.channels + g.filters) * plane * static_cast<int64_t>(sizeof(float));
    group = std::clamp<int64_t>(budget / std::max<int64_t>(per_sample, 1), 1, std::max<int64_t>(g.batch, 1));
    planes.emplace(g, group, window);
    const kernels::PhasePlanes& p = *planes;
    ld_dy = p.front() + group * p.plane() + 16;
    p.column_offsets(x_offset);
    dy_offset.resize(static_cast<size_t>(g.filters * g.taps()));
    for (int64_t f = 0; f < g.filters; ++f)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) dy_offset[(f * g.kh + i) * g.kw + j] = p.front() + f * ld_dy - p.shift(i, j);
  }
  int64_t groups() const { return (g.batch + group - 1) / group; }
  int64_t first(int64_t k) const { return k * group; }
  int64_t count(int64_t k) const { return std::min(group, g.batch - k * group); }
  int64_t plane() const { return planes->plane(); }
  int64_t dy_size() const { return g.filters * ld_dy; }
  // Output rows (F, ld) of group k to y (N, F, out_h, out_w), plus bias.
  void write_output(const float* rows, int64_t ld, int64_t k, const float* bias, float* y) const {
    for (int64_t s = 0; s < count(k); ++s)
      for (int64_t o = 0; o < g.filters; ++o) {
        const float add = bias != nullptr ? bias[o] : 0.0f;
        for (int64_t r = 0; r < g.out_h; ++r)
          kernels::bias_activation_row(y + (((first(k) + s) * g.filters + o) * g.out_h + r) * g.out_w,
                                       rows + o * ld + s * plane() + r * planes->wq(), g.out_w, add, nullptr,
                                       kernels::Activation::none);
      }
  }
  // Group k of dy (N, F, out_h, out_w) into rows of ld_dy, zeros around.
  void fill_dy(const float* dy, int64_t k, float* rows) const {
    std::fill(rows, rows + dy_size(), 0.0f);
    for (int64_t s = 0; s < count(k); ++s)
      for (int64_t f = 0; f < g.filters; ++f)
        for (int64_t r = 0; r < g.out_h; ++r)
          std::memcpy(rows + planes->front() + f * ld_dy + s * plane() + r * planes->wq(),
                      dy + (((first(k) + s) * g.filters + f) * g.out_h + r) * g.out_w,
                      static_cast<size_t>(g.out_w) * sizeof(float));
  }
};

thread_local kernels::ScratchFloats t_planes, t_rows, t_dy;

}  // namespace

Variable sparse_conv2d(const Variable& x, const std::shared_ptr<const SparseWeight>& w, const Variable& values,
                       const Variable& bias, kernels::Isa isa) {
  check(w != nullptr && w->is_conv(), "sparse_conv2d: needs the sparse form of a conv2d weight");
  check_values(*w, values, "sparse_conv2d");
  check<ShapeError>(x.dtype() == Dtype::f32 && x.dim() == 4 && x.size(1) == w->shape()[1],
                    "sparse_conv2d: weight {} expects input (N, {}, H, W), got {}", ShapeArg{w->shape()},
                    w->shape()[1], ShapeArg{x.shape()});
  auto plan = std::make_shared<const ConvPlan>(*w, x.shape());
  const ConvPlan& P = *plan;
  check<ShapeError>(P.g.out_h >= 1 && P.g.out_w >= 1, "sparse_conv2d: input {} is smaller than the kernel {}",
                    ShapeArg{x.shape()}, ShapeArg{w->shape()});
  check_bias(bias, P.g.filters, "sparse_conv2d");
  Tensor y = Tensor::empty({P.g.batch, P.g.filters, P.g.out_h, P.g.out_w});
  const float* px = x.data().data<float>();
  const float* v = values.data().data<float>();
  const float* b = bias.defined() ? bias.data().data<float>() : nullptr;
  const BlockSparse& a = w->forward_pattern();
  tbb::parallel_for(int64_t{0}, P.groups(), [&](int64_t k) {
    float* planes = kernels::scratch(t_planes, P.planes->size());
    float* rows = kernels::scratch(t_rows, P.g.filters * P.group * P.plane());
    P.planes->fill(px, P.first(k), P.count(k), 0, planes);
    kernels::spmm(a, v, {planes, P.x_offset.data()}, rows, P.group * P.plane(), 0, a.row_blocks(), 0,
                  P.count(k) * P.plane(), isa);
    P.write_output(rows, P.group * P.plane(), k, b, y.data<float>());
  });

  std::vector<Variable> inputs{x, values};
  if (bias.defined()) inputs.push_back(bias);
  return named(Variable(y, inputs, [w, plan, isa](const Tensor& g, std::vector<Variable>& in) {
    const ConvPlan& P = *plan;
    const bool want_dx = in[0].requires_grad(), want_dv = in[1].requires_grad();
    const bool want_db = in.size() > 2 && in[2].requires_grad();
    const float* px = in[0].data().data<float>();
    const float* v = in[1].data().data<float>();
    Tensor dx = want_dx ? Tensor::empty(in[0].shape()) : Tensor();
    // Weight and bias gradients sum over groups: a fixed number of partial
    // sums, added in order, so the result does not depend on the schedule.
    const int64_t parts = std::min<int64_t>(P.groups(), 8), nnz = w->nnz(), f = P.g.filters;
    std::vector<float> dv_parts(want_dv ? static_cast<size_t>(parts * nnz) : 0, 0.0f);
    std::vector<float> db_parts(want_db ? static_cast<size_t>(parts * f) : 0, 0.0f);
    tbb::parallel_for(int64_t{0}, parts, [&](int64_t part) {
      for (int64_t k = part * P.groups() / parts; k < (part + 1) * P.groups() / parts; ++k) {
        float* dy = kernels::scratch(t_dy, P.dy_size());
        P.fill_dy(g.data<float>(), k, dy);
        float* planes = kernels::scratch(t_planes, P.planes->size());
        const int64_t pixels = P.count(k) * P.plane();
        if (want_dx) {  // the transposed product into the inputs' phase planes
          const BlockSparse& t = w->transposed_pattern();
          kernels::spmm(t, v, {dy, P.dy_offset.data()}, planes, P.planes->ld(), 0, t.row_blocks(), 0, pixels, isa);
          P.planes->read(planes, P.first(k), P.count(k), 0, dx.data<float>());
        }
        if (want_dv) {
          P.planes->fill(px, P.first(k), P.count(k), 0, planes);
          const BlockSparse& a = w->forward_pattern();
          kernels::sddmm(a, dy + P.planes->front(), P.ld_dy, {planes, P.x_offset.data()}, dv_parts.data() + part * nnz, 0,
                         a.row_blocks(), 0, pixels, isa);
        }
        if (want_db)
          for (int64_t o = 0; o < f; ++o) {
            const float* row = dy + P.planes->front() + o * P.ld_dy;
            db_parts[part * f + o] += static_cast<float>(kernels::lane_sum(pixels, [row](int64_t i) { return row[i]; }));
          }
      }
    });
    auto sum_parts = [parts](const std::vector<float>& partial, int64_t n) {
      Tensor total = Tensor::zeros({n});
      float* t = total.data<float>();
      for (int64_t part = 0; part < parts; ++part)
        for (int64_t i = 0; i < n; ++i) t[i] += partial[part * n + i];
      return total;
    };
    if (want_dx) in[0].add_grad(std::move(dx));
    if (want_dv) in[1].add_grad(sum_parts(dv_parts, nnz));
    if (want_db) in[2].add_grad(sum_parts(db_parts, f));
  }), "sparse_conv2d");
}

}  // namespace neurite::autograd
