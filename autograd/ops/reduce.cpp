// Reductions and the softmax family.
#include <algorithm>
#include <cmath>

#include "autograd/ops/tensor_math.h"
#include "autograd/reduce_kernels.h"
#include "neurite/kernels/rows.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

namespace {

void check_float(const Variable& v, const char* op) {
  check<DtypeError>(v.dtype() == Dtype::f32, "{}: expected a float32 tensor, got {}", op, to_string(v.dtype()));
}

// Normalised, sorted, unique dimensions; all of them when `dims` is empty.
std::vector<int64_t> reduce_dims(const std::vector<int64_t>& dims, int64_t rank, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < rank; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(normalize_dim(d, rank, op));
  std::sort(out.begin(), out.end());
  check<ShapeError>(std::adjacent_find(out.begin(), out.end()) == out.end(), "{}: a dimension is repeated", op);
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Variable sum_over(const Variable& x, const std::vector<int64_t>& dims_in, bool keepdim, float factor, const char* op) {
  check_float(x, op);
  const auto dims = reduce_dims(dims_in, x.dim(), op);
  Tensor r = x.data();
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) r = detail::sum_keepdim(r, *it);
  if (factor != 1.0f) r = detail::scale(r, factor);
  const Shape kept = reduced_shape(x.shape(), dims, true);
  return Variable(r.reshape(reduced_shape(x.shape(), dims, keepdim)), {x},
                  [kept, factor](const Tensor& g, std::vector<Variable>& in) {
                    Tensor e = detail::expand(g.reshape(kept), in[0].shape());
                    in[0].add_grad(factor == 1.0f ? e : detail::scale(e, factor));
                  });
}

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims_in, const char* op) {
  int64_t n = 1;
  for (int64_t d : reduce_dims(dims_in, static_cast<int64_t>(shape.size()), op)) n *= shape[d];
  return n;
}

}  // namespace

Variable sum(const Variable& x) { return traced(sum_over(x, {}, false, 1.0f, "sum"), "sum"); }
Variable sum(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  check<ShapeError>(!dims.empty(), "sum: no dimensions given; use sum(x) for all");
  return traced(sum_over(x, dims, keepdim, 1.0f, "sum"), "sum", {{"dims", dims}, {"keepdim", int64_t{keepdim}}});
}

Variable mean(const Variable& x) {
  check<ShapeError>(x.numel() > 0, "mean: empty tensor of shape {}", ShapeArg{x.shape()});
  return traced(sum_over(x, {}, false, 1.0f / static_cast<float>(x.numel()), "mean"), "mean");
}
Variable mean(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  check<ShapeError>(!dims.empty(), "mean: no dimensions given; use mean(x) for all");
  const int64_t n = reduced_count(x.shape(), dims, "mean");
  check<ShapeError>(n > 0, "mean: reducing over an empty dimension of {}", ShapeArg{x.shape()});
  return traced(sum_over(x, dims, keepdim, 1.0f / static_cast<float>(n), "mean"), "mean",
                {{"dims", dims}, {"keepdim", int64_t{keepdim}}});
}

Variable max(const Variable& x, int64_t dim, bool keepdim) {
  check_float(x, "max");
  dim = normalize_dim(dim, x.dim(), "max");
  const auto v = detail::dim_view(x.shape(), dim);
  check<ShapeError>(v.n > 0, "max: dimension {} of {} is empty", dim, ShapeArg{x.shape()});
  Tensor values = Tensor::empty(reduced_shape(x.shape(), {dim}, keepdim));
  Tensor argmax = Tensor::empty({v.outer * v.inner}, Dtype::i64);
  const float* px = x.data().data<float>();
  float* pv = values.data<float>();
  int64_t* pa = argmax.data<int64_t>();
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) {
      const float* p = px + o * v.n * v.inner + i;
      int64_t best = 0;
      for (int64_t k = 1; k < v.n; ++k)
        if (p[k * v.inner] > p[best * v.inner] || std::isnan(p[k * v.inner])) best = k;
      pv[o * v.inner + i] = p[best * v.inner];
      pa[o * v.inner + i] = best;
    }
  return traced(Variable(values, {x}, [argmax, v](const Tensor& g, std::vector<Variable>& in) {
    Tensor dx = Tensor::zeros(in[0].shape());
    float* pd = dx.data<float>();
    const float* pg = g.data<float>();
    const int64_t* pa = argmax.data<int64_t>();
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i)
        pd[(o * v.n + pa[o * v.inner + i]) * v.inner + i] = pg[o * v.inner + i];
    in[0].add_grad(std::move(dx));
  }), "max", {{"dim", dim}, {"keepdim", int64_t{keepdim}}});
}

