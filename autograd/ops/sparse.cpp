// Sparse forms of pruned weights and the ops that train them
// (neurite/autograd/sparse.h). The products themselves live in
// autograd/kernels/sparse.*; this file lays out their operands.
#include "neurite/autograd/sparse.h"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

#include "autograd/elementwise_kernels.h"
#include "autograd/kernels/sparse.h"
#include "autograd/kernels/transpose.h"
#include "neurite/autograd/error.h"
#include "neurite/autograd/parallel.h"

namespace neurite::autograd {

using kernels::BlockSparse;

std::string to_string(SparseFormat format) {
  switch (format) {
    case SparseFormat::csr: return "csr";
    case SparseFormat::rows4: return "4x1";
    case SparseFormat::cols4: return "1x4";
  }
  return "?";
}

SparseWeight::~SparseWeight() = default;

namespace {

// True when every aligned br x bc group of the (rows, cols) mask is all kept or all pruned.
bool has_blocks(const float* m, int64_t rows, int64_t cols, int br, int bc) {
  if (rows % br != 0 || cols % bc != 0) return false;
  for (int64_t r0 = 0; r0 < rows; r0 += br)
    for (int64_t c0 = 0; c0 < cols; c0 += bc) {
      const bool kept = m[r0 * cols + c0] != 0;
      for (int r = 0; r < br; ++r)
        for (int c = 0; c < bc; ++c)
          if ((m[(r0 + r) * cols + c0 + c] != 0) != kept) return false;
    }
  return true;
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

// A weight seen as a matrix: rows = output features or filters, cols =
// (channel, tap) for convolutions.
struct WeightGeometry {
  int64_t rows, channels, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t taps() const { return kh * kw; }
  int64_t phases() const { return sh * sw; }
  // The phase plane a tap reads (see ConvPlan).
  int64_t phase(int64_t i, int64_t j) const { return (i * dh % sh) * sw + j * dw % sw; }
};

}  // namespace

double SparseWeight::density() const {
  const int64_t n = autograd::numel(shape_);
  return n == 0 ? 0.0 : static_cast<double>(nnz()) / static_cast<double>(n);
}

std::shared_ptr<const SparseWeight> SparseWeight::linear(const Tensor& mask, std::optional<SparseFormat> format) {
  return build(mask, std::nullopt, format);
}

std::shared_ptr<const SparseWeight> SparseWeight::conv2d(const Tensor& mask, const Conv2dOptions& options,
                                                         std::optional<SparseFormat> format) {
  return build(mask, options, format);
}

std::shared_ptr<const SparseWeight> SparseWeight::build(const Tensor& mask, std::optional<Conv2dOptions> conv,
                                                        std::optional<SparseFormat> format) {
  const Shape& shape = mask.shape();
  const char* what = conv ? "conv2d" : "linear";
  check<ShapeError>(mask.dtype() == Dtype::f32 && shape.size() == (conv ? 4u : 2u),
                    "sparse {} weight: the mask must be float32 {}, got {}", what,
                    conv ? "(F, C, KH, KW)" : "(out, in)", to_string(shape));
  check(!conv || conv->groups == 1, "sparse conv2d weight: groups {} is not supported (depthwise stays dense)",
        conv ? conv->groups : 1);
  WeightGeometry g{.rows = shape[0], .channels = shape[1]};
  if (conv) {
    g.kh = shape[2], g.kw = shape[3];
    g.sh = conv->stride_h, g.sw = conv->stride_w, g.dh = conv->dilation_h, g.dw = conv->dilation_w;
  }
  const int64_t rows = g.rows, cols = g.channels * g.taps();
  check(rows * cols < (int64_t{1} << 31), "sparse {} weight {}: more than 2^31 entries", what, to_string(shape));
  const float* m = mask.data<float>();

  SparseFormat f = SparseFormat::csr;
  if (format) {
    f = *format;
    check(f == SparseFormat::csr || has_blocks(m, rows, cols, f == SparseFormat::rows4 ? 4 : 1,
                                               f == SparseFormat::cols4 ? 4 : 1),
          "sparse {} weight {}: the mask has no {} block structure", what, to_string(shape), to_string(f));
  } else if (has_blocks(m, rows, cols, 4, 1)) {
    f = SparseFormat::rows4;
  } else if (has_blocks(m, rows, cols, 1, 4)) {
    f = SparseFormat::cols4;
  }
  const int br = f == SparseFormat::rows4 ? 4 : 1, bc = f == SparseFormat::cols4 ? 4 : 1;

  auto w = std::shared_ptr<SparseWeight>(new SparseWeight());
  w->shape_ = shape;
  w->format_ = f;
  w->conv_ = conv;
  // Forward: W as (rows, cols), blocks in row-major order, values in block order.
  std::vector<Block> forward, transposed;
  for (int64_t r0 = 0; r0 < rows; r0 += br)
    for (int64_t c0 = 0; c0 < cols; c0 += bc) {
      if (m[r0 * cols + c0] == 0) continue;
      Block b{.row_block = r0 / br, .col = {}, .value_at = static_cast<int64_t>(forward.size()) * br * bc};
      for (int c = 0; c < bc; ++c) b.col[c] = static_cast<int32_t>(c0 + c);
      forward.push_back(b);
    }
  w->forward_ = assemble(br, bc, rows, cols, forward);

  // Transposed, for the input gradient: a row per (phase, channel) of the
  // input, a column per (filter, tap); each tap feeds the phase plane it reads.
  const int64_t t_rows = g.phases() * g.channels, t_cols = rows * g.taps();
  auto t_row = [&](int64_t col) {
    const int64_t c = col / g.taps(), tap = col % g.taps();
    return g.phase(tap / g.kw, tap % g.kw) * g.channels + c;
  };
  auto t_col = [&](int64_t row, int64_t col) { return static_cast<int32_t>(row * g.taps() + col % g.taps()); };
  int tbr = 1, tbc = 1;
  if (f == SparseFormat::rows4) {  // a 4x1 block (4 filters, one tap) is a 1x4 block of the transpose
    tbc = 4;
    for (const Block& b : forward) {
      Block t{.row_block = t_row(b.col[0]), .col = {}, .value_at = b.value_at};
      for (int r = 0; r < 4; ++r) t.col[r] = t_col(b.row_block * 4 + r, b.col[0]);
      transposed.push_back(t);
    }
  } else if (f == SparseFormat::cols4 && g.taps() == 1 && g.phases() == 1) {  // 1x4 over channels -> 4x1
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
  check<ShapeError>(dense.shape() == shape_, "SparseWeight::gather: expected {}, got {}", to_string(shape_),
                    to_string(dense.shape()));
  Tensor values = Tensor::empty({nnz()});
  const float* d = dense.data<float>();
  float* v = values.data<float>();
  for_each_entry(*forward_, [&](int64_t k, int64_t at) { v[k] = d[at]; });
  return values;
}

void SparseWeight::scatter(const Tensor& values, Tensor& dense) const {
  check<ShapeError>(dense.shape() == shape_ && values.shape() == Shape{nnz()},
                    "SparseWeight::scatter: expected values [{}] and {}, got {} and {}", nnz(), to_string(shape_),
                    to_string(values.shape()), to_string(dense.shape()));
  const float* v = values.data<float>();
  float* d = dense.data<float>();
  for_each_entry(*forward_, [&](int64_t k, int64_t at) { d[at] = v[k]; });
}

namespace {

// Feature-major copies for the linear op: the batch becomes the contiguous
// dimension, each feature's row padded to `ld` floats.
int64_t feature_major_ld(int64_t n) { return (n + 15) / 16 * 16 + 16; }
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
                   int64_t pixels) {
  const int64_t chunk =
      std::clamp<int64_t>((int64_t{1} << 16) / std::max<int64_t>(a.cols, 1) / 64 * 64, 64, std::max<int64_t>(pixels, 64));
  const int64_t chunks = (pixels + chunk - 1) / chunk;
  const int64_t row_split = std::clamp<int64_t>(4 * num_threads() / chunks, 1, a.row_blocks());
  tbb::parallel_for(int64_t{0}, chunks * row_split, [&](int64_t task) {
    const int64_t c = task / row_split, part = task % row_split;
    kernels::spmm(a, values, b, y, ldy, part * a.row_blocks() / row_split, (part + 1) * a.row_blocks() / row_split,
                  c * chunk, std::min(pixels, (c + 1) * chunk));
  });
}

// The weight gradient at the kept positions of a: dvalues[(r, c)] = sum over
// p < pixels of dy[r*lddy + p] * B_c[p]; threads split rows, each dot product
// runs the full length (chunking it to keep B in L2 measured slower: one
// horizontal sum per entry and chunk).
Tensor sddmm_all(const BlockSparse& a, const float* dy, int64_t lddy, kernels::DenseRows b, int64_t pixels) {
  Tensor dv = Tensor::zeros({a.nnz()});
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.row_blocks(), std::max<int64_t>(1, 8 / a.block_rows)),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      kernels::sddmm(a, dy, lddy, b, dv.data<float>(), r.begin(), r.end(), 0, pixels);
                    });
  return dv;
}

