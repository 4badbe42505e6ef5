// Strided copies: the one routine behind permute, transpose and slice.
#pragma once

#include <tbb/parallel_for.h>

#include <cstdint>
#include <vector>

#include "neurite/autograd/tensor.h"

namespace neurite::autograd::detail {

inline std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

// dst (contiguous, shape out_shape) [i0, i1, ...] = src[sum_k i_k * src_strides[k]].
template <typename T>
void copy_strided(const T* src, const Shape& out_shape, const std::vector<int64_t>& src_strides, T* dst) {
  const auto rank = static_cast<int64_t>(out_shape.size());
  const int64_t total = numel(out_shape);
  if (total == 0) return;
  if (rank == 0) { dst[0] = src[0]; return; }
  const int64_t inner = out_shape[rank - 1];
  const int64_t inner_stride = src_strides[rank - 1];
  const int64_t rows = total / inner;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1))),
                    [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t row = range.begin(); row < range.end(); ++row) {
      int64_t offset = 0, rest = row;
      for (int64_t k = rank - 2; k >= 0; --k) {
        offset += (rest % out_shape[k]) * src_strides[k];
        rest /= out_shape[k];
      }
      const T* s = src + offset;
      T* d = dst + row * inner;
      if (inner_stride == 1) {
        for (int64_t i = 0; i < inner; ++i) d[i] = s[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) d[i] = s[i * inner_stride];
      }
    }
  });
}

}  // namespace neurite::autograd::detail
