// Batch and layer normalisation, each with a fused forward and backward.
#include <tbb/parallel_for.h>

#include <cmath>

#include "autograd/elementwise_kernels.h"
#include "neurite/error.h"
#include "neurite/kernels/rows.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

namespace {

void check_affine(const Variable& p, int64_t n, const char* op, const char* what, const Shape& want) {
  if (!p.defined()) return;
  check<ShapeError>(p.numel() == n && p.shape() == want, "{}: {} must be {}, got {}", op, what, to_string(want),
                    ShapeArg{p.shape()});
}

}  // namespace

Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor& running_mean,
                    Tensor& running_var, const BatchNormOptions& options) {
  check<ShapeError>(x.dim() >= 2, "batch_norm: input must be (N, C, ...), got {}", ShapeArg{x.shape()});
  check<DtypeError>(x.dtype() == Dtype::f32, "batch_norm: input must be float32");
  const int64_t batch = x.size(0), channels = x.size(1), spatial = x.numel() / std::max<int64_t>(batch * channels, 1);
  const int64_t count = batch * spatial;
  check_affine(weight, channels, "batch_norm", "weight", {channels});
  check_affine(bias, channels, "batch_norm", "bias", {channels});
  if (options.training || running_mean.defined()) {
    check<ShapeError>(running_mean.defined() == running_var.defined(), "batch_norm: give both running statistics or neither");
  }
  if (running_mean.defined()) {
    check<ShapeError>(running_mean.shape() == Shape{channels} && running_var.shape() == Shape{channels},
                      "batch_norm: running statistics must be [{}], got {} and {}", channels,
                      ShapeArg{running_mean.shape()}, ShapeArg{running_var.shape()});
  }
  check<StateError>(options.training || running_mean.defined(), "batch_norm: eval mode needs running statistics");
  check<ShapeError>(!options.training || count > 1 || options.sum_across,
                    "batch_norm: training needs more than one value per channel, got input {}", ShapeArg{x.shape()});

  Tensor mean = Tensor::empty({channels}), invstd = Tensor::empty({channels});
  float *pm = mean.data<float>(), *pi = invstd.data<float>();
  const float* px = x.data().data<float>();
  auto plane = [&](int64_t n, int64_t c) { return (n * channels + c) * spatial; };
  double total = static_cast<double>(count);  // values per channel, over every share of the batch
  if (options.training) {
    // Two passes, each summed across the batch's shares when synchronised:
    // the variance about the mean keeps its precision.
    std::vector<double> sums(static_cast<size_t>(channels) + 1), squares(static_cast<size_t>(channels));
    tbb::parallel_for(int64_t{0}, channels, [&](int64_t c) {
      double s = 0;
      for (int64_t n = 0; n < batch; ++n) {
        const float* p = px + plane(n, c);
        s += kernels::lane_sum(spatial, [p](int64_t i) { return p[i]; });
      }
      sums[static_cast<size_t>(c)] = s;
    });
    sums.back() = total;
    if (options.sum_across) options.sum_across(sums);
    total = sums.back();
    tbb::parallel_for(int64_t{0}, channels, [&](int64_t c) {
      const auto m = static_cast<float>(sums[static_cast<size_t>(c)] / total);
      double ss = 0;
      for (int64_t n = 0; n < batch; ++n) {
        const float* p = px + plane(n, c);
        ss += kernels::lane_sum(spatial, [p, m](int64_t i) { return (p[i] - m) * (p[i] - m); });
      }
      squares[static_cast<size_t>(c)] = ss;
    });
    if (options.sum_across) options.sum_across(squares);
    check<ShapeError>(total > 1, "batch_norm: training needs more than one value per channel in the whole batch");
    for (int64_t c = 0; c < channels; ++c) {
      const double mu = sums[static_cast<size_t>(c)] / total, ss = squares[static_cast<size_t>(c)];
      const double var = ss / total;
      pm[c] = static_cast<float>(mu);
      pi[c] = static_cast<float>(1.0 / std::sqrt(var + options.eps));
      if (running_mean.defined()) {
        float& rm = running_mean.data<float>()[c];
        float& rv = running_var.data<float>()[c];
        rm = (1 - options.momentum) * rm + options.momentum * static_cast<float>(mu);
        rv = (1 - options.momentum) * rv + options.momentum * static_cast<float>(ss / (total - 1));  // unbiased
      }
    }
  } else {
    for (int64_t c = 0; c < channels; ++c) {
      pm[c] = running_mean.data<float>()[c];
      pi[c] = 1.0f / std::sqrt(running_var.data<float>()[c] + options.eps);
    }
  }

  Tensor y = Tensor::empty(x.shape());
  float* py = y.data<float>();
  const float* pw = weight.defined() ? weight.data().data<float>() : nullptr;
  const float* pb = bias.defined() ? bias.data().data<float>() : nullptr;
  tbb::parallel_for(int64_t{0}, batch * channels, [&](int64_t nc) {
    const int64_t c = nc % channels;
    const float a = pi[c] * (pw ? pw[c] : 1.0f), b = (pb ? pb[c] : 0.0f) - pm[c] * a;
    const float* xp = px + nc * spatial;
    float* yp = py + nc * spatial;
    for (int64_t i = 0; i < spatial; ++i) yp[i] = xp[i] * a + b;
  });

  const bool training = options.training;
  const auto sum_across = options.training ? options.sum_across : nullptr;
  return traced(Variable(y, {x, weight, bias}, [=](const Tensor& g, std::vector<Variable>& in) {
    const float* px = in[0].data().data<float>();
    const float* pg = g.data<float>();
    const float* pw = in[1].defined() ? in[1].data().data<float>() : nullptr;
    const float *pm = mean.data<float>(), *pi = invstd.data<float>();
    // Per channel: sum(g) and sum(g * xhat).
    Tensor sums = Tensor::empty({2, channels});
    float *sum_g = sums.data<float>(), *sum_gx = sum_g + channels;
    tbb::parallel_for(int64_t{0}, channels, [&](int64_t c) {
      double sg = 0, sgx = 0;
      for (int64_t n = 0; n < batch; ++n) {
        const float *gp = pg + (n * channels + c) * spatial, *xp = px + (n * channels + c) * spatial;
        const float m = pm[c];
        sg += kernels::lane_sum(spatial, [gp](int64_t i) { return gp[i]; });
        sgx += kernels::lane_sum(spatial, [gp, xp, m](int64_t i) { return gp[i] * (xp[i] - m); });
      }
      sum_g[c] = static_cast<float>(sg);
      sum_gx[c] = static_cast<float>(sgx * pi[c]);
    });
    // Synchronised, the input's gradient takes the whole batch's sums; the
    // weight's and bias's keep this share's (the gradient exchange adds them).
    Tensor whole = sums;
    if (sum_across) {
      std::vector<double> both(sum_g, sum_g + 2 * channels);
      sum_across(both);
      whole = Tensor::empty({2, channels});
      for (int64_t k = 0; k < 2 * channels; ++k) whole.data<float>()[k] = static_cast<float>(both[static_cast<size_t>(k)]);
    }
    if (in[0].requires_grad()) {
      const float *sum_g = whole.data<float>(), *sum_gx = sum_g + channels;
      Tensor dx = Tensor::empty(in[0].shape());
      float* pd = dx.data<float>();
      const auto m = static_cast<float>(total);
      tbb::parallel_for(int64_t{0}, batch * channels, [&](int64_t nc) {
        // dx = scale * (g - sum_g/m - xhat * sum_gx/m) in training, scale * g in eval:
        // per channel an affine map of (g, x), so the loop is two FMAs per element.
        const int64_t c = nc % channels;
        const float scale = pi[c] * (pw ? pw[c] : 1.0f);
        const float b = training ? -scale * pi[c] * sum_gx[c] / m : 0.0f;
        const float k = training ? -scale * sum_g[c] / m - b * pm[c] : 0.0f;
        const float *gp = pg + nc * spatial, *xp = px + nc * spatial;
        float* dp = pd + nc * spatial;
        for (int64_t i = 0; i < spatial; ++i) dp[i] = scale * gp[i] + b * xp[i] + k;
      });
      in[0].add_grad(std::move(dx));
    }
    if (in[1].defined() && in[1].requires_grad()) in[1].add_grad(Tensor::from_data({channels}, std::vector<float>(sum_gx, sum_gx + channels)));
    if (in[2].defined() && in[2].requires_grad()) in[2].add_grad(Tensor::from_data({channels}, std::vector<float>(sum_g, sum_g + channels)));
  }), "batch_norm", {{"training", int64_t{options.training}}, {"eps", static_cast<double>(options.eps)}}, {running_mean, running_var});
}