// The bias gradient: the sum of each of `count` rows of `length` floats.
Tensor row_sums(const float* rows, int64_t count, int64_t ld, int64_t length) {
  Tensor sums = Tensor::empty({count});
  float* out = sums.data<float>();
  tbb::parallel_for(int64_t{0}, count, [&](int64_t r) {
    const float* row = rows + r * ld;
    out[r] = static_cast<float>(detail::lane_sum(length, [row](int64_t k) { return row[k]; }));
  });
  return sums;
}

void check_values(const SparseWeight& w, const Variable& values, const char* op) {
  check<ShapeError>(values.dtype() == Dtype::f32 && values.shape() == Shape{w.nnz()},
                    "{}: values must be float32 [{}] for a sparse weight {} with {} kept, got {}", op, w.nnz(),
                    to_string(w.shape()), w.nnz(), to_string(values.shape()));
}

void check_bias(const Variable& bias, int64_t features, const char* op) {
  if (bias.defined())
    check<ShapeError>(bias.dtype() == Dtype::f32 && bias.shape() == Shape{features}, "{}: bias must be [{}], got {}",
                      op, features, to_string(bias.shape()));
}

}  // namespace

Variable sparse_linear(const Variable& x, const std::shared_ptr<const SparseWeight>& w, const Variable& values,
                       const Variable& bias) {
  check(w != nullptr && !w->is_conv(), "sparse_linear: needs the sparse form of a linear weight");
  check_values(*w, values, "sparse_linear");
  const int64_t out_features = w->shape()[0], in_features = w->shape()[1];
  check<ShapeError>(x.dtype() == Dtype::f32 && x.dim() >= 1 && x.size(-1) == in_features,
                    "sparse_linear: weight {} expects {} input features, got input {}", to_string(w->shape()),
                    in_features, to_string(x.shape()));
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
                  yt.data<float>(), ld, n);
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
  return Variable(y, inputs,
                  [w, n, in_features, out_features, in_offset = std::move(in_offset),
                   out_offset = std::move(out_offset)](const Tensor& g, std::vector<Variable>& in) {
                    const Tensor gt = to_feature_major(g.data<float>(), n, out_features);
                    const int64_t ld = feature_major_ld(n);
                    const float* v = in[1].data().data<float>();
                    if (in[0].requires_grad()) {  // dxᵀ = Wᵀ · gᵀ
                      Tensor dxt = Tensor::empty({in_features, ld}), dx = Tensor::empty(in[0].shape());
                      spmm_parallel(w->transposed_pattern(), v, {gt.data<float>(), out_offset.data()},
                                    dxt.data<float>(), ld, n);
                      from_feature_major(dxt, n, in_features, dx.data<float>());
                      in[0].add_grad(std::move(dx));
                    }
                    if (in[1].requires_grad()) {  // dW at the kept positions: gᵀ rows · xᵀ rows
                      const Tensor xt = to_feature_major(in[0].data().data<float>(), n, in_features);
                      in[1].add_grad(sddmm_all(w->forward_pattern(), gt.data<float>(), ld,
                                               {xt.data<float>(), in_offset.data()}, n));
                    }
                    if (in.size() > 2 && in[2].requires_grad())
                      in[2].add_grad(row_sums(gt.data<float>(), out_features, ld, n));
                  });
}

