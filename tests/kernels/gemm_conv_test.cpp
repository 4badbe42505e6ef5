// Kernels against their naive twins, at sizes around the kernels' tiles.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <vector>

#include "neurite/kernels/gemm.h"
#include "neurite/kernels/convolution.h"
#include "neurite/autograd/tensor.h"

namespace neurite::kernels {
namespace {

using autograd::Shape;
using autograd::Tensor;
using autograd::to_string;

TEST(Gemm, MatchesTheReferenceForAllTransposesAndOddSizes) {
  uint64_t seed = 1;
  for (int64_t m : {1, 7, 16, 33})
    for (int64_t n : {1, 15, 48, 65})
      for (int64_t k : {1, 9, 64})
        for (int trans = 0; trans < 4; ++trans) {
          const GemmShape s{m, n, k, (trans & 1) != 0, (trans & 2) != 0};
          const Tensor a = Tensor::randn({m * k}, seed++), b = Tensor::randn({k * n}, seed++);
          Tensor c = Tensor::randn({m * n}, seed++), want = c.clone();
          const int64_t lda = s.trans_a ? m : k, ldb = s.trans_b ? k : n;
          gemm(s, 0.5f, a.data<float>(), lda, b.data<float>(), ldb, 2.0f, c.data<float>(), n, 2);
          gemm_reference(s, 0.5f, a.data<float>(), lda, b.data<float>(), ldb, 2.0f, want.data<float>(), n);
          for (int64_t i = 0; i < m * n; ++i)
            ASSERT_NEAR(c.data<float>()[i], want.data<float>()[i], 1e-4 * (1 + std::abs(want.data<float>()[i])))
                << "m=" << m << " n=" << n << " k=" << k << " trans=" << trans << " at " << i;
        }
}

// Convolution against direct loops: forward, and the three gradients as the
// adjoints of the forward's loops, on shapes with groups, dilation, stride and
// padding that do and do not divide evenly.
TEST(Convolution, MatchesDirectLoopsForwardAndBackward) {
  // batch, C, H, W, F, KH, KW, stride h/w, pad h/w, dilation h/w, groups
  const std::vector<std::array<int64_t, 14>> cases = {
      {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1}, {3, 4, 9, 9, 6, 3, 2, 2, 3, 1, 0, 2, 1, 2},
      {1, 6, 5, 8, 6, 3, 3, 1, 2, 1, 1, 1, 1, 6}, {2, 8, 4, 4, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1},
      {1, 2, 6, 5, 3, 5, 1, 1, 1, 2, 0, 1, 1, 1}};
  uint64_t seed = 10;
  for (const auto& c : cases) {
    ConvShape s{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], 0, 0};
    s.out_h = (s.height + 2 * s.pad_h - s.dilation_h * (s.kernel_h - 1) - 1) / s.stride_h + 1;
    s.out_w = (s.width + 2 * s.pad_w - s.dilation_w * (s.kernel_w - 1) - 1) / s.stride_w + 1;
    const int64_t cg = s.channels / s.groups, fg = s.filters / s.groups;
    const Tensor x = Tensor::randn({s.batch, s.channels, s.height, s.width}, seed++);
    const Tensor w = Tensor::randn({s.filters, cg, s.kernel_h, s.kernel_w}, seed++);
    const Tensor b = Tensor::randn({s.filters}, seed++);
    const Tensor dy = Tensor::randn({s.batch, s.filters, s.out_h, s.out_w}, seed++);
    std::vector<double> y_ref(dy.numel()), dx_ref(x.numel()), dw_ref(w.numel()), db_ref(s.filters);
    const float *px = x.data<float>(), *pw = w.data<float>(), *pdy = dy.data<float>();
    for (int64_t n = 0; n < s.batch; ++n)
      for (int64_t f = 0; f < s.filters; ++f)
        for (int64_t oh = 0; oh < s.out_h; ++oh)
          for (int64_t ow = 0; ow < s.out_w; ++ow) {
            const int64_t yi = ((n * s.filters + f) * s.out_h + oh) * s.out_w + ow;
            y_ref[yi] = b.data<float>()[f];
            db_ref[f] += pdy[yi];
            for (int64_t ci = 0; ci < cg; ++ci)
              for (int64_t kh = 0; kh < s.kernel_h; ++kh)
                for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
                  const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dilation_h;
                  const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dilation_w;
                  if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
                  const int64_t xi = ((n * s.channels + f / fg * cg + ci) * s.height + ih) * s.width + iw;
                  const int64_t wi = ((f * cg + ci) * s.kernel_h + kh) * s.kernel_w + kw;
                  y_ref[yi] += double(px[xi]) * pw[wi];
                  dx_ref[xi] += double(pdy[yi]) * pw[wi];
                  dw_ref[wi] += double(pdy[yi]) * px[xi];
                }
          }
    Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()),
           db = Tensor::empty(b.shape());
    conv_forward(s, px, pw, b.data<float>(), y.data<float>());
    conv_backward(s, px, pw, pdy, dx.data<float>(), dw.data<float>(), db.data<float>());
    auto expect_matches = [&](const Tensor& got, const std::vector<double>& want, const char* what) {
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got.data<float>()[i], want[i], 1e-4 * (10 + std::abs(want[i])))
            << what << " at " << i << ", case " << to_string(Shape(c.begin(), c.end()));
    };
    expect_matches(y, y_ref, "y");
    expect_matches(dx, dx_ref, "dx");
    expect_matches(dw, dw_ref, "dw");
    expect_matches(db, db_ref, "db");
  }
}

}  // namespace
}  // namespace neurite::kernels
