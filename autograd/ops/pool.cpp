// Pooling: max, average, adaptive average. Every (sample, channel) plane is
// independent, so planes run in parallel.
#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/elementwise_kernels.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

namespace {

struct PoolPlan {
  int64_t planes, height, width, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t in_plane() const { return height * width; }
  int64_t out_plane() const { return out_h * out_w; }
};

PoolPlan plan_pool(const Variable& x, const Pool2dOptions& o, const char* op) {
  check<ShapeError>(x.dim() == 4, "{}: input must be (N, C, H, W), got {}", op, ShapeArg{x.shape()});
  check<DtypeError>(x.dtype() == Dtype::f32, "{}: input must be float32", op);
  PoolPlan p{x.size(0) * x.size(1), x.size(2), x.size(3), 0, 0, o.kernel_h, o.kernel_w,
             o.stride_h > 0 ? o.stride_h : o.kernel_h, o.stride_w > 0 ? o.stride_w : o.kernel_w, o.pad_h, o.pad_w};
  check(p.kernel_h >= 1 && p.kernel_w >= 1 && o.stride_h >= 0 && o.stride_w >= 0,
        "{}: kernel ({}x{}) must be positive and stride ({},{}) non-negative", op, p.kernel_h, p.kernel_w, o.stride_h,
        o.stride_w);
  check(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
        "{}: padding ({},{}) must be at most half the kernel ({}x{})", op, p.pad_h, p.pad_w, p.kernel_h, p.kernel_w);
  p.out_h = (p.height + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  p.out_w = (p.width + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  check<ShapeError>(p.height + 2 * p.pad_h >= p.kernel_h && p.width + 2 * p.pad_w >= p.kernel_w,
                    "{}: kernel {}x{} is larger than the padded input {}", op, p.kernel_h, p.kernel_w,
                    ShapeArg{x.shape()});
  return p;
}

template <typename Body>
void for_each_plane(int64_t planes, Body&& body) {
  detail::parallel_range(planes, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  });
}

Shape pooled_shape(const Variable& x, int64_t out_h, int64_t out_w) { return {x.size(0), x.size(1), out_h, out_w}; }

}  // namespace

Variable max_pool2d(const Variable& x, const Pool2dOptions& options) {
  const PoolPlan p = plan_pool(x, options, "max_pool2d");
  Tensor y = Tensor::empty(pooled_shape(x, p.out_h, p.out_w));
  Tensor argmax = Tensor::empty(y.shape(), Dtype::i64);  // index within the input plane
  const float* px = x.data().data<float>();
  float* py = y.data<float>();
  int64_t* pa = argmax.data<int64_t>();
  for_each_plane(p.planes, [&](int64_t plane) {
    const float* in = px + plane * p.in_plane();
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_at = -1;
        const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
        for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h0 + p.kernel_h, p.height); ++h)
          for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w0 + p.kernel_w, p.width); ++w) {
            const float v = in[h * p.width + w];
            if (best_at < 0 || v > best || std::isnan(v)) {
              best = v;
              best_at = h * p.width + w;
            }
          }
        const int64_t o = plane * p.out_plane() + oh * p.out_w + ow;
        py[o] = best;
        pa[o] = best_at;
      }
  });
  return traced(Variable(y, {x}, [p, argmax](const Tensor& g, std::vector<Variable>& in) {
    Tensor dx = Tensor::zeros(in[0].shape());
    float* pd = dx.data<float>();
    const float* pg = g.data<float>();
    const int64_t* pa = argmax.data<int64_t>();
    for_each_plane(p.planes, [&](int64_t plane) {
      for (int64_t i = 0; i < p.out_plane(); ++i) {
        const int64_t o = plane * p.out_plane() + i;
        pd[plane * p.in_plane() + pa[o]] += pg[o];
      }
    });
    in[0].add_grad(std::move(dx));
  }), "max_pool2d", {{"kernel_h", p.kernel_h}, {"kernel_w", p.kernel_w}, {"stride_h", p.stride_h}, {"stride_w", p.stride_w}, {"pad_h", p.pad_h}, {"pad_w", p.pad_w}});
}

