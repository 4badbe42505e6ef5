// Tensor-level helpers that ops share in forward and backward: no graph, no
// gradients, float32 only.
#pragma once

#include "autograd/elementwise_kernels.h"
#include "neurite/autograd/tensor.h"

namespace neurite::autograd::detail {

// f applied to every element of x.
template <typename F>
Tensor map_tensor(const Tensor& x, F f) {
  Tensor y = Tensor::empty(x.shape());
  map(x.data<float>(), y.data<float>(), x.numel(), f);
  return y;
}

inline Tensor scale(const Tensor& x, float alpha) {
  return map_tensor(x, [alpha](float v) { return alpha * v; });
}

}  // namespace neurite::autograd::detail

namespace neurite::autograd::detail {

// t broadcast to `shape` (which t's shape broadcasts to), as a new tensor.
inline Tensor expand(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Tensor y = Tensor::empty(shape);
  broadcast_binary(t.data<float>(), t.shape(), t.data<float>(), t.shape(), y.data<float>(), shape,
                   [](float a, float) { return a; });
  return y;
}

}  // namespace neurite::autograd::detail
