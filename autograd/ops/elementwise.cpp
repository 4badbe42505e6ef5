// Elementwise ops: broadcasting arithmetic and activations.
#include <cmath>

#include "autograd/elementwise_kernels.h"
#include "autograd/ops/tensor_math.h"
#include "autograd/reduce_kernels.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t ea = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t eb = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    check<ShapeError>(ea == eb || ea == 1 || eb == 1, "{}: shapes {} and {} do not broadcast", op, to_string(a),
                      to_string(b));
    out[i] = ea == 1 ? eb : ea;
  }
  return out;
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const auto lead = static_cast<int64_t>(t.dim() - shape.size());
  Tensor r = t;
  if (lead > 0) {  // fold the leading dimensions into one and sum it away
    Shape folded{numel(Shape(t.shape().begin(), t.shape().begin() + lead))};
    folded.insert(folded.end(), t.shape().begin() + lead, t.shape().end());
    r = detail::sum_keepdim(t.reshape(folded), 0).reshape(shape.empty() ? Shape{} : Shape(folded.begin() + 1, folded.end()));
  }
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d)
    if (shape[d] == 1 && r.shape()[d] != 1) r = detail::sum_keepdim(r, d);
  return r.reshape(shape);
}

namespace {

void check_float(const Variable& v, const char* op) {
  check<DtypeError>(v.dtype() == Dtype::f32, "{}: expected a float32 tensor, got {} of shape {}", op,
                    to_string(v.dtype()), ShapeArg{v.shape()});
}

template <typename F>
Tensor broadcast(const Tensor& a, const Tensor& b, const char* op, F f) {
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor y = Tensor::empty(out_shape);
  detail::broadcast_binary(a.data<float>(), a.shape(), b.data<float>(), b.shape(), y.data<float>(), out_shape, f);
  return y;
}

// The gradient of an elementwise op: g * f(x...) over arrays of equal shape.
template <typename F>
Tensor grad_map(const Tensor& g, const Tensor& x, F f) {
  Tensor out = Tensor::empty(x.shape());
  detail::map2(g.data<float>(), x.data<float>(), out.data<float>(), g.numel(), f);
  return out;
}

}  // namespace

Variable add(const Variable& a, const Variable& b) {
  check_float(a, "add");
  check_float(b, "add");
  return traced(Variable(broadcast(a.data(), b.data(), "add", [](float x, float y) { return x + y; }), {a, b},
                  [](const Tensor& g, std::vector<Variable>& in) {
                    for (auto& v : in)
                      if (v.requires_grad()) v.add_grad(sum_to(g, v.shape()));
                  }), "add");
}

Variable sub(const Variable& a, const Variable& b) {
  check_float(a, "sub");
  check_float(b, "sub");
  return traced(Variable(broadcast(a.data(), b.data(), "sub", [](float x, float y) { return x - y; }), {a, b},
                  [](const Tensor& g, std::vector<Variable>& in) {
                    if (in[0].requires_grad()) in[0].add_grad(sum_to(g, in[0].shape()));
                    if (in[1].requires_grad()) in[1].add_grad(detail::scale(sum_to(g, in[1].shape()), -1.0f));
                  }), "sub");
}

Variable mul(const Variable& a, const Variable& b) {
  check_float(a, "mul");
  check_float(b, "mul");
  return traced(Variable(broadcast(a.data(), b.data(), "mul", [](float x, float y) { return x * y; }), {a, b},
                  [](const Tensor& g, std::vector<Variable>& in) {
                    auto times = [](float x, float y) { return x * y; };
                    const Tensor a = in[0].data(), b = in[1].data();
                    if (in[0].requires_grad()) in[0].add_grad(sum_to(broadcast(g, b, "mul", times), a.shape()));
                    if (in[1].requires_grad()) in[1].add_grad(sum_to(broadcast(g, a, "mul", times), b.shape()));
                  }), "mul");
}

Variable div(const Variable& a, const Variable& b) {
  check_float(a, "div");
  check_float(b, "div");
  return traced(Variable(broadcast(a.data(), b.data(), "div", [](float x, float y) { return x / y; }), {a, b},
                  [](const Tensor& g, std::vector<Variable>& in) {
                    const Tensor a = in[0].data(), b = in[1].data();
                    const Tensor g_over_b = broadcast(g, b, "div", [](float x, float y) { return x / y; });
                    if (in[0].requires_grad()) in[0].add_grad(sum_to(g_over_b, a.shape()));
                    if (in[1].requires_grad()) {
                      // d(a/b)/db = -a/b^2 = -(g/b) * (a/b)
                      const Tensor q = broadcast(a, b, "div", [](float x, float y) { return x / y; });
                      in[1].add_grad(sum_to(grad_map(g_over_b, q, [](float gb, float ab) { return -gb * ab; }), b.shape()));
                    }
                  }), "div");
}

