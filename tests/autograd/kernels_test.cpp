// Kernels against their naive twins, at sizes around the kernels' tiles.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/kernels/gemm.h"
#include "autograd/kernels/im2col.h"
#include "neurite/autograd/tensor.h"

namespace neurite::autograd::kernels {
namespace {

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

// col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
TEST(Im2col, Col2imIsItsAdjoint) {
  const std::vector<ConvGeometry> geometries = {
      {2, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0},
      {3, 7, 7, 3, 2, 2, 3, 1, 0, 2, 1, 0, 0},
      {1, 4, 9, 1, 5, 1, 2, 0, 2, 1, 1, 0, 0},
  };
  uint64_t seed = 10;
  for (ConvGeometry g : geometries) {
    g.out_h = (g.height + 2 * g.pad_h - g.dilation_h * (g.kernel_h - 1) - 1) / g.stride_h + 1;
    g.out_w = (g.width + 2 * g.pad_w - g.dilation_w * (g.kernel_w - 1) - 1) / g.stride_w + 1;
    const Tensor x = Tensor::randn({g.channels * g.height * g.width}, seed++);
    const Tensor c = Tensor::randn({g.rows() * g.cols()}, seed++);
    Tensor cols = Tensor::empty({g.rows() * g.cols()}), back = Tensor::zeros(x.shape());
    im2col(x.data<float>(), g, cols.data<float>());
    col2im(c.data<float>(), g, back.data<float>());
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < cols.numel(); ++i) lhs += double(cols.data<float>()[i]) * c.data<float>()[i];
    for (int64_t i = 0; i < x.numel(); ++i) rhs += double(x.data<float>()[i]) * back.data<float>()[i];
    EXPECT_NEAR(lhs, rhs, 1e-3 * (1 + std::abs(lhs)));
    // A patch entry equals the pixel it reads, or zero in the padding.
    for (int64_t r = 0; r < g.rows(); ++r)
      for (int64_t o = 0; o < g.cols(); ++o) {
        const int64_t ch = r / (g.kernel_h * g.kernel_w), kh = r / g.kernel_w % g.kernel_h, kw = r % g.kernel_w;
        const int64_t y = o / g.out_w * g.stride_h - g.pad_h + kh * g.dilation_h;
        const int64_t xx = o % g.out_w * g.stride_w - g.pad_w + kw * g.dilation_w;
        const bool inside = y >= 0 && y < g.height && xx >= 0 && xx < g.width;
        ASSERT_EQ(cols.data<float>()[r * g.cols() + o],
                  inside ? x.data<float>()[(ch * g.height + y) * g.width + xx] : 0.0f);
      }
  }
}

}  // namespace
}  // namespace neurite::autograd::kernels