namespace {

// Calls f(pointer to the first element, stride) for every line along `dim`.
template <typename F>
void for_each_line(const detail::DimView& v, F f) {
  detail::parallel_range(v.outer * v.inner, std::max<int64_t>(1, detail::kElementGrain / std::max<int64_t>(v.n, 1)),
                         [&](int64_t b, int64_t e) {
    for (int64_t line = b; line < e; ++line) {
      const int64_t o = line / v.inner, i = line % v.inner;
      f(o * v.n * v.inner + i, v.inner);
    }
  });
}

// y = softmax(x) or log_softmax(x) along the view's n axis.
Tensor softmax_forward(const Tensor& x, const detail::DimView& v, bool log) {
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for_each_line(v, [&](int64_t start, int64_t stride) {
    const float* a = px + start;
    float* b = py + start;
    if (stride == 1 && !log) return kernels::softmax_rows(a, b, v.n, 0, 1);  // the last axis: vectorised
    float m = -INFINITY;
    for (int64_t k = 0; k < v.n; ++k) m = std::max(m, a[k * stride]);
    double total = 0;
    for (int64_t k = 0; k < v.n; ++k) total += std::exp(a[k * stride] - m);
    if (log) {
      const auto lse = static_cast<float>(m + std::log(total));
      for (int64_t k = 0; k < v.n; ++k) b[k * stride] = a[k * stride] - lse;
    } else {
      const auto inv = static_cast<float>(1.0 / total);
      for (int64_t k = 0; k < v.n; ++k) b[k * stride] = std::exp(a[k * stride] - m) * inv;
    }
  });
  return y;
}

}  // namespace

Variable softmax(const Variable& x, int64_t dim) {
  check_float(x, "softmax");
  const auto v = detail::dim_view(x.shape(), normalize_dim(dim, x.dim(), "softmax"));
  Tensor y = softmax_forward(x.data(), v, false);
  return traced(Variable(y, {x}, [y, v](const Tensor& g, std::vector<Variable>& in) {
    // dx = y * (g - sum(g * y))
    Tensor dx = Tensor::empty(y.shape());
    const float *py = y.data<float>(), *pg = g.data<float>();
    float* pd = dx.data<float>();
    for_each_line(v, [&](int64_t start, int64_t stride) {
      double dot = 0;
      for (int64_t k = 0; k < v.n; ++k) dot += pg[start + k * stride] * py[start + k * stride];
      for (int64_t k = 0; k < v.n; ++k) {
        const int64_t j = start + k * stride;
        pd[j] = py[j] * (pg[j] - static_cast<float>(dot));
      }
    });
    in[0].add_grad(std::move(dx));
  }), "softmax", {{"dim", normalize_dim(dim, x.dim(), "softmax")}});
}

Variable log_softmax(const Variable& x, int64_t dim) {
  check_float(x, "log_softmax");
  const auto v = detail::dim_view(x.shape(), normalize_dim(dim, x.dim(), "log_softmax"));
  Tensor y = softmax_forward(x.data(), v, true);
  return traced(Variable(y, {x}, [y, v](const Tensor& g, std::vector<Variable>& in) {
    // dx = g - exp(y) * sum(g)
    Tensor dx = Tensor::empty(y.shape());
    const float *py = y.data<float>(), *pg = g.data<float>();
    float* pd = dx.data<float>();
    for_each_line(v, [&](int64_t start, int64_t stride) {
      double total = 0;
      for (int64_t k = 0; k < v.n; ++k) total += pg[start + k * stride];
      for (int64_t k = 0; k < v.n; ++k) {
        const int64_t j = start + k * stride;
        pd[j] = pg[j] - std::exp(py[j]) * static_cast<float>(total);
      }
    });
    in[0].add_grad(std::move(dx));
  }), "log_softmax", {{"dim", normalize_dim(dim, x.dim(), "log_softmax")}});
}

}  // namespace neurite::autograd
