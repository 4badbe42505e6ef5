// The engine's linear layer: y = act(x · Wᵀ + bias + residual), dense
// (sgemm) or sparse (the block-sparse product over feature-major rows).
#include <tbb/parallel_for.h>

#include <algorithm>

#include "engine/kernels.h"
#include "neurite/kernels/cache.h"
#include "neurite/kernels/gemm.h"
#include "neurite/kernels/layout.h"
#include "neurite/kernels/rows.h"
#include "neurite/kernels/scratch.h"
#include "neurite/kernels/transpose.h"

namespace neurite::engine::detail {

namespace {
thread_local kernels::ScratchFloats t_xt, t_yt;
int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
}  // namespace

LinearKernel::LinearKernel(int64_t in_features, int64_t out_features, const float* weight, WeightFormat format,
                           Fused fused, kernels::Isa isa)
    : k_(in_features), n_(out_features), format_(format), fused_(std::move(fused)), isa_(isa) {
  const int64_t nnz = kernels::count_nonzero(weight, k_ * n_);
  density_ = k_ * n_ == 0 ? 0.0 : static_cast<double>(nnz) / static_cast<double>(k_ * n_);
  if (format == WeightFormat::dense) {
    // Wᵀ (K, N), rows padded off a multiple of 4 KiB: a power-of-two leading
    // dimension made sgemm 2x slower (cache-set aliasing).
    ld_ = n_ % 256 == 0 ? n_ + 16 : n_;
    dense_.assign(static_cast<size_t>(k_ * ld_), 0.0f);
    for (int64_t r = 0; r < n_; ++r)
      for (int64_t c = 0; c < k_; ++c) dense_[static_cast<size_t>(c * ld_ + r)] = weight[r * k_ + c];
  } else {
    sparse_ = pack(weight, n_, k_, format);
  }
}

void LinearKernel::set_feature_major(bool input, bool output, int64_t rows) {
  fm_in_ = input && format_ != WeightFormat::dense;
  fm_out_ = output && format_ != WeightFormat::dense;
  fm_ld_ = kernels::feature_major_ld(rows);
}

// Rows [m0, m1) through the sparse product: transposed in (unless the input
// is feature-major already), multiplied, and transposed back with the
// epilogue (unless the output stays feature-major); threads > 1 splits the
// output features.
void LinearKernel::sparse_chunk(const float* x, const float* residual, float* y, int64_t m0, int64_t m1,
                                int threads) const {
  const int64_t m = m1 - m0;
  const int64_t ld = kernels::feature_major_ld(m);
  const int64_t ld_x = fm_in_ ? fm_ld_ : ld, ld_y = fm_out_ ? fm_ld_ : ld;
  const float* xt = x + m0;
  if (!fm_in_) {
    float* t = kernels::scratch(t_xt, k_ * ld);
    kernels::transpose(x + m0 * k_, m, k_, k_, t, ld, true);
    for (int64_t c = 0; c < k_; ++c) std::fill(t + c * ld + m, t + (c + 1) * ld, 0.0f);
    xt = t;
  }
  float* yt = fm_out_ ? y + m0 : kernels::scratch(t_yt, sparse_.pattern.rows * ld);
  // A feature-major output is written for exactly these rows: the next ones may be another tile's.
  const int64_t pixels = fm_out_ ? m : round_up(m, 16);
  thread_local std::vector<int64_t> offsets;
  offsets.resize(static_cast<size_t>(sparse_.pattern.cols));
  for (int64_t c = 0; c < sparse_.pattern.cols; ++c) offsets[static_cast<size_t>(c)] = std::min(c, k_ - 1) * ld_x;
  const BlockSparse& a = sparse_.pattern;
  const kernels::DenseRows b{xt, offsets.data()};
  const float* values = sparse_.values.data();
  // Pixel chunks of 128 outside, features inside: a chunk of xt stays in L1/L2 while every feature reads it.
  constexpr int64_t kChunk = 128;
  const int64_t chunks = (pixels + kChunk - 1) / kChunk;
  auto part = [&](int64_t rb0, int64_t rb1) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t p0 = c * kChunk, p1 = std::min(pixels, p0 + kChunk);
      kernels::spmm(a, values, b, yt, ld_y, rb0, rb1, p0, p1, isa_);
      if (fm_out_)  // bias and activation per feature row; no residual here (the planner's rule)
        for (int64_t r = rb0 * a.block_rows; r < std::min(n_, rb1 * a.block_rows); ++r)
          kernels::bias_activation_row(yt + r * ld_y + p0, yt + r * ld_y + p0, p1 - p0,
                     fused_.bias.empty() ? 0.0f : fused_.bias[static_cast<size_t>(r)], nullptr, fused_.activation);
    }
  };
  if (threads <= 1) {
    part(0, a.row_blocks());
  } else {
    const int64_t parts = std::min<int64_t>(a.row_blocks(), 4 * threads);
    tbb::parallel_for(int64_t{0}, parts, [&](int64_t t) {
      part(t * a.row_blocks() / parts, (t + 1) * a.row_blocks() / parts);
    });
  }
  if (fm_out_) return;
  float* ys = y + m0 * n_;
  kernels::transpose(yt, n_, m, ld, ys, n_, false);
  finish_rows(ys, residual != nullptr ? residual + m0 * n_ : nullptr, m, threads);
}