Variable layer_norm(const Variable& x, const Shape& normalized_shape, const Variable& weight, const Variable& bias,
                    float eps) {
  check<DtypeError>(x.dtype() == Dtype::f32, "layer_norm: input must be float32");
  const auto k = static_cast<int64_t>(normalized_shape.size());
  check<ShapeError>(k >= 1 && x.dim() >= k && std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - k),
                    "layer_norm: normalized shape {} does not match the trailing dimensions of input {}",
                    ShapeArg{normalized_shape}, ShapeArg{x.shape()});
  const int64_t d = numel(normalized_shape), rows = x.numel() / std::max<int64_t>(d, 1);
  check_affine(weight, d, "layer_norm", "weight", normalized_shape);
  check_affine(bias, d, "layer_norm", "bias", normalized_shape);

  Tensor mean = Tensor::empty({rows}), invstd = Tensor::empty({rows});
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data().data<float>();
  const float* pw = weight.defined() ? weight.data().data<float>() : nullptr;
  const float* pb = bias.defined() ? bias.data().data<float>() : nullptr;
  float *pm = mean.data<float>(), *pi = invstd.data<float>(), *py = y.data<float>();
  detail::parallel_range(rows, std::max<int64_t>(1, detail::kElementGrain / d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = px + r * d;
      const double mu = kernels::lane_sum(d, [row](int64_t i) { return row[i]; }) / static_cast<double>(d);
      const auto m = static_cast<float>(mu);
      const double ss = kernels::lane_sum(d, [row, m](int64_t i) { return (row[i] - m) * (row[i] - m); });
      pm[r] = static_cast<float>(mu);
      pi[r] = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      for (int64_t i = 0; i < d; ++i) {
        const float xhat = (row[i] - pm[r]) * pi[r];
        py[r * d + i] = xhat * (pw ? pw[i] : 1.0f) + (pb ? pb[i] : 0.0f);
      }
    }
  });

  return traced(Variable(y, {x, weight, bias}, [=](const Tensor& g, std::vector<Variable>& in) {
    const float* px = in[0].data().data<float>();
    const float* pg = g.data<float>();
    const float* pw = in[1].defined() ? in[1].data().data<float>() : nullptr;
    const float *pm = mean.data<float>(), *pi = invstd.data<float>();
    if (in[0].requires_grad()) {
      Tensor dx = Tensor::empty(in[0].shape());
      float* pd = dx.data<float>();
      detail::parallel_range(rows, std::max<int64_t>(1, detail::kElementGrain / d), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          // sum(dxhat) and sum(dxhat * xhat), dxhat = g * w
          const float *gr = pg + r * d, *xr = px + r * d, m = pm[r];
          const double s = pw ? kernels::lane_sum(d, [gr, pw](int64_t i) { return gr[i] * pw[i]; })
                              : kernels::lane_sum(d, [gr](int64_t i) { return gr[i]; });
          const double sx = pi[r] * (pw ? kernels::lane_sum(d, [=](int64_t i) { return gr[i] * pw[i] * (xr[i] - m); })
                                        : kernels::lane_sum(d, [=](int64_t i) { return gr[i] * (xr[i] - m); }));
          const auto mean_s = static_cast<float>(s / d), mean_sx = static_cast<float>(sx / d);
          for (int64_t i = 0; i < d; ++i) {
            const float dxhat = pg[r * d + i] * (pw ? pw[i] : 1.0f);
            const float xhat = (px[r * d + i] - pm[r]) * pi[r];
            pd[r * d + i] = pi[r] * (dxhat - mean_s - xhat * mean_sx);
          }
        }
      });
      in[0].add_grad(std::move(dx));
    }
    const bool dw = in[1].defined() && in[1].requires_grad(), db = in[2].defined() && in[2].requires_grad();
    if (dw || db) {  // column sums over rows, in column blocks across threads
      std::vector<double> gw(static_cast<size_t>(d), 0.0), gb(static_cast<size_t>(d), 0.0);
      detail::parallel_range(d, 64, [&](int64_t i0, int64_t i1) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = i0; i < i1; ++i) {
            gw[i] += pg[r * d + i] * (px[r * d + i] - pm[r]) * pi[r];
            gb[i] += pg[r * d + i];
          }
      });
      if (dw) in[1].add_grad(Tensor::from_data(normalized_shape, std::vector<float>(gw.begin(), gw.end())));
      if (db) in[2].add_grad(Tensor::from_data(normalized_shape, std::vector<float>(gb.begin(), gb.end())));
    }
  }), "layer_norm", {{"dims", k}, {"eps", static_cast<double>(eps)}});
}

}  // namespace neurite::autograd