namespace {

// A pooling window over [h0, h1) x [w0, w1) of the input that averages with `divisor`.
struct Window {
  int64_t h0, h1, w0, w1;
  float divisor;
};

// Average pooling over arbitrary windows: window(oh, ow) says which.
template <typename WindowOf>
Variable average_pool(const Variable& x, int64_t out_h, int64_t out_w, WindowOf window_of) {
  const int64_t planes = x.size(0) * x.size(1), height = x.size(2), width = x.size(3);
  Tensor y = Tensor::empty(pooled_shape(x, out_h, out_w));
  const float* px = x.data().data<float>();
  float* py = y.data<float>();
  for_each_plane(planes, [&](int64_t plane) {
    const float* in = px + plane * height * width;
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const Window win = window_of(oh, ow);
        double total = 0;
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) total += in[h * width + w];
        py[(plane * out_h + oh) * out_w + ow] = static_cast<float>(total / win.divisor);
      }
  });
  return Variable(y, {x}, [=](const Tensor& g, std::vector<Variable>& in) {
    Tensor dx = Tensor::zeros(in[0].shape());
    float* pd = dx.data<float>();
    const float* pg = g.data<float>();
    for_each_plane(planes, [&](int64_t plane) {
      float* d = pd + plane * height * width;
      for (int64_t oh = 0; oh < out_h; ++oh)
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const Window win = window_of(oh, ow);
          const float share = pg[(plane * out_h + oh) * out_w + ow] / win.divisor;
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) d[h * width + w] += share;
        }
    });
    in[0].add_grad(std::move(dx));
  });
}

}  // namespace

Variable avg_pool2d(const Variable& x, const Pool2dOptions& options) {
  const PoolPlan p = plan_pool(x, options, "avg_pool2d");
  const bool include_pad = options.count_include_pad;
  const Variable y = average_pool(x, p.out_h, p.out_w, [p, include_pad](int64_t oh, int64_t ow) {
    const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    // PyTorch counts padding inside the padded input only, never past its edge.
    const int64_t ph1 = std::min(h0 + p.kernel_h, p.height + p.pad_h), pw1 = std::min(w0 + p.kernel_w, p.width + p.pad_w);
    Window win{std::max<int64_t>(h0, 0), std::min(h0 + p.kernel_h, p.height), std::max<int64_t>(w0, 0),
               std::min(w0 + p.kernel_w, p.width), 0};
    win.divisor = include_pad ? static_cast<float>((ph1 - h0) * (pw1 - w0))
                              : static_cast<float>((win.h1 - win.h0) * (win.w1 - win.w0));
    return win;
  });
  return traced(y, "avg_pool2d",
                {{"kernel_h", p.kernel_h}, {"kernel_w", p.kernel_w}, {"stride_h", p.stride_h}, {"stride_w", p.stride_w},
                 {"pad_h", p.pad_h}, {"pad_w", p.pad_w}, {"count_include_pad", int64_t{include_pad}}});
}

Variable adaptive_avg_pool2d(const Variable& x, int64_t out_h, int64_t out_w) {
  check<ShapeError>(x.dim() == 4, "adaptive_avg_pool2d: input must be (N, C, H, W), got {}", ShapeArg{x.shape()});
  check(out_h >= 1 && out_w >= 1, "adaptive_avg_pool2d: output size {}x{} must be positive", out_h, out_w);
  const int64_t height = x.size(2), width = x.size(3);
  check<ShapeError>(height >= 1 && width >= 1, "adaptive_avg_pool2d: empty input {}", ShapeArg{x.shape()});
  const Variable y = average_pool(x, out_h, out_w, [=](int64_t oh, int64_t ow) {
    Window win{oh * height / out_h, ((oh + 1) * height + out_h - 1) / out_h, ow * width / out_w,
               ((ow + 1) * width + out_w - 1) / out_w, 0};
    win.divisor = static_cast<float>((win.h1 - win.h0) * (win.w1 - win.w0));
    return win;
  });
  return traced(y, "adaptive_avg_pool2d", {{"out_h", out_h}, {"out_w", out_w}});
}

Variable global_avg_pool2d(const Variable& x) {
  check<ShapeError>(x.dim() == 4, "global_avg_pool2d: input must be (N, C, H, W), got {}", ShapeArg{x.shape()});
  return mean(x, {2, 3});
}

}  // namespace neurite::autograd
