// Matrix products: matmul (2-D, batched, batched-by-matrix) and linear.
#include <tbb/parallel_for.h>

#include "neurite/kernels/gemm.h"
#include "autograd/ops/tensor_math.h"
#include "autograd/reduce_kernels.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"
#include "neurite/parallel.h"

namespace neurite::autograd {

namespace {

using kernels::gemm;
using kernels::GemmShape;

// C[i] = op(A[i]) op(B[i]) (+ C[i] when accumulate) for i in [0, batch). With
// at least one product per thread each runs on one thread; otherwise each
// uses all threads.
void batched_gemm(int64_t batch, const GemmShape& s, const float* a, int64_t stride_a, const float* b, int64_t stride_b,
                  float* c, int64_t stride_c, bool accumulate) {
  const int64_t lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
  const float beta = accumulate ? 1.0f : 0.0f;
  const int threads = num_threads();
  if (batch >= threads && threads > 1) {
    tbb::parallel_for(int64_t{0}, batch, [&](int64_t i) {
      gemm(s, 1.0f, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, s.n, 1);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i)
      gemm(s, 1.0f, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, s.n, threads);
  }
}

void check_float(const Variable& v, const char* op, const char* what) {
  check<DtypeError>(v.dtype() == Dtype::f32, "{}: {} must be float32, got {}", op, what, to_string(v.dtype()));
}

}  // namespace

Variable matmul(const Variable& a, const Variable& b) {
  check_float(a, "matmul", "a");
  check_float(b, "matmul", "b");
  check<ShapeError>(a.dim() >= 2 && b.dim() >= 2, "matmul: operands must be at least 2-D, got {} and {}",
                    ShapeArg{a.shape()}, ShapeArg{b.shape()});
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  check<ShapeError>(b.size(-2) == k, "matmul: {} x {}: inner dimensions {} and {} differ", ShapeArg{a.shape()},
                    ShapeArg{b.shape()}, k, b.size(-2));
  const bool shared_b = b.dim() == 2;  // (..., M, K) x (K, N)
  check<ShapeError>(shared_b || (a.dim() == b.dim() && std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin())),
                    "matmul: batch dimensions of {} and {} differ", ShapeArg{a.shape()}, ShapeArg{b.shape()});
  Shape out_shape(a.shape().begin(), a.shape().end() - 1);
  out_shape.push_back(n);
  Tensor y = Tensor::empty(out_shape);
  const int64_t batch = a.numel() / (m * k);
  if (shared_b) {  // one product over all rows of a
    batched_gemm(1, {batch * m, n, k}, a.data().data<float>(), 0, b.data().data<float>(), 0, y.data<float>(), 0, false);
  } else {
    batched_gemm(batch, {m, n, k}, a.data().data<float>(), m * k, b.data().data<float>(), k * n, y.data<float>(), m * n,
                 false);
  }
  return traced(Variable(y, {a, b}, [m, n, k, batch, shared_b](const Tensor& g, std::vector<Variable>& in) {
    const float* pg = g.data<float>();
    const float* pa = in[0].data().data<float>();
    const float* pb = in[1].data().data<float>();
    if (in[0].requires_grad()) {  // dA = g B^T
      Tensor da = Tensor::empty(in[0].shape());
      if (shared_b) batched_gemm(1, {batch * m, k, n, false, true}, pg, 0, pb, 0, da.data<float>(), 0, false);
      else batched_gemm(batch, {m, k, n, false, true}, pg, m * n, pb, k * n, da.data<float>(), m * k, false);
      in[0].add_grad(std::move(da));
    }
    if (in[1].requires_grad()) {  // dB = A^T g
      Tensor db = Tensor::empty(in[1].shape());
      if (shared_b) batched_gemm(1, {k, n, batch * m, true, false}, pa, 0, pg, 0, db.data<float>(), 0, false);
      else batched_gemm(batch, {k, n, m, true, false}, pa, m * k, pg, m * n, db.data<float>(), k * n, false);
      in[1].add_grad(std::move(db));
    }
  }), "matmul");
}

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  check_float(x, "linear", "input");
  check_float(weight, "linear", "weight");
  check<ShapeError>(weight.dim() == 2, "linear: weight must be (out, in), got {}", ShapeArg{weight.shape()});
  const int64_t out_features = weight.size(0), in_features = weight.size(1);
  check<ShapeError>(x.dim() >= 1 && x.size(-1) == in_features, "linear: weight {} expects {} input features, got input {}",
                    ShapeArg{weight.shape()}, in_features, ShapeArg{x.shape()});
  if (bias.defined()) {
    check_float(bias, "linear", "bias");
    check<ShapeError>(bias.shape() == Shape{out_features}, "linear: bias must be [{}], got {}", out_features,
                      ShapeArg{bias.shape()});
  }
  const int64_t rows = x.numel() / in_features;
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor y = Tensor::empty(out_shape);
  float* py = y.data<float>();
  if (bias.defined()) {  // start from the bias and accumulate the product onto it
    const float* pb = bias.data().data<float>();
    for (int64_t r = 0; r < rows; ++r) std::copy(pb, pb + out_features, py + r * out_features);
  }
  // y (rows, out) = x (rows, in) . W^T
  gemm({rows, out_features, in_features, false, true}, 1.0f, x.data().data<float>(), in_features,
       weight.data().data<float>(), in_features, bias.defined() ? 1.0f : 0.0f, py, out_features, num_threads());
  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return traced(Variable(y, inputs, [rows, in_features, out_features](const Tensor& g, std::vector<Variable>& in) {
    const float* pg = g.data<float>();
    if (in[0].requires_grad()) {  // dx (rows, in) = g (rows, out) . W (out, in)
      Tensor dx = Tensor::empty(in[0].shape());
      gemm({rows, in_features, out_features}, 1.0f, pg, out_features, in[1].data().data<float>(), in_features, 0.0f,
           dx.data<float>(), in_features, num_threads());
      in[0].add_grad(std::move(dx));
    }
    if (in[1].requires_grad()) {  // dW (out, in) = g^T (out, rows) . x (rows, in)
      Tensor dw = Tensor::empty(in[1].shape());
      gemm({out_features, in_features, rows, true, false}, 1.0f, pg, out_features, in[0].data().data<float>(),
           in_features, 0.0f, dw.data<float>(), in_features, num_threads());
      in[1].add_grad(std::move(dw));
    }
    if (in.size() > 2 && in[2].requires_grad()) {
      Tensor db = Tensor::empty({out_features});
      detail::sum_dim(pg, {1, rows, out_features}, db.data<float>());
      in[2].add_grad(std::move(db));
    }
  }), "linear");
}

}  // namespace neurite::autograd