namespace {

// Element (row i, feature c) of a row-major or feature-major matrix.
struct Strided {
  const float* at;
  int64_t row, col;
  float operator()(int64_t i, int64_t c) const { return at[i * row + c * col]; }
};

// Dot products of block rows [rb0, rb1) of a (BR x BC)-block weight with M
// rows of x, into acc(i, j) for output feature j; loops of constant trip
// counts, so the compiler keeps the sums in registers.
template <int BR, int BC, int M, typename Out>
void few_rows(const BlockSparse& a, const float* values, int64_t k, Strided x, int64_t rb0, int64_t rb1, Out out) {
  // Four partial sums, blocks taken in turn: one sum's chain of dependent
  // FMAs (4 cycles each) would bound the loop, not the loads.
  constexpr int kSums = 4;
  for (int64_t rb = rb0; rb < rb1; ++rb) {
    float acc[kSums][M][BR] = {};
    const int64_t b0 = a.row_ptr[static_cast<size_t>(rb)], b1 = a.row_ptr[static_cast<size_t>(rb) + 1];
    auto add = [&](float(&sum)[M][BR], int64_t b) {
      const float* v = values + b * BR * BC;  // blocks stored one after another
      for (int c = 0; c < BC; ++c) {
        const int64_t col = std::min<int64_t>(a.col[static_cast<size_t>(b * BC + c)], k - 1);  // padding: value 0
        for (int i = 0; i < M; ++i) {
          const float xv = x(i, col);
          for (int r = 0; r < BR; ++r) sum[i][r] += v[r * BC + c] * xv;
        }
      }
    };
    int64_t b = b0;
    for (; b + kSums <= b1; b += kSums)
      for (int u = 0; u < kSums; ++u) add(acc[u], b + u);
    for (int u = 0; b < b1; ++b, ++u) add(acc[u], b);
    for (int r = 0; r < BR; ++r)
      for (int i = 0; i < M; ++i) out(i, rb * BR + r, (acc[0][i][r] + acc[1][i][r]) + (acc[2][i][r] + acc[3][i][r]));
  }
}

template <int BR, int BC, typename Out>
void few_rows(int64_t m, const BlockSparse& a, const float* values, int64_t k, Strided x, int64_t rb0, int64_t rb1,
              Out out) {
  switch (m) {
    case 1: return few_rows<BR, BC, 1>(a, values, k, x, rb0, rb1, out);
    case 2: return few_rows<BR, BC, 2>(a, values, k, x, rb0, rb1, out);
    case 3: return few_rows<BR, BC, 3>(a, values, k, x, rb0, rb1, out);
    default: return few_rows<BR, BC, 4>(a, values, k, x, rb0, rb1, out);
  }
}

// Dense few rows: y(i, c) = Σ_k x(i, k) · Wᵀ(k, c) for M rows, over panels of
// 64 output features whose sums stay in registers while the panel's column
// of Wᵀ streams by. sgemm repacked the whole weight on every call, which
// cost a batch of one as much as the product.
template <int M>
void dense_few_rows(const float* wt, int64_t ld, int64_t k, const float* x, float* y, int64_t n, int64_t c0, int64_t c1) {
  constexpr int64_t kPanel = 64;
  for (int64_t p = c0; p < c1; p += kPanel) {
    const int64_t width = std::min(kPanel, c1 - p);
    float acc[M][kPanel] = {};
    if (width == kPanel) {
      for (int64_t kk = 0; kk < k; ++kk) {
        const float* row = wt + kk * ld + p;
        for (int i = 0; i < M; ++i) {
          const float xv = x[i * k + kk];
          for (int64_t j = 0; j < kPanel; ++j) acc[i][j] += xv * row[j];
        }
      }
    } else {
      for (int64_t kk = 0; kk < k; ++kk) {
        const float* row = wt + kk * ld + p;
        for (int i = 0; i < M; ++i) {
          const float xv = x[i * k + kk];
          for (int64_t j = 0; j < width; ++j) acc[i][j] += xv * row[j];
        }
      }
    }
    for (int i = 0; i < M; ++i) std::copy(acc[i], acc[i] + width, y + i * n + p);
  }
}

}  // namespace