Variable add(const Variable& a, float b) {
  check_float(a, "add");
  Tensor y = Tensor::empty(a.shape());
  detail::map(a.data().data<float>(), y.data<float>(), a.numel(), [b](float x) { return x + b; });
  return traced(Variable(y, {a}, [](const Tensor& g, std::vector<Variable>& in) { in[0].add_grad(g); }), "add_scalar", {{"value", static_cast<double>(b)}});
}

Variable mul(const Variable& a, float b) {
  check_float(a, "mul");
  return traced(Variable(detail::scale(a.data(), b), {a},
                  [b](const Tensor& g, std::vector<Variable>& in) { in[0].add_grad(detail::scale(g, b)); }), "mul_scalar", {{"value", static_cast<double>(b)}});
}

Variable neg(const Variable& x) { return mul(x, -1.0f); }

Variable exp(const Variable& x) {
  check_float(x, "exp");
  Tensor y = detail::map_tensor(x.data(), [](float v) { return std::exp(v); });
  return traced(Variable(y, {x}, [y](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, y, [](float gi, float yi) { return gi * yi; }));
  }), "exp");
}

Variable log(const Variable& x) {
  check_float(x, "log");
  return traced(Variable(detail::map_tensor(x.data(), [](float v) { return std::log(v); }), {x},
                  [](const Tensor& g, std::vector<Variable>& in) {
                    in[0].add_grad(grad_map(g, in[0].data(), [](float gi, float xi) { return gi / xi; }));
                  }), "log");
}

Variable sqrt(const Variable& x) {
  check_float(x, "sqrt");
  Tensor y = detail::map_tensor(x.data(), [](float v) { return std::sqrt(v); });
  return traced(Variable(y, {x}, [y](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, y, [](float gi, float yi) { return gi * 0.5f / yi; }));
  }), "sqrt");
}

Variable pow(const Variable& x, float exponent) {
  check_float(x, "pow");
  Tensor y = Tensor::empty(x.shape());
  detail::map(x.data().data<float>(), y.data<float>(), x.numel(), [exponent](float v) { return std::pow(v, exponent); });
  return traced(Variable(y, {x}, [exponent](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, in[0].data(), [exponent](float gi, float xi) {
      return gi * exponent * std::pow(xi, exponent - 1.0f);
    }));
  }), "pow", {{"exponent", static_cast<double>(exponent)}});
}

Variable clamp(const Variable& x, std::optional<float> min, std::optional<float> max) {
  check_float(x, "clamp");
  const float lo = min.value_or(-INFINITY), hi = max.value_or(INFINITY);
  check(lo <= hi, "clamp: min ({}) is greater than max ({})", lo, hi);
  Tensor y = Tensor::empty(x.shape());
  detail::map(x.data().data<float>(), y.data<float>(), x.numel(), [lo, hi](float v) { return std::min(std::max(v, lo), hi); });
  return traced(Variable(y, {x}, [lo, hi](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, in[0].data(), [lo, hi](float gi, float xi) { return xi >= lo && xi <= hi ? gi : 0.0f; }));
  }), "clamp", {{"min", static_cast<double>(lo)}, {"max", static_cast<double>(hi)}});
}

Variable relu(const Variable& x) {
  check_float(x, "relu");
  Tensor y = detail::map_tensor(x.data(), [](float v) { return v > 0 ? v : 0.0f; });
  return traced(Variable(y, {x}, [y](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, y, [](float gi, float yi) { return yi > 0 ? gi : 0.0f; }));
  }), "relu");
}

Variable erf(const Variable& x) {
  check_float(x, "erf");
  return traced(Variable(detail::map_tensor(x.data(), [](float v) { return std::erf(v); }), {x},
                         [](const Tensor& g, std::vector<Variable>& in) {
                           constexpr float k2OverSqrtPi = 1.12837916709551257f;
                           in[0].add_grad(grad_map(g, in[0].data(), [](float gi, float v) {
                             return gi * k2OverSqrtPi * std::exp(-v * v);
                           }));
                         }),
                "erf");
}

Variable abs(const Variable& x) {
  check_float(x, "abs");
  return traced(Variable(detail::map_tensor(x.data(), [](float v) { return std::abs(v); }), {x},
                         [](const Tensor& g, std::vector<Variable>& in) {
                           in[0].add_grad(grad_map(g, in[0].data(), [](float gi, float v) {
                             return v > 0 ? gi : v < 0 ? -gi : 0.0f;
                           }));
                         }),
                "abs");
}

