// Sparse-times-dense kernels: the one home of the products that sparse
// training (and the engine's sparse layers) run.
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
#include <vector>

namespace neurite::autograd::kernels {

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

struct DenseRows {
  const float* base;
  const int64_t* offset;  // per column of the sparse matrix
};

// y[r*ldy + p] = sum over the entries (r, c) of a: value * B_c[p], for the
// rows of row blocks [rb0, rb1) and p in [p0, p1). Overwrites y there.
void spmm(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0, int64_t rb1,
          int64_t p0, int64_t p1);

// For every entry (r, c) of a in row blocks [rb0, rb1):
// dvalues[its value] += sum over p in [p0, p1) of dy[r*lddy + p] * B_c[p].
// The sampled dense-dense product that gives a weight gradient at kept positions.
void sddmm(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0, int64_t rb1,
           int64_t p0, int64_t p1);

// The instruction set the kernels run: the best the CPU has, unless the
// environment variable NEURITE_ISA names another (reference, avx2, avx512).
enum class Isa { reference, avx2, avx512 };
Isa active_isa();
void set_isa(Isa isa);  // tests: compare each ISA with the reference twin
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);

}  // namespace neurite::autograd::kernels
