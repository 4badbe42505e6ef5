// Fake quantisation: the forward of quantisation-aware training.
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"
#include "neurite/error.h"
#include "neurite/kernels/quantize.h"

namespace neurite::autograd {

namespace {

// Runs f(grid, offset, length) over every run of one channel of x.
template <typename F>
void for_each_run(const Shape& shape, int64_t axis, const Tensor& scale, const Tensor& zero_point, int64_t qmin,
                  int64_t qmax, F f) {
  kernels::for_each_channel_run(shape, axis, [&](int64_t c, int64_t at, int64_t n) {
    const kernels::QuantGrid g{.scale = scale.data<float>()[c],
                               .zero_point = static_cast<int32_t>(zero_point.data<int64_t>()[c]),
                               .qmin = static_cast<int32_t>(qmin),
                               .qmax = static_cast<int32_t>(qmax)};
    f(g, at, n);
  });
}

}  // namespace

Variable fake_quantize(const Variable& x, const Tensor& scale, const Tensor& zero_point, int64_t quant_min,
                       int64_t quant_max, int64_t axis) {
  check<DtypeError>(x.dtype() == Dtype::f32, "fake_quantize: x must be float32, got {}", to_string(x.dtype()));
  check<DtypeError>(scale.dtype() == Dtype::f32 && zero_point.dtype() == Dtype::i64,
                    "fake_quantize: scale must be float32 and zero_point int64, got {} and {}",
                    to_string(scale.dtype()), to_string(zero_point.dtype()));
  check(quant_min < quant_max && quant_min >= -(int64_t{1} << 20) && quant_max <= (int64_t{1} << 20),
        "fake_quantize: quant range [{}, {}] is empty or outside [-2^20, 2^20]", quant_min, quant_max);
  check<ShapeError>(axis >= -1 && axis < x.dim(), "fake_quantize: axis {} is out of range for x {}", axis,
                    ShapeArg{x.shape()});
  const int64_t channels = axis < 0 ? 1 : x.size(axis);
  check<ShapeError>(scale.numel() == channels && zero_point.numel() == channels,
                    "fake_quantize: scale {} and zero_point {} must hold {} values (axis {} of x {})",
                    ShapeArg{scale.shape()}, ShapeArg{zero_point.shape()}, channels, axis, ShapeArg{x.shape()});
  for (int64_t c = 0; c < channels; ++c) {
    const float s = scale.data<float>()[c];
    const int64_t zp = zero_point.data<int64_t>()[c];
    check(s > 0 && std::isfinite(s), "fake_quantize: scale {} of channel {} is not a positive finite number", s, c);
    check(zp >= quant_min && zp <= quant_max, "fake_quantize: zero_point {} of channel {} is outside [{}, {}]", zp, c,
          quant_min, quant_max);
  }
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data().data<float>();
  float* py = y.data<float>();
  for_each_run(x.shape(), axis, scale, zero_point, quant_min, quant_max,
               [&](const kernels::QuantGrid& g, int64_t at, int64_t n) { kernels::fake_quantize(g, px + at, py + at, n); });
  // The grid as it is now: a quantiser's buffers change in place at its next call.
  const Tensor grid_scale = scale.clone(), grid_zero_point = zero_point.clone();
  return traced(Variable(y, {x}, [=](const Tensor& grad, std::vector<Variable>& in) {
    Tensor dx = Tensor::empty(grad.shape());
    const float* pg = grad.data<float>();
    const float* pxs = in[0].data().data<float>();
    float* pd = dx.data<float>();
    for_each_run(grad.shape(), axis, grid_scale, grid_zero_point, quant_min, quant_max, [&](const kernels::QuantGrid& g, int64_t at, int64_t n) {
      kernels::fake_quantize_grad(g, pxs + at, pg + at, pd + at, n);
    });
    in[0].add_grad(std::move(dx));
  }), "fake_quantize", {{"quant_min", quant_min}, {"quant_max", quant_max}, {"axis", axis}}, {scale, zero_point});
}

}  // namespace neurite::autograd
