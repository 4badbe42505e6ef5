// Weight formats and the packing of a dense weight into one of them.
#include <limits>

#include "neurite/kernels/sparse.h"

namespace neurite::kernels {

std::string to_string(WeightFormat format) {
  switch (format) {
    case WeightFormat::dense: return "dense";
    case WeightFormat::csr: return "csr";
    case WeightFormat::rows4: return "4x1";
    case WeightFormat::cols4: return "1x4";
  }
  return "?";
}

std::optional<WeightFormat> parse_weight_format(std::string_view name) {
  for (WeightFormat f : {WeightFormat::dense, WeightFormat::csr, WeightFormat::rows4, WeightFormat::cols4})
    if (name == to_string(f)) return f;
  return std::nullopt;
}

BlockShape block_shape(WeightFormat format) {
  if (format == WeightFormat::rows4) return {4, 1};
  if (format == WeightFormat::cols4) return {1, 4};
  return {1, 1};
}

int64_t count_nonzero(const float* x, int64_t n) {
  int64_t nnz = 0;
  for (int64_t i = 0; i < n; ++i) nnz += x[i] != 0;
  return nnz;
}

namespace {

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Calls f(r0, c0) for each block of a (rows, cols) matrix padded to whole
// blocks that holds a nonzero (every block when keep_all), in row-major order.
template <typename F>
void for_each_kept_block(const float* w, int64_t rows, int64_t cols, BlockShape b, bool keep_all, F f) {
  for (int64_t r0 = 0; r0 < rows; r0 += b.rows)
    for (int64_t c0 = 0; c0 < cols; c0 += b.cols) {
      bool kept = keep_all;
      for (int r = 0; r < b.rows && !kept; ++r)
        for (int c = 0; c < b.cols && !kept; ++c)
          kept = r0 + r < rows && c0 + c < cols && w[(r0 + r) * cols + c0 + c] != 0;
      if (kept) f(r0, c0);
    }
}

}  // namespace

double fill_ratio(const float* w, int64_t rows, int64_t cols, WeightFormat format) {
  const BlockShape b = block_shape(format);
  const int64_t nnz = count_nonzero(w, rows * cols);
  int64_t blocks = 0;
  for_each_kept_block(w, rows, cols, b, false, [&](int64_t, int64_t) { ++blocks; });
  return nnz == 0 ? std::numeric_limits<double>::infinity()
                  : static_cast<double>(blocks * b.rows * b.cols) / static_cast<double>(nnz);
}

PackedWeight pack(const float* w, int64_t rows, int64_t cols, WeightFormat format) {
  PackedWeight p;
  p.format = format;
  const bool keep_all = format == WeightFormat::dense;
  const BlockShape b = block_shape(keep_all ? WeightFormat::rows4 : format);
  BlockSparse& a = p.pattern;
  a.block_rows = b.rows, a.block_cols = b.cols, a.rows = round_up(rows, b.rows), a.cols = round_up(cols, b.cols);
  a.row_ptr.assign(static_cast<size_t>(a.rows / b.rows + 1), 0);
  const int64_t nnz = count_nonzero(w, rows * cols);
  p.density = rows * cols == 0 ? 0.0 : static_cast<double>(nnz) / static_cast<double>(rows * cols);
  for_each_kept_block(w, rows, cols, b, keep_all, [&](int64_t r0, int64_t c0) {
    a.value_at.push_back(static_cast<int32_t>(p.values.size()));
    for (int c = 0; c < b.cols; ++c) a.col.push_back(static_cast<int32_t>(c0 + c));
    for (int r = 0; r < b.rows; ++r)
      for (int c = 0; c < b.cols; ++c)
        p.values.push_back(r0 + r < rows && c0 + c < cols ? w[(r0 + r) * cols + c0 + c] : 0.0f);
    ++a.row_ptr[static_cast<size_t>(r0 / b.rows + 1)];
  });
  for (size_t r = 1; r < a.row_ptr.size(); ++r) a.row_ptr[r] += a.row_ptr[r - 1];
  return p;
}

}  // namespace neurite::kernels
