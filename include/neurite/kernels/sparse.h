// neurite/kernels/sparse.h — weight formats, and the sparse-times-dense
// products that sparse training and the engine's sparse layers run.
//
//   auto w = kernels::pack(weight, rows, cols, kernels::WeightFormat::rows4);
//   kernels::spmm(w.pattern, w.values.data(), {x, offsets}, y, ldy, 0, w.pattern.row_blocks(), 0, pixels,
//                 kernels::best_isa());
//
// A sparse operand is a BlockSparse matrix of 1-D blocks: CSR (1x1), 4x1
// (four consecutive rows at one column) or 1x4 (one row, four column
// entries). Each block's values are contiguous; `value_at` says where, so a
// transposed pattern can read the values of the forward one in place.
//
// The dense operand is a set of rows with the pixel (or batch) dimension
// contiguous: column c of the sparse matrix multiplies the row that starts at
// `base + offset[c]`. A plain matrix has offset[c] = c * ld; a convolution
// points each (channel, tap) column at a shifted window of its padded input,
// which makes a direct sparse convolution the same product.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "neurite/kernels/policy.h"

namespace neurite::kernels {

// The forms a weight matrix is held in: dense, or sparse as CSR (1x1
// blocks), 4x1 blocks (four consecutive rows at one column) or 1x4 blocks
// (one row, four consecutive columns).
enum class WeightFormat { dense, csr, rows4, cols4 };
std::string to_string(WeightFormat format);  // "dense", "csr", "4x1", "1x4"
// The format a name gives; nullopt for a name that is none.
std::optional<WeightFormat> parse_weight_format(std::string_view name);
struct BlockShape {
  int rows, cols;
};
BlockShape block_shape(WeightFormat format);  // 1x1 for dense and CSR

// The nonzeros of n floats.
int64_t count_nonzero(const float* x, int64_t n);

struct BlockSparse {
  int block_rows = 1, block_cols = 1;  // (1,1), (4,1) or (1,4)
  int64_t rows = 0, cols = 0;          // the matrix, in elements
  std::vector<int64_t> row_ptr{0};     // per block row, in blocks
  std::vector<int32_t> col;            // block_cols column entries per block
  std::vector<int32_t> value_at;       // per block: its first value

  int64_t row_blocks() const { return static_cast<int64_t>(row_ptr.size()) - 1; }
  int64_t blocks() const { return static_cast<int64_t>(value_at.size()); }
  int64_t nnz() const { return blocks() * block_rows * block_cols; }
};

// A (rows, cols) weight packed in blocks of `format` that hold at least one
// nonzero, zeros filled in; rows and cols padded to whole blocks. `dense`
// packs every 4x1 block: the sparse kernel's best register tile, which won
// over oneDNN on thin layers such as a first convolution of one channel.
// Values are stored block after block in row-major block order.
struct PackedWeight {
  WeightFormat format = WeightFormat::csr;
  BlockSparse pattern;
  std::vector<float> values;
  double density = 1;  // nonzeros of the weight over its size
};
PackedWeight pack(const float* w, int64_t rows, int64_t cols, WeightFormat format);
// Stored entries over nonzeros when packed as `format` (1 for CSR; inf for an
// all-zero weight): 1 means the nonzeros have exactly that block structure.
double fill_ratio(const float* w, int64_t rows, int64_t cols, WeightFormat format);

struct DenseRows {
  const float* base;
  const int64_t* offset;  // per column of the sparse matrix
};

// y[r*ldy + p] = sum over the entries (r, c) of a: value * B_c[p], for the
// rows of row blocks [rb0, rb1) and p in [p0, p1). Overwrites y there.
// `isa` picks the instance (neurite/kernels/policy.h).
void spmm(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0, int64_t rb1,
          int64_t p0, int64_t p1, Isa isa);

// For every entry (r, c) of a in row blocks [rb0, rb1):
// dvalues[its value] += sum over p in [p0, p1) of dy[r*lddy + p] * B_c[p].
// The sampled dense-dense product that gives a weight gradient at kept positions.
void sddmm(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0, int64_t rb1,
           int64_t p0, int64_t p1, Isa isa);

}  // namespace neurite::kernels
