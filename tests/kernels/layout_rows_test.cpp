// The shared layouts (phase planes, feature-major stride), packing and the
// row kernels against plain loops, under every instruction set the CPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "neurite/kernels/layout.h"
#include "neurite/kernels/rows.h"
#include "neurite/kernels/sparse.h"

namespace neurite::kernels {
namespace {

std::vector<float> random_floats(int64_t n, uint32_t seed, double zeros = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = uniform(rng) < zeros ? 0.0f : normal(rng);
  return v;
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (auto isa : {Isa::reference, Isa::avx2, Isa::avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

ConvGeometry geometry(int64_t batch, int64_t c, int64_t h, int64_t w, int64_t f, int64_t kh, int64_t kw, int64_t sh,
                      int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
  ConvGeometry g{.batch = batch, .channels = c, .height = h, .width = w, .filters = f, .kh = kh, .kw = kw,
                 .sh = sh, .sw = sw, .dh = dh, .dw = dw, .pad_top = pt, .pad_left = pl, .pad_bottom = pb,
                 .pad_right = pr};
  g.out_h = (h + pt + pb - dh * (kh - 1) - 1) / sh + 1;
  g.out_w = (w + pl + pr - dw * (kw - 1) - 1) / sw + 1;
  return g;
}

// y (N, F, OH, OW) of a plain convolution, in double.
std::vector<double> naive_conv(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w) {
  std::vector<double> y(static_cast<size_t>(g.batch * g.filters * g.out_h * g.out_w), 0.0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t f = 0; f < g.filters; ++f)
      for (int64_t oy = 0; oy < g.out_h; ++oy)
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          double s = 0;
          for (int64_t c = 0; c < g.channels; ++c)
            for (int64_t i = 0; i < g.kh; ++i)
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t iy = oy * g.sh - g.pad_top + i * g.dh, ix = ox * g.sw - g.pad_left + j * g.dw;
                if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
                s += static_cast<double>(w[static_cast<size_t>(((f * g.channels + c) * g.kh + i) * g.kw + j)]) *
                     x[static_cast<size_t>(((n * g.channels + c) * g.height + iy) * g.width + ix)];
              }
          y[static_cast<size_t>(((n * g.filters + f) * g.out_h + oy) * g.out_w + ox)] = s;
        }
  return y;
}

TEST(PhasePlanes, AProductOverThePlanesIsTheConvolutionForEveryGeometryAndBand) {
  const std::vector<ConvGeometry> cases = {
      geometry(1, 1, 5, 5, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),  // 1x1
      geometry(2, 3, 8, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),  // same padding
      geometry(3, 2, 9, 10, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),  // stride 2
      geometry(2, 2, 11, 9, 3, 5, 3, 2, 3, 1, 1, 2, 0, 1, 2),  // unequal strides and pads per side
      geometry(1, 3, 10, 10, 4, 3, 2, 1, 2, 2, 1, 0, 1, 2, 0),  // dilation, odd pads
      geometry(2, 1, 7, 8, 2, 2, 2, 3, 3, 1, 2, 1, 2, 0, 1),   // stride 3 with dilated columns
      geometry(1, 2, 6, 1, 3, 3, 1, 2, 2, 1, 1, 1, 0, 1, 0),   // a one-column image at column stride 2
      geometry(1, 2, 5, 30, 2, 1, 7, 1, 1, 1, 4, 0, 3, 0, 3),  // a wide dilated row: shifts past the 16 floats of slack
  };
  for (Isa isa : isas()) {
    uint32_t seed = 1;
    for (const ConvGeometry& g : cases)
      for (WeightFormat format : {WeightFormat::csr, WeightFormat::rows4}) {
        const auto x = random_floats(g.batch * g.channels * g.height * g.width, seed++);
        const auto w = random_floats(g.filters * g.channels * g.kh * g.kw, seed++, 0.5);
        const auto want = naive_conv(g, x, w);
        const PackedWeight p = pack(w.data(), g.filters, g.channels * g.kh * g.kw, format);
        // Every band of output rows [r0, r1) and every image range [b0, b1).
        for (int64_t band = 1; band <= g.out_h; band += std::max<int64_t>(1, g.out_h / 2))
          for (int64_t r0 = 0; r0 < g.out_h; r0 += band)
            for (int64_t b0 = 0; b0 < g.batch; ++b0) {
              const int64_t r1 = std::min(g.out_h, r0 + band), count = g.batch - b0;
              const PhasePlanes t(g, count, PhasePlanes::window_for(g, r1 - r0));
              std::vector<float> planes(static_cast<size_t>(t.size()), 7.0f);  // fill must clear
              t.fill(x.data(), b0, count, r0 * g.sh, planes.data());
              std::vector<int64_t> offsets;
              t.column_offsets(offsets);
              // Every read of the product stays inside the planes: the last
              // pixels' taps run past the last plane by up to front().
              const int64_t pixels = (count - 1) * t.plane() + (r1 - r0) * t.wq();
              ASSERT_LE(*std::max_element(offsets.begin(), offsets.end()) + pixels, t.size())
                  << fmt::format("k{}x{} d{}x{} s{}x{}", g.kh, g.kw, g.dh, g.dw, g.sh, g.sw);
              offsets.resize(static_cast<size_t>(p.pattern.cols), 0);
              const int64_t ld = count * t.plane();
              std::vector<float> rows(static_cast<size_t>(p.pattern.rows * ld));
              spmm(p.pattern, p.values.data(), {planes.data(), offsets.data()}, rows.data(), ld, 0,
                   p.pattern.row_blocks(), 0, pixels, isa);
              for (int64_t s = 0; s < count; ++s)
                for (int64_t f = 0; f < g.filters; ++f)
                  for (int64_t oy = r0; oy < r1; ++oy)
                    for (int64_t ox = 0; ox < g.out_w; ++ox) {
                      const double got = rows[static_cast<size_t>(f * ld + s * t.plane() + (oy - r0) * t.wq() + ox)];
                      const double ref = want[static_cast<size_t>((((b0 + s) * g.filters + f) * g.out_h + oy) * g.out_w + ox)];
                      ASSERT_NEAR(got, ref, 1e-4 * (1 + std::abs(ref)))
                          << fmt::format("{} {} case {}x{} k{}x{} s{}x{} d{}x{} band [{}, {}) images from {} at ({}, {}, {}, {})",
                                         isa_name(isa), to_string(format), g.height, g.width, g.kh, g.kw, g.sh, g.sw,
                                         g.dh, g.dw, r0, r1, b0, s, f, oy, ox);
                    }
            }
      }
  }
}

TEST(PhasePlanes, ReadGivesBackWhatFillLaidOut) {
  for (const ConvGeometry& g : {geometry(2, 3, 7, 9, 1, 3, 3, 2, 3, 1, 1, 1, 2, 1, 0),
                                geometry(1, 2, 5, 6, 1, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2)}) {
    const auto x = random_floats(g.batch * g.channels * g.height * g.width, 5);
    const PhasePlanes t(g, g.batch, g.height + g.pad_top + g.pad_bottom);
    std::vector<float> planes(static_cast<size_t>(t.size())), back(x.size(), 0.0f);
    t.fill(x.data(), 0, g.batch, 0, planes.data());
    t.read(planes.data(), 0, g.batch, 0, back.data());
    EXPECT_EQ(back, x);
    // Padding stays zero: the planes hold exactly the input's values and zeros.
    const double sum_planes = std::accumulate(planes.begin(), planes.end(), 0.0);
    EXPECT_NEAR(sum_planes, std::accumulate(x.begin(), x.end(), 0.0), 1e-3);
  }
}

TEST(FeatureMajor, StrideHoldsWholeVectorsOffPowersOfTwo) {
  for (int64_t rows : {1, 15, 16, 17, 64, 240, 256, 257, 512, 1000}) {
    const int64_t ld = feature_major_ld(rows);
    EXPECT_GE(ld, rows);
    EXPECT_EQ(ld % 16, 0) << rows;
    EXPECT_NE(ld % 256, 0) << rows;
    EXPECT_LE(ld, rows + 31) << rows;
  }
}

TEST(Packing, BlocksHoldEveryNonzeroAndFillTheRestWithZeros) {
  const std::vector<float> w{1, 0, 0, 0, 0, 2,  //
                             0, 0, 0, 0, 0, 0,  //
                             0, 3, 0, 0, 0, 0,  //
                             0, 0, 0, 0, 0, 0,  //
                             0, 0, 0, 0, 4, 0};
  const auto csr = pack(w.data(), 5, 6, WeightFormat::csr);
  EXPECT_EQ(csr.pattern.nnz(), 4);
  EXPECT_DOUBLE_EQ(csr.density, 4.0 / 30);
  const auto rows4 = pack(w.data(), 5, 6, WeightFormat::rows4);
  EXPECT_EQ(rows4.pattern.rows, 8);  // padded to whole blocks
  EXPECT_EQ(rows4.pattern.blocks(), 4);
  const auto dense = pack(w.data(), 5, 6, WeightFormat::dense);
  EXPECT_EQ(dense.pattern.blocks(), 2 * 6);  // every 4x1 block
  EXPECT_DOUBLE_EQ(fill_ratio(w.data(), 5, 6, WeightFormat::rows4), 16.0 / 4);
  EXPECT_DOUBLE_EQ(fill_ratio(w.data(), 5, 6, WeightFormat::cols4), 16.0 / 4);
  EXPECT_DOUBLE_EQ(fill_ratio(w.data(), 5, 6, WeightFormat::csr), 1.0);
  EXPECT_EQ(count_nonzero(w.data(), 30), 4);
  const std::vector<float> signs{-1, 0, 2, -0.5f, -0.0f};
  EXPECT_EQ(count_nonzero(signs.data(), 5), 3);
}

TEST(Packing, EveryFormatMultipliesAsTheDenseMatrix) {
  for (Isa isa : isas()) {
    for (int64_t rows : {1, 5, 8, 13})
      for (int64_t cols : {1, 4, 7})
        for (WeightFormat f : {WeightFormat::dense, WeightFormat::csr, WeightFormat::rows4, WeightFormat::cols4}) {
          const auto w = random_floats(rows * cols, static_cast<uint32_t>(rows * 100 + cols), 0.6);
          const int64_t pixels = 37;
          const auto x = random_floats(cols * pixels, 9);
          const PackedWeight p = pack(w.data(), rows, cols, f);
          std::vector<int64_t> offsets(static_cast<size_t>(p.pattern.cols));
          for (int64_t c = 0; c < p.pattern.cols; ++c) offsets[static_cast<size_t>(c)] = std::min(c, cols - 1) * pixels;
          std::vector<float> y(static_cast<size_t>(p.pattern.rows * pixels));
          spmm(p.pattern, p.values.data(), {x.data(), offsets.data()}, y.data(), pixels, 0, p.pattern.row_blocks(), 0,
               pixels, isa);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t q = 0; q < pixels; ++q) {
              double s = 0;
              for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(w[r * cols + c]) * x[c * pixels + q];
              ASSERT_NEAR(y[static_cast<size_t>(r * pixels + q)], s, 1e-4 * (1 + std::abs(s)))
                  << isa_name(isa) << " " << to_string(f) << " " << rows << "x" << cols;
            }
        }
  }
}

TEST(WeightFormat, NamesRoundTrip) {
  for (WeightFormat f : {WeightFormat::dense, WeightFormat::csr, WeightFormat::rows4, WeightFormat::cols4})
    EXPECT_EQ(parse_weight_format(to_string(f)), f);
  EXPECT_FALSE(parse_weight_format("2x2").has_value());
  EXPECT_EQ(block_shape(WeightFormat::rows4).rows, 4);
  EXPECT_EQ(block_shape(WeightFormat::cols4).cols, 4);
}

TEST(RowKernels, MatchPlainLoopsAroundTheLaneWidth) {
  for (int64_t n : {1, 15, 16, 17, 33, 100}) {
    const int64_t rows = 3;
    const auto x = random_floats(rows * n, static_cast<uint32_t>(n));
    const auto scale = random_floats(n, 2), bias = random_floats(n, 3);
    std::vector<float> sm(x.size()), ln(x.size()), mean(rows);
    softmax_rows(x.data(), sm.data(), n, 0, rows);
    layer_norm_rows(x.data(), ln.data(), n, 0, rows, scale.data(), bias.data(), 0.25f);
    mean_rows(x.data(), mean.data(), n, 0, rows);
    for (int64_t r = 0; r < rows; ++r) {
      const float* in = x.data() + r * n;
      double m = -INFINITY, total = 0, mu = 0, var = 0;
      for (int64_t i = 0; i < n; ++i) m = std::max<double>(m, in[i]), mu += in[i];
      mu /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) total += std::exp(in[i] - m), var += (in[i] - mu) * (in[i] - mu);
      var /= static_cast<double>(n);
      EXPECT_NEAR(mean[r], mu, 1e-5);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(sm[r * n + i], std::exp(in[i] - m) / total, 1e-6) << n;
        EXPECT_NEAR(ln[r * n + i], (in[i] - mu) / std::sqrt(var + 0.25) * scale[i] + bias[i], 1e-5) << n;
      }
    }
    EXPECT_NEAR(lane_max(x.data(), n), *std::max_element(x.begin(), x.begin() + n), 0);
  }
}

TEST(RowKernels, BiasActivationRowCoversEveryCase) {
  const std::vector<float> from{-2, -0.5f, 0, 1, 3}, res{1, 1, -1, -1, 0.5f};
  std::vector<float> to(5);
  bias_activation_row(to.data(), from.data(), 5, 0.5f, nullptr, Activation::none);
  EXPECT_EQ(to, (std::vector<float>{-1.5f, 0, 0.5f, 1.5f, 3.5f}));
  bias_activation_row(to.data(), from.data(), 5, 0.5f, nullptr, Activation::relu);
  EXPECT_EQ(to, (std::vector<float>{0, 0, 0.5f, 1.5f, 3.5f}));
  bias_activation_row(to.data(), from.data(), 5, 0.5f, res.data(), Activation::none);
  EXPECT_EQ(to, (std::vector<float>{-0.5f, 1, -0.5f, 0.5f, 4}));
  bias_activation_row(to.data(), from.data(), 5, 0.5f, res.data(), Activation::relu);
  EXPECT_EQ(to, (std::vector<float>{0, 1, 0, 0.5f, 4}));
}

}  // namespace
}  // namespace neurite::kernels
