// conv2d: shape checks and autograd around the kernels of kernels/convolution.h.
#include "neurite/kernels/convolution.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

namespace {

kernels::ConvShape plan_conv(const Shape& x, const Shape& w, const Conv2dOptions& o) {
  check<ShapeError>(x.size() == 4, "conv2d: input must be (N, C, H, W), got {}", to_string(x));
  check<ShapeError>(w.size() == 4, "conv2d: weight must be (F, C/groups, KH, KW), got {}", to_string(w));
  check(o.groups >= 1 && o.stride_h >= 1 && o.stride_w >= 1 && o.dilation_h >= 1 && o.dilation_w >= 1 && o.pad_h >= 0 &&
            o.pad_w >= 0,
        "conv2d: stride ({},{}), dilation ({},{}) and groups ({}) must be positive, padding ({},{}) non-negative",
        o.stride_h, o.stride_w, o.dilation_h, o.dilation_w, o.groups, o.pad_h, o.pad_w);
  check<ShapeError>(x[1] % o.groups == 0 && w[0] % o.groups == 0,
                    "conv2d: {} input channels and {} filters must both divide into {} groups", x[1], w[0], o.groups);
  check<ShapeError>(w[1] * o.groups == x[1], "conv2d: weight {} expects {} input channels, got {} (input {})",
                    to_string(w), w[1] * o.groups, x[1], to_string(x));
  const int64_t out_h = (x[2] + 2 * o.pad_h - o.dilation_h * (w[2] - 1) - 1) / o.stride_h + 1;
  const int64_t out_w = (x[3] + 2 * o.pad_w - o.dilation_w * (w[3] - 1) - 1) / o.stride_w + 1;
  check<ShapeError>(out_h > 0 && out_w > 0, "conv2d: kernel {}x{} does not fit input {} with padding ({},{})", w[2],
                    w[3], to_string(x), o.pad_h, o.pad_w);
  return {x[0],       x[1],       x[2],       x[3],         w[0],         w[2],     w[3],  o.stride_h,
          o.stride_w, o.pad_h,    o.pad_w,    o.dilation_h, o.dilation_w, o.groups, out_h, out_w};
}

}  // namespace

Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, const Conv2dOptions& options) {
  check<DtypeError>(x.dtype() == Dtype::f32 && weight.dtype() == Dtype::f32, "conv2d: input and weight must be float32");
  const kernels::ConvShape s = plan_conv(x.shape(), weight.shape(), options);
  if (bias.defined())
    check<ShapeError>(bias.shape() == Shape{s.filters}, "conv2d: bias must be [{}], got {}", s.filters,
                      ShapeArg{bias.shape()});
  Tensor y = Tensor::empty({s.batch, s.filters, s.out_h, s.out_w});
  if (s.batch > 0)
    kernels::conv_forward(s, x.data().data<float>(), weight.data().data<float>(),
                          bias.defined() ? bias.data().data<float>() : nullptr, y.data<float>());

  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return traced(Variable(y, inputs, [s](const Tensor& grad, std::vector<Variable>& in) {
    const bool want_dx = in[0].requires_grad(), want_db = in.size() > 2 && in[2].requires_grad();
    const bool want_dw = in[1].requires_grad() || want_db;  // oneDNN yields db alongside dw
    // Zeroed for an empty batch; otherwise the kernel overwrites them.
    auto gradient = [&](bool wanted, const Shape& shape) {
      return !wanted ? Tensor() : s.batch > 0 ? Tensor::empty(shape) : Tensor::zeros(shape);
    };
    Tensor dx = gradient(want_dx, in[0].shape()), dw = gradient(want_dw, in[1].shape());
    Tensor db = gradient(want_db, {s.filters});
    if (s.batch > 0)
      kernels::conv_backward(s, in[0].data().data<float>(), in[1].data().data<float>(), grad.data<float>(),
                             want_dx ? dx.data<float>() : nullptr, want_dw ? dw.data<float>() : nullptr,
                             want_db ? db.data<float>() : nullptr);
    if (want_dx) in[0].add_grad(std::move(dx));
    if (in[1].requires_grad()) in[1].add_grad(std::move(dw));
    if (want_db) in[2].add_grad(std::move(db));
  }), "conv2d", {{"stride_h", options.stride_h}, {"stride_w", options.stride_w}, {"pad_h", options.pad_h}, {"pad_w", options.pad_w}, {"dilation_h", options.dilation_h}, {"dilation_w", options.dilation_w}, {"groups", options.groups}});
}

}  // namespace neurite::autograd