namespace {

// max (larger = true) or min of a and b; on ties each input gets half the gradient.
Variable extremum(const Variable& a, const Variable& b, bool larger, const char* op) {
  check_float(a, op);
  check_float(b, op);
  auto pick = [larger](float x, float y) { return larger ? std::max(x, y) : std::min(x, y); };
  return traced(Variable(broadcast(a.data(), b.data(), op, pick), {a, b},
                         [larger, op](const Tensor& g, std::vector<Variable>& in) {
                           // Each input's share: 1 where it wins, 1/2 on a tie, 0 where it loses.
                           const Tensor share = broadcast(in[0].data(), in[1].data(), op, [larger](float x, float y) {
                             return x == y ? 0.5f : (larger ? x > y : x < y) ? 1.0f : 0.0f;
                           });
                           auto times = [](float x, float y) { return x * y; };
                           if (in[0].requires_grad()) in[0].add_grad(sum_to(broadcast(g, share, op, times), in[0].shape()));
                           if (in[1].requires_grad()) {
                             const Tensor other = detail::map_tensor(share, [](float s) { return 1.0f - s; });
                             in[1].add_grad(sum_to(broadcast(g, other, op, times), in[1].shape()));
                           }
                         }),
                op);
}

}  // namespace

Variable maximum(const Variable& a, const Variable& b) { return extremum(a, b, true, "maximum"); }
Variable minimum(const Variable& a, const Variable& b) { return extremum(a, b, false, "minimum"); }

Variable where(const Tensor& cond, const Variable& a, const Variable& b) {
  check_float(a, "where");
  check_float(b, "where");
  const Shape out = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const Tensor zeros = Tensor::zeros(out);
  auto first = [](float x, float) { return x; };
  const Tensor c = cond.dtype() == Dtype::f32 ? cond : cond.to(Dtype::f32);
  const Tensor taken = broadcast(c, zeros, "where", [](float x, float) { return x != 0 ? 1.0f : 0.0f; });
  const Tensor otherwise = broadcast(b.data(), zeros, "where", first);
  Tensor y = broadcast(a.data(), zeros, "where", first);
  float* py = y.data<float>();
  const float *pt = taken.data<float>(), *pb = otherwise.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i)
    if (pt[i] == 0.0f) py[i] = pb[i];
  return traced(Variable(y, {a, b}, [taken](const Tensor& g, std::vector<Variable>& in) {
    if (in[0].requires_grad())
      in[0].add_grad(sum_to(grad_map(g, taken, [](float gi, float t) { return gi * t; }), in[0].shape()));
    if (in[1].requires_grad())
      in[1].add_grad(sum_to(grad_map(g, taken, [](float gi, float t) { return gi * (1.0f - t); }), in[1].shape()));
  }), "where");
}

Variable gelu(const Variable& x, GeluApproximation approximate) {
  check_float(x, "gelu");
  constexpr float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f;
  constexpr float kTanhScale = 0.79788456080286536f, kCubic = 0.044715f;  // sqrt(2/pi)
  Tensor y = Tensor::empty(x.shape());
  if (approximate == GeluApproximation::none) {
    detail::map(x.data().data<float>(), y.data<float>(), x.numel(),
                [=](float v) { return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2)); });
  } else {
    detail::map(x.data().data<float>(), y.data<float>(), x.numel(), [=](float v) {
      return 0.5f * v * (1.0f + std::tanh(kTanhScale * (v + kCubic * v * v * v)));
    });
  }
  return traced(Variable(y, {x}, [=](const Tensor& g, std::vector<Variable>& in) {
    if (approximate == GeluApproximation::none) {
      in[0].add_grad(grad_map(g, in[0].data(), [=](float gi, float v) {
        const float cdf = 0.5f * (1.0f + std::erf(v * kInvSqrt2));
        return gi * (cdf + v * kInvSqrt2Pi * std::exp(-0.5f * v * v));
      }));
    } else {
      in[0].add_grad(grad_map(g, in[0].data(), [=](float gi, float v) {
        const float t = std::tanh(kTanhScale * (v + kCubic * v * v * v));
        const float dt = (1.0f - t * t) * kTanhScale * (1.0f + 3.0f * kCubic * v * v);
        return gi * (0.5f * (1.0f + t) + 0.5f * v * dt);
      }));
    }
  }), "gelu", {{"tanh", int64_t{approximate == GeluApproximation::tanh}}});
}

Variable sigmoid(const Variable& x) {
  check_float(x, "sigmoid");
  Tensor y = detail::map_tensor(x.data(), [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
  return traced(Variable(y, {x}, [y](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, y, [](float gi, float yi) { return gi * yi * (1.0f - yi); }));
  }), "sigmoid");
}

Variable tanh(const Variable& x) {
  check_float(x, "tanh");
  Tensor y = detail::map_tensor(x.data(), [](float v) { return std::tanh(v); });
  return traced(Variable(y, {x}, [y](const Tensor& g, std::vector<Variable>& in) {
    in[0].add_grad(grad_map(g, y, [](float gi, float yi) { return gi * (1.0f - yi * yi); }));
  }), "tanh");
}

Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
Variable operator-(const Variable& x) { return neg(x); }
Variable operator+(const Variable& a, float b) { return add(a, b); }
Variable operator-(const Variable& a, float b) { return add(a, -b); }
Variable operator*(const Variable& a, float b) { return mul(a, b); }
Variable operator/(const Variable& a, float b) { return mul(a, 1.0f / b); }
Variable operator*(float a, const Variable& b) { return mul(b, a); }

}  // namespace neurite::autograd
