// Reductions over one dimension of a contiguous array viewed as (outer, n, inner).
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/elementwise_kernels.h"
#include "neurite/autograd/tensor.h"

namespace neurite::autograd::detail {

// The (outer, n, inner) view of `shape` around dimension `dim`.
struct DimView {
  int64_t outer = 1, n = 1, inner = 1;
};

inline DimView dim_view(const Shape& shape, int64_t dim) {
  DimView v;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim) v.outer *= shape[d];
    else if (d == dim) v.n = shape[d];
    else v.inner *= shape[d];
  }
  return v;
}

// y (outer, inner) = sum over n of x (outer, n, inner), accumulated in double
// when n is long so that large sums keep float accuracy.
inline void sum_dim(const float* x, const DimView& v, float* y) {
  parallel_range(v.outer, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, v.n * v.inner)),
                 [&](int64_t o0, int64_t o1) {
    std::vector<double> acc(static_cast<size_t>(v.inner));
    for (int64_t o = o0; o < o1; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* px = x + o * v.n * v.inner;
      for (int64_t k = 0; k < v.n; ++k)
        for (int64_t i = 0; i < v.inner; ++i) acc[i] += px[k * v.inner + i];
      for (int64_t i = 0; i < v.inner; ++i) y[o * v.inner + i] = static_cast<float>(acc[i]);
    }
  });
}

// The sum of `t` over dimension `dim`, keeping it as extent 1.
inline Tensor sum_keepdim(const Tensor& t, int64_t dim) {
  Shape out_shape = t.shape();
  out_shape[dim] = 1;
  Tensor out = Tensor::empty(out_shape);
  sum_dim(t.data<float>(), dim_view(t.shape(), dim), out.data<float>());
  return out;
}

}  // namespace neurite::autograd::detail