// Few rows (a batch of one): each output feature a dot product of its kept
// weights with the inputs they pick, the rows' inputs shared per weight. The
// feature-major product's 16-lane tiles would compute one useful lane in 16.
void LinearKernel::sparse_rows(const float* x, const float* residual, float* y, int64_t m0, int64_t m1,
                               int threads) const {
  const BlockSparse& a = sparse_.pattern;
  const float* values = sparse_.values.data();
  const int64_t m = m1 - m0;
  const Strided xs = fm_in_ ? Strided{x + m0, 1, fm_ld_} : Strided{x + m0 * k_, k_, 1};
  float* yb = fm_out_ ? y + m0 : y + m0 * n_;
  const int64_t y_row = fm_out_ ? 1 : n_, y_col = fm_out_ ? fm_ld_ : 1;
  auto out = [&](int64_t i, int64_t j, float v) {
    if (j >= n_) return;  // a padding row of the last block
    v += fused_.bias.empty() ? 0.0f : fused_.bias[static_cast<size_t>(j)];
    if (residual != nullptr && !fm_out_) v += residual[(m0 + i) * n_ + j];
    yb[i * y_row + j * y_col] = kernels::activate(v, fused_.activation);
  };
  auto part = [&](int64_t rb0, int64_t rb1) {
    if (a.block_rows == 1 && a.block_cols == 1 && xs.col == 1) {
      // CSR over contiguous rows: 16 lanes of products, the inputs gathered (vgatherdps where the CPU has it).
      for (int64_t j = rb0; j < rb1; ++j) {
        const int64_t b0 = a.row_ptr[static_cast<size_t>(j)], n = a.row_ptr[static_cast<size_t>(j) + 1] - b0;
        const float* v = values + b0;
        const int32_t* col = a.col.data() + b0;
        for (int64_t i = 0; i < m; ++i) {
          const float* xi = xs.at + i * xs.row;
          out(i, j, static_cast<float>(kernels::lane_sum(n, [&](int64_t e) { return v[e] * xi[col[e]]; })));
        }
      }
      return;
    }
    if (a.block_rows == 4) return few_rows<4, 1>(m, a, values, k_, xs, rb0, rb1, out);
    if (a.block_cols == 4) return few_rows<1, 4>(m, a, values, k_, xs, rb0, rb1, out);
    few_rows<1, 1>(m, a, values, k_, xs, rb0, rb1, out);
  };
  const int64_t blocks = a.row_blocks();
  if (threads <= 1) return part(0, blocks);
  const int64_t parts = std::min<int64_t>(blocks, 4 * threads);
  tbb::parallel_for(int64_t{0}, parts, [&](int64_t t) { part(t * blocks / parts, (t + 1) * blocks / parts); });
}

// y rows += bias (+ residual), then the activation.
void LinearKernel::finish_rows(float* ys, const float* res, int64_t m, int threads) const {
  if (fused_.bias.empty() && res == nullptr && fused_.activation == Activation::none) return;
  auto finish = [&](int64_t r) {
    float* row = ys + r * n_;
    for (int64_t j = 0; j < n_; ++j) {
      float v = row[j];
      if (!fused_.bias.empty()) v += fused_.bias[static_cast<size_t>(j)];
      if (res != nullptr) v += res[r * n_ + j];
      row[j] = kernels::activate(v, fused_.activation);
    }
  };
  if (threads > 1) {
    tbb::parallel_for(int64_t{0}, m, finish);
  } else {
    for (int64_t r = 0; r < m; ++r) finish(r);
  }
}

