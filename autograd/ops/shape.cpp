// Shape ops: every one is a copy (or a shared-storage reshape) whose gradient
// is the inverse movement.
#include <numeric>

#include "autograd/ops/tensor_math.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

Variable reshape(const Variable& x, const Shape& shape) {
  return traced(Variable(x.data().reshape(shape), {x}, [](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(g.reshape(in[0].shape()));
  }), "reshape");
}

Variable flatten(const Variable& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = normalize_dim(start_dim, x.dim(), "flatten");
  end_dim = normalize_dim(end_dim, x.dim(), "flatten");
  check<ShapeError>(start_dim <= end_dim, "flatten: start_dim {} is after end_dim {}", start_dim, end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + start_dim);
  shape.push_back(numel(Shape(x.shape().begin() + start_dim, x.shape().begin() + end_dim + 1)));
  shape.insert(shape.end(), x.shape().begin() + end_dim + 1, x.shape().end());
  return reshape(x, shape);
}

Variable permute(const Variable& x, const std::vector<int64_t>& order) {
  Tensor y = x.data().permute(order);
  return traced(Variable(y, {x}, [order](const Tensor& g, std::vector<Variable>& in) {
    std::vector<int64_t> inverse(order.size());
    for (size_t i = 0; i < order.size(); ++i)
      inverse[normalize_dim(order[i], static_cast<int64_t>(order.size()), "permute")] = static_cast<int64_t>(i);
    in[0].add_grad(g.permute(inverse));
  }), "permute", {{"order", order}});
}

Variable transpose(const Variable& x, int64_t dim0, int64_t dim1) {
  std::vector<int64_t> order(x.shape().size());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[normalize_dim(dim0, x.dim(), "transpose")], order[normalize_dim(dim1, x.dim(), "transpose")]);
  return permute(x, order);
}

namespace {

// dx (shape `shape`) with g's slices along `dim` added at the positions `index`:
// the adjoint of index_select.
Tensor index_add(const Tensor& g, int64_t dim, const int64_t* index, const Shape& shape) {
  Tensor dx = Tensor::zeros(shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= g.size(d);
  for (int64_t d = dim + 1; d < g.dim(); ++d) inner *= g.size(d);
  const float* pg = g.data<float>();
  float* pd = dx.data<float>();
  const int64_t n_in = shape[dim], n_out = g.size(dim);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n_out; ++i)
      for (int64_t j = 0; j < inner; ++j) pd[(o * n_in + index[i]) * inner + j] += pg[(o * n_out + i) * inner + j];
  return dx;
}

}  // namespace

Variable slice(const Variable& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor y = x.data().slice(dim, start, end, step);
  dim = normalize_dim(dim, x.dim(), "slice");
  const int64_t n = x.size(dim);
  // The same clamping as Tensor::slice, to know which indices were taken.
  const int64_t first = std::clamp<int64_t>(start < 0 ? start + n : start, 0, n);
  return traced(Variable(y, {x}, [dim, first, step](const Tensor& g, std::vector<Variable>& in) {
    std::vector<int64_t> index(static_cast<size_t>(g.size(dim)));
    for (size_t i = 0; i < index.size(); ++i) index[i] = first + static_cast<int64_t>(i) * step;
    in[0].add_grad(index_add(g, dim, index.data(), in[0].shape()));
  }), "slice", {{"dim", dim}, {"start", first}, {"step", step}});
}

Variable concat(const std::vector<Variable>& parts, int64_t dim) {
  std::vector<Tensor> tensors;
  for (const auto& p : parts) tensors.push_back(p.data());
  Tensor y = Tensor::concat(tensors, dim);
  dim = normalize_dim(dim, y.dim(), "concat");
  return traced(Variable(y, parts, [dim](const Tensor& g, std::vector<Variable>& in) {
    int64_t offset = 0;
    for (auto& v : in) {
      const int64_t n = v.size(dim);
      if (v.requires_grad()) v.add_grad(g.slice(dim, offset, offset + n));
      offset += n;
    }
  }), "concat", {{"dim", dim}});
}

Variable index_select(const Variable& x, int64_t dim, const Tensor& index) {
  Tensor y = x.data().index_select(dim, index);
  dim = normalize_dim(dim, x.dim(), "index_select");
  return traced(Variable(y, {x}, [dim, index](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(index_add(g, dim, index.data<int64_t>(), in[0].shape()));
  }), "index_select", {{"dim", dim}}, {index});
}

Variable expand(const Variable& x, const Shape& shape) {
  check<DtypeError>(x.dtype() == Dtype::f32, "expand: input must be float32");
  check<ShapeError>(broadcast_shapes(x.shape(), shape, "expand") == shape, "expand: {} does not broadcast to {}",
                    ShapeArg{x.shape()}, ShapeArg{shape});
  return traced(Variable(detail::expand(x.data(), shape), {x},
                         [](const Tensor& g, std::vector<Variable>& in) { in[0].add_grad(sum_to(g, in[0].shape())); }),
                "expand", {{"shape", shape}});
}

}  // namespace neurite::autograd
