// conv2d as im2col + GEMM, per sample and group, samples in parallel.
#include <tbb/combinable.h>
#include <tbb/parallel_for.h>

#include <vector>

#include "autograd/kernels/gemm.h"
#include "autograd/kernels/im2col.h"
#include "autograd/reduce_kernels.h"
#include "neurite/autograd/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/parallel.h"

namespace neurite::autograd {

namespace {

using kernels::ConvGeometry;
using kernels::gemm;

struct ConvPlan {
  int64_t batch, in_channels, filters, groups;
  ConvGeometry geometry;  // of one group of one sample
  int64_t filters_per_group() const { return filters / groups; }
  int64_t image_size() const { return geometry.channels * geometry.height * geometry.width; }  // one group
  int64_t out_size() const { return filters_per_group() * geometry.cols(); }                  // one group
  int64_t weight_size() const { return filters_per_group() * geometry.rows(); }                // one group
};

ConvPlan plan_conv(const Shape& x, const Shape& w, const Conv2dOptions& o) {
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
  ConvGeometry g{x[1] / o.groups, x[2], x[3], w[2], w[3], o.stride_h, o.stride_w, o.pad_h, o.pad_w,
                 o.dilation_h, o.dilation_w, 0, 0};
  g.out_h = (x[2] + 2 * o.pad_h - o.dilation_h * (w[2] - 1) - 1) / o.stride_h + 1;
  g.out_w = (x[3] + 2 * o.pad_w - o.dilation_w * (w[3] - 1) - 1) / o.stride_w + 1;
  check<ShapeError>(g.out_h > 0 && g.out_w > 0, "conv2d: kernel {}x{} does not fit input {} with padding ({},{})",
                    w[2], w[3], to_string(x), o.pad_h, o.pad_w);
  return {x[0], x[1], w[0], o.groups, g};
}

// Runs body(sample, scratch) for every sample, in parallel, with a column
// buffer per task (unused for pointwise convolutions).
template <typename Body>
void for_each_sample(const ConvPlan& p, Body&& body) {
  const int64_t scratch = p.geometry.is_pointwise() ? 0 : p.geometry.rows() * p.geometry.cols();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.batch), [&](const tbb::blocked_range<int64_t>& r) {
    std::vector<float> cols(static_cast<size_t>(scratch));
    for (int64_t n = r.begin(); n < r.end(); ++n) body(n, cols.data());
  });
}

// The columns of group `g` of sample image `x`: the image itself when pointwise.
const float* columns(const ConvPlan& p, const float* x_group, float* scratch) {
  if (p.geometry.is_pointwise()) return x_group;
  kernels::im2col(x_group, p.geometry, scratch);
  return scratch;
}

}  // namespace

Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, const Conv2dOptions& options) {
  check<DtypeError>(x.dtype() == Dtype::f32 && weight.dtype() == Dtype::f32, "conv2d: input and weight must be float32");
  const ConvPlan p = plan_conv(x.shape(), weight.shape(), options);
  if (bias.defined())
    check<ShapeError>(bias.shape() == Shape{p.filters}, "conv2d: bias must be [{}], got {}", p.filters,
                      to_string(bias.shape()));
  const ConvGeometry& g = p.geometry;
  Tensor y = Tensor::empty({p.batch, p.filters, g.out_h, g.out_w});
  const float* px = x.data().data<float>();
  const float* pw = weight.data().data<float>();
  const float* pb = bias.defined() ? bias.data().data<float>() : nullptr;
  float* py = y.data<float>();
  for_each_sample(p, [&](int64_t n, float* scratch) {
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      const float* cols = columns(p, px + (n * p.groups + grp) * p.image_size(), scratch);
      float* out = py + (n * p.groups + grp) * p.out_size();
      // out (F/g, OH*OW) = W_g (F/g, C/g*KH*KW) . cols (C/g*KH*KW, OH*OW)
      gemm({p.filters_per_group(), g.cols(), g.rows()}, 1.0f, pw + grp * p.weight_size(), g.rows(), cols, g.cols(),
           0.0f, out, g.cols(), 1);
      if (pb != nullptr)
        for (int64_t f = 0; f < p.filters_per_group(); ++f) {
          const float b = pb[grp * p.filters_per_group() + f];
          for (int64_t i = 0; i < g.cols(); ++i) out[f * g.cols() + i] += b;
        }
    }
  });

  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return Variable(y, inputs, [p](const Tensor& grad, std::vector<Variable>& in) {
    const ConvGeometry& g = p.geometry;
    const float* pg = grad.data<float>();
    const float* px = in[0].data().data<float>();
    const float* pw = in[1].data().data<float>();
    if (in[0].requires_grad()) {  // dcols = W_g^T . dy, folded back into dx
      Tensor dx = Tensor::zeros(in[0].shape());
      float* pdx = dx.data<float>();
      for_each_sample(p, [&](int64_t n, float* scratch) {
        for (int64_t grp = 0; grp < p.groups; ++grp) {
          float* dimage = pdx + (n * p.groups + grp) * p.image_size();
          float* dcols = g.is_pointwise() ? dimage : scratch;
          gemm({g.rows(), g.cols(), p.filters_per_group(), true, false}, 1.0f, pw + grp * p.weight_size(), g.rows(),
               pg + (n * p.groups + grp) * p.out_size(), g.cols(), 0.0f, dcols, g.cols(), 1);
          if (!g.is_pointwise()) kernels::col2im(dcols, g, dimage);
        }
      });
      in[0].add_grad(dx);
    }
    if (in[1].requires_grad()) {  // dW_g += dy (F/g, OH*OW) . cols^T, one partial sum per thread
      tbb::combinable<std::vector<float>> partial([&] { return std::vector<float>(p.groups * p.weight_size(), 0.0f); });
      for_each_sample(p, [&](int64_t n, float* scratch) {
        float* dw = partial.local().data();
        for (int64_t grp = 0; grp < p.groups; ++grp) {
          const float* cols = columns(p, px + (n * p.groups + grp) * p.image_size(), scratch);
          gemm({p.filters_per_group(), g.rows(), g.cols(), false, true}, 1.0f, pg + (n * p.groups + grp) * p.out_size(),
               g.cols(), cols, g.cols(), 1.0f, dw + grp * p.weight_size(), g.rows(), 1);
        }
      });
      Tensor dw = Tensor::zeros(in[1].shape());
      float* pdw = dw.data<float>();
      partial.combine_each([&](const std::vector<float>& part) {
        for (size_t i = 0; i < part.size(); ++i) pdw[i] += part[i];
      });
      in[1].add_grad(dw);
    }
    if (in.size() > 2 && in[2].requires_grad()) {  // db = sum of dy over samples and pixels
      Tensor per_image = Tensor::empty({p.batch, p.filters});
      detail::sum_dim(pg, {p.batch * p.filters, g.cols(), 1}, per_image.data<float>());
      Tensor db = Tensor::empty({p.filters});
      detail::sum_dim(per_image.data<float>(), {1, p.batch, p.filters}, db.data<float>());
      in[2].add_grad(db);
    }
  });
}

}  // namespace neurite::autograd