void LinearKernel::run(const float* x, const float* residual, float* y, int64_t m0, int64_t m1, int threads) const {
  const int64_t m = m1 - m0;
  if (m <= 0) return;
  const float* xs = x + m0 * k_;
  float* ys = y + m0 * n_;
  if (format_ == WeightFormat::dense && m <= kFewRows) {
    const int64_t panels = (n_ + 63) / 64, parts = std::min<int64_t>(threads, panels);
    auto block = [&](int64_t part) {
      const int64_t c0 = part * panels / parts * 64, c1 = std::min(n_, (part + 1) * panels / parts * 64);
      switch (m) {
        case 1: return dense_few_rows<1>(dense_.data(), ld_, k_, xs, ys, n_, c0, c1);
        case 2: return dense_few_rows<2>(dense_.data(), ld_, k_, xs, ys, n_, c0, c1);
        case 3: return dense_few_rows<3>(dense_.data(), ld_, k_, xs, ys, n_, c0, c1);
        default: return dense_few_rows<4>(dense_.data(), ld_, k_, xs, ys, n_, c0, c1);
      }
    };
    if (parts <= 1) {
      block(0);
    } else {
      tbb::parallel_for(int64_t{0}, parts, block);
    }
  } else if (format_ == WeightFormat::dense) {
    // Threads take column blocks of Wᵀ on oneTBB, each a single-threaded
    // sgemm: oneDNN's own OpenMP team woke up too slowly for a batch of one
    // (2 threads ran 3x slower than 1).
    const int64_t parts = threads > 1 ? std::min<int64_t>(threads, std::max<int64_t>(1, n_ / 64)) : 1;
    auto block = [&](int64_t part) {
      const int64_t c0 = round_up(part * n_ / parts, 16), c1 = part + 1 == parts ? n_ : round_up((part + 1) * n_ / parts, 16);
      if (c1 > c0)
        kernels::gemm({.m = m, .n = c1 - c0, .k = k_}, 1.0f, xs, k_, dense_.data() + c0, ld_, 0.0f, ys + c0, n_, 1);
    };
    if (parts == 1) {
      block(0);
    } else {
      tbb::parallel_for(int64_t{0}, parts, block);
    }
  } else if (m <= kFewRows) {
    return sparse_rows(x, residual, y, m0, m1, threads);
  } else {
    // Many rows: chunks of them in parallel, each transposed in, multiplied
    // and transposed back while it is in L2 (whole-batch transposes ran at
    // DRAM speed and cost as much as the product). Few rows: one chunk, its
    // output features split among the threads.
    const int64_t budget = kernels::l2_cache_bytes() / 2;
    const int64_t per_row =
        ((fm_in_ ? 0 : k_) + (fm_out_ ? 0 : 2 * sparse_.pattern.rows) + 16) * static_cast<int64_t>(sizeof(float));
    const int64_t rows = std::clamp<int64_t>(budget / per_row / 16 * 16, 16, 512);
    const int64_t chunks = (m + rows - 1) / rows;
    if (chunks >= 2 * threads || threads <= 1) {
      auto one = [&](int64_t c) {
        const int64_t c0 = c * rows, c1 = std::min(m, c0 + rows);
        sparse_chunk(x, residual, y, m0 + c0, m0 + c1, 1);
      };
      if (threads <= 1) {
        for (int64_t c = 0; c < chunks; ++c) one(c);
      } else {
        tbb::parallel_for(int64_t{0}, chunks, one);
      }
    } else {
      for (int64_t c0 = 0; c0 < m; c0 += rows) sparse_chunk(x, residual, y, m0 + c0, std::min(m1, m0 + c0 + rows), threads);
    }
    return;
  }
  finish_rows(ys, residual != nullptr ? residual + m0 * n_ : nullptr, m, threads);
}

}  // namespace neurite::engine::detail