namespace {

// The layout of a direct sparse convolution. The padded input is split into
// stride_h x stride_w phase planes (plane (a, b) holds padded rows a, a + sh,
// ... and columns b, b + sw, ...), each Hq x Wq, stored channel-major with a
// group of samples inside a row: row (phase, channel) holds the group's
// planes one after another. A tap (i, j) reads plane phase(i, j) shifted by
// (i·dh / sh, j·dw / sw), so output pixel p = n·plane + oy·Wq + ox reads
// input p + shift in that row: every (channel, tap) column is a dense row at
// a fixed offset, and the convolution of a group is one sparse-times-dense
// product over its planes. Outputs outside (oy < Hout, ox < Wout) are
// scratch, computed and dropped; the output gradient is laid out the same
// way with zeros there, which is what makes the transposed product (the
// input gradient) read true gradients only. Groups are sized so that their
// operands stay in L2; small images pack many samples into one product.
struct ConvPlan {
  WeightGeometry g;
  int64_t batch, height, width, ph, pw;
  int64_t hq, wq, plane, out_h, out_w, group;
  int64_t front, ld_x, ld_dy;  // the largest shift; row lengths of the operands
  std::vector<int64_t> x_offset, dy_offset;

  ConvPlan(const SparseWeight& w, const Shape& x) {
    const Conv2dOptions& o = w.conv_options();
    g = {.rows = w.shape()[0], .channels = w.shape()[1], .kh = w.shape()[2], .kw = w.shape()[3],
         .sh = o.stride_h, .sw = o.stride_w, .dh = o.dilation_h, .dw = o.dilation_w};
    batch = x[0], height = x[2], width = x[3], ph = o.pad_h, pw = o.pad_w;
    const int64_t hp = height + 2 * ph, wp = width + 2 * pw;
    out_h = (hp - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    out_w = (wp - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    hq = (hp + g.sh - 1) / g.sh, wq = (wp + g.sw - 1) / g.sw, plane = hq * wq;
    constexpr int64_t kL2Budget = 320 << 10;  // bytes of input planes and output rows per group
    const int64_t per_sample = (g.phases() * g.channels + g.rows) * plane * static_cast<int64_t>(sizeof(float));
    group = std::clamp<int64_t>(kL2Budget / std::max<int64_t>(per_sample, 1), 1, std::max<int64_t>(batch, 1));
    front = shift(g.kh - 1, g.kw - 1);
    ld_x = group * plane + front + 16;  // the last outputs' reads run past the last plane by up to `front`
    ld_dy = front + group * plane + 16;
    x_offset.resize(static_cast<size_t>(g.channels * g.taps()));
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          x_offset[(c * g.kh + i) * g.kw + j] = (g.phase(i, j) * g.channels + c) * ld_x + shift(i, j);
    dy_offset.resize(static_cast<size_t>(g.rows * g.taps()));
    for (int64_t f = 0; f < g.rows; ++f)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) dy_offset[(f * g.kh + i) * g.kw + j] = front + f * ld_dy - shift(i, j);
  }
  int64_t shift(int64_t i, int64_t j) const { return i * g.dh / g.sh * wq + j * g.dw / g.sw; }
  int64_t groups() const { return (batch + group - 1) / group; }
  int64_t first(int64_t k) const { return k * group; }
  int64_t count(int64_t k) const { return std::min(group, batch - k * group); }
  int64_t x_size() const { return g.phases() * g.channels * ld_x; }
  int64_t dy_size() const { return g.rows * ld_dy; }
  // Calls f(at, x0) for each column phase of input row r of channel ch of the
  // group's sample s: its columns x0, x0 + sw, ... live at planes[at], planes[at + 1], ...
  template <typename F>
  void row_segments(int64_t s, int64_t ch, int64_t r, F f) const {
    const int64_t pr = r + ph;
    for (int64_t b = 0; b < g.sw; ++b) {
      const int64_t x0 = ((b - pw) % g.sw + g.sw) % g.sw;
      if (x0 < width)
        f(((pr % g.sh * g.sw + b) * g.channels + ch) * ld_x + s * plane + pr / g.sh * wq + (x0 + pw) / g.sw, x0);
    }
  }
  // The samples of group k of x (N, C, H, W) into phase planes, zeros around.
  void fill_planes(const float* x, int64_t k, float* planes) const {
    std::fill(planes, planes + x_size(), 0.0f);
    for (int64_t s = 0; s < count(k); ++s)
      for (int64_t ch = 0; ch < g.channels; ++ch)
        for (int64_t r = 0; r < height; ++r) {
          const float* src = x + (((first(k) + s) * g.channels + ch) * height + r) * width;
          row_segments(s, ch, r, [&](int64_t at, int64_t x0) {
            for (int64_t c = x0, i = at; c < width; c += g.sw, ++i) planes[i] = src[c];
          });
        }
  }
  // The inverse of fill_planes for the inputs' own pixels (padding dropped).
  void read_planes(const float* planes, int64_t k, float* x) const {
    for (int64_t s = 0; s < count(k); ++s)
      for (int64_t ch = 0; ch < g.channels; ++ch)
        for (int64_t r = 0; r < height; ++r) {
          float* dst = x + (((first(k) + s) * g.channels + ch) * height + r) * width;
          row_segments(s, ch, r, [&](int64_t at, int64_t x0) {
            for (int64_t c = x0, i = at; c < width; c += g.sw, ++i) dst[c] = planes[i];
          });
        }
  }
  // Output rows (F, ld) of group k to y (N, F, out_h, out_w), plus bias.
  void write_output(const float* rows, int64_t ld, int64_t k, const float* bias, float* y) const {
    for (int64_t s = 0; s < count(k); ++s)
      for (int64_t o = 0; o < g.rows; ++o) {
        const float add = bias != nullptr ? bias[o] : 0.0f;
        for (int64_t r = 0; r < out_h; ++r) {
          const float* from = rows + o * ld + s * plane + r * wq;
          float* to = y + (((first(k) + s) * g.rows + o) * out_h + r) * out_w;
          for (int64_t c = 0; c < out_w; ++c) to[c] = from[c] + add;
        }
      }
  }
  // Group k of dy (N, F, out_h, out_w) into rows of ld_dy, zeros around.
  void fill_dy(const float* dy, int64_t k, float* rows) const {
    std::fill(rows, rows + dy_size(), 0.0f);
    for (int64_t s = 0; s < count(k); ++s)
      for (int64_t f = 0; f < g.rows; ++f)
        for (int64_t r = 0; r < out_h; ++r)
          std::memcpy(rows + front + f * ld_dy + s * plane + r * wq,
                      dy + (((first(k) + s) * g.rows + f) * out_h + r) * out_w, static_cast<size_t>(out_w) * sizeof(float));
  }
};

// A thread's scratch buffer of at least `size` floats.
float* scratch(std::vector<float>& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

}  // namespace

Variable sparse_conv2d(const Variable& x, const std::shared_ptr<const SparseWeight>& w, const Variable& values,
                       const Variable& bias) {
  check(w != nullptr && w->is_conv(), "sparse_conv2d: needs the sparse form of a conv2d weight");
  check_values(*w, values, "sparse_conv2d");
  check<ShapeError>(x.dtype() == Dtype::f32 && x.dim() == 4 && x.size(1) == w->shape()[1],
                    "sparse_conv2d: weight {} expects input (N, {}, H, W), got {}", to_string(w->shape()),
                    w->shape()[1], to_string(x.shape()));
  auto plan = std::make_shared<const ConvPlan>(*w, x.shape());
  const ConvPlan& P = *plan;
  check<ShapeError>(P.out_h >= 1 && P.out_w >= 1, "sparse_conv2d: input {} is smaller than the kernel {}",
                    to_string(x.shape()), to_string(w->shape()));
  check_bias(bias, P.g.rows, "sparse_conv2d");
  Tensor y = Tensor::empty({P.batch, P.g.rows, P.out_h, P.out_w});
  const float* px = x.data().data<float>();
  const float* v = values.data().data<float>();
  const float* b = bias.defined() ? bias.data().data<float>() : nullptr;
  const BlockSparse& a = w->forward_pattern();
  tbb::parallel_for(int64_t{0}, P.groups(), [&](int64_t k) {
    thread_local std::vector<float> planes_buffer, rows_buffer;
    float* planes = scratch(planes_buffer, P.x_size());
    float* rows = scratch(rows_buffer, P.g.rows * P.group * P.plane);
    P.fill_planes(px, k, planes);
    kernels::spmm(a, v, {planes, P.x_offset.data()}, rows, P.group * P.plane, 0, a.row_blocks(), 0,
                  P.count(k) * P.plane);
    P.write_output(rows, P.group * P.plane, k, b, y.data<float>());
  });

  std::vector<Variable> inputs{x, values};
  if (bias.defined()) inputs.push_back(bias);
  return Variable(y, inputs, [w, plan](const Tensor& g, std::vector<Variable>& in) {
    const ConvPlan& P = *plan;
    const bool want_dx = in[0].requires_grad(), want_dv = in[1].requires_grad();
    const bool want_db = in.size() > 2 && in[2].requires_grad();
    const float* px = in[0].data().data<float>();
    const float* v = in[1].data().data<float>();
    Tensor dx = want_dx ? Tensor::empty(in[0].shape()) : Tensor();
    // Weight and bias gradients sum over groups: a fixed number of partial
    // sums, added in order, so the result does not depend on the schedule.
    const int64_t parts = std::min<int64_t>(P.groups(), 8), nnz = w->nnz(), f = P.g.rows;
    std::vector<float> dv_parts(want_dv ? static_cast<size_t>(parts * nnz) : 0, 0.0f);
    std::vector<float> db_parts(want_db ? static_cast<size_t>(parts * f) : 0, 0.0f);
    tbb::parallel_for(int64_t{0}, parts, [&](int64_t part) {
      thread_local std::vector<float> dy_buffer, planes_buffer;
      for (int64_t k = part * P.groups() / parts; k < (part + 1) * P.groups() / parts; ++k) {
        float* dy = scratch(dy_buffer, P.dy_size());
        P.fill_dy(g.data<float>(), k, dy);
        float* planes = scratch(planes_buffer, P.x_size());
        const int64_t pixels = P.count(k) * P.plane;
        if (want_dx) {  // the transposed product into the inputs' phase planes
          const BlockSparse& t = w->transposed_pattern();
          kernels::spmm(t, v, {dy, P.dy_offset.data()}, planes, P.ld_x, 0, t.row_blocks(), 0, pixels);
          P.read_planes(planes, k, dx.data<float>());
        }
        if (want_dv) {
          P.fill_planes(px, k, planes);
          const BlockSparse& a = w->forward_pattern();
          kernels::sddmm(a, dy + P.front, P.ld_dy, {planes, P.x_offset.data()}, dv_parts.data() + part * nnz, 0,
                         a.row_blocks(), 0, pixels);
        }
        if (want_db)
          for (int64_t o = 0; o < f; ++o) {
            const float* row = dy + P.front + o * P.ld_dy;
            db_parts[part * f + o] += static_cast<float>(detail::lane_sum(pixels, [row](int64_t i) { return row[i]; }));
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
  });
}

}  // namespace neurite::autograd
