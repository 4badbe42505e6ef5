// The INT8 product under every ISA this CPU has against its reference twin
// (exact int32 sums), and against float arithmetic on the dequantised values.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "neurite/autograd/tensor.h"
#include "neurite/kernels/int8.h"

namespace neurite::kernels {
namespace {

using autograd::Tensor;

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (auto isa : {Isa::reference, Isa::avx2, Isa::avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

// Weights (rows, cols) in [-127, 127] with a fraction kept: every weight
// alone (unstructured), or whole 1x4 groups.
std::vector<int8_t> weights(int64_t rows, int64_t cols, double keep, bool groups, uint64_t seed) {
  const Tensor r = Tensor::rand({rows * cols}, seed), v = Tensor::randint({rows * cols}, seed + 1, -127, 128);
  std::vector<int8_t> w(static_cast<size_t>(rows * cols));
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t i = n * cols + k, decide = groups ? n * cols + k / 4 * 4 : i;
      w[i] = r.data<float>()[decide] < keep ? static_cast<int8_t>(v.data<int64_t>()[i]) : 0;
    }
  return w;
}

TEST(Int8Gemm, EveryIsaSumsExactlyAsTheReference) {
  uint64_t seed = 1;
  for (int64_t rows : {1, 5, 33})
    for (int64_t cols : {3, 4, 37, 128})
      for (int64_t items : {1, 16, 70})
        for (const auto& [keep, groups] : {std::pair{1.0, false}, std::pair{0.1, false}, std::pair{0.1, true}}) {
          SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " items " << items << " keep " << keep
                                            << (groups ? " 1x4" : " unstructured"));
          const auto w = weights(rows, cols, keep, groups, seed += 2);
          const Int8Groups packed = pack_int8_groups(w.data(), rows, cols);
          if (keep == 1.0) {
            EXPECT_EQ(packed.density(), 1.0);
          }
          const int64_t ld = quad_ld(items), quads = (cols + 3) / 4;
          const Tensor x = Tensor::randn({items * cols}, seed += 2);
          std::vector<uint8_t> x4(static_cast<size_t>(quads * ld * 4), 0);  // items past `items` stay zero
          const QuantGrid grid{.scale = 0.02f, .zero_point = -5, .qmin = -128, .qmax = 127};
          const int32_t zp = to_quads(x.data<float>(), items, cols, grid, x4.data(), ld);
          EXPECT_EQ(zp, 123);
          std::vector<int32_t> want(static_cast<size_t>(rows * ld));
          const std::vector<int64_t> offsets = quad_offsets(cols, ld);
          int8_gemm(packed, x4.data(), offsets.data(), ld, want.data(), 0, rows, Isa::reference);
          // The reference against the definition, through the dequantised float values.
          for (int64_t n = 0; n < rows; ++n)
            for (int64_t m = 0; m < items; ++m) {
              double exact = 0;
              for (int64_t k = 0; k < cols; ++k) {
                const float xq = std::min(std::max(std::nearbyint(x.data<float>()[m * cols + k] / 0.02f) - 5.0f, -128.0f), 127.0f);
                exact += (xq + 5.0) * w[n * cols + k];
              }
              ASSERT_EQ(want[n * ld + m] - zp * packed.row_sum[n], static_cast<int32_t>(exact)) << n << "," << m;
            }
          for (Isa isa : isas()) {
            SCOPED_TRACE(isa_name(isa));
            std::vector<int32_t> got(want.size(), -1);
            int8_gemm(packed, x4.data(), offsets.data(), ld, got.data(), 0, rows, isa);
            ASSERT_EQ(got, want);
          }
        }
}

TEST(Int8Epilogue, EveryIsaMatchesTheReferenceOnRowsOfAnyWidth) {
  // Row widths below, at and past one vector; sums on a wider stride, as a
  // convolution's phase planes leave them; the junk past `cols` is never read.
  for (int64_t cols : {1, 8, 16, 17, 32, 33}) {
    const int64_t rows = 5, ld = cols + 3;
    const Tensor s = Tensor::randint({rows * ld}, static_cast<uint64_t>(cols), -50000, 50000);
    std::vector<int32_t> sums(static_cast<size_t>(rows * ld));
    for (size_t i = 0; i < sums.size(); ++i) sums[i] = static_cast<int32_t>(s.data<int64_t>()[i]);
    const Tensor residual = Tensor::randn({rows * cols}, static_cast<uint64_t>(cols) + 7);
    for (Activation act : {Activation::none, Activation::relu, Activation::relu6})
      for (const float* res : {static_cast<const float*>(nullptr), residual.data<float>()}) {
        std::vector<float> want(static_cast<size_t>(rows * cols) + 1, -7.0f);
        int8_epilogue(sums.data(), rows, cols, ld, 1e-4f, 123, 0.25f, res, act, want.data(), Isa::reference);
        ASSERT_EQ(want.back(), -7.0f);  // nothing written past rows · cols
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            double v = 1e-4 * (sums[r * ld + c] - 123) + 0.25 + (res != nullptr ? res[r * cols + c] : 0.0);
            if (act != Activation::none) v = std::min(std::max(v, 0.0), act == Activation::relu6 ? 6.0 : 1e30);
            ASSERT_NEAR(want[r * cols + c], v, 1e-5) << r << "," << c;
          }
        for (Isa isa : isas()) {
          SCOPED_TRACE(isa_name(isa));
          std::vector<float> got(want.size(), -7.0f);
          int8_epilogue(sums.data(), rows, cols, ld, 1e-4f, 123, 0.25f, res, act, got.data(), isa);
          for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6f * (1.0f + std::abs(want[i]))) << i;
        }
      }
  }
}

TEST(Int8Epilogue, RowsTransposeEveryTileAsTheReference) {
  // Features and rows below, at and past whole tiles of 16; a residual and an
  // output wider than the block, as a block of a layer's features writes them.
  for (auto [features, rows] : {std::pair<int64_t, int64_t>{1, 1}, {16, 16}, {21, 7}, {40, 33}, {64, 64}}) {
    const int64_t ld = (rows + 15) / 16 * 16, ldo = features + 5;
    const Tensor s = Tensor::randint({features * ld}, static_cast<uint64_t>(features), -50000, 50000);
    std::vector<int32_t> sums(static_cast<size_t>(features * ld)), correction(static_cast<size_t>(features));
    for (size_t i = 0; i < sums.size(); ++i) sums[i] = static_cast<int32_t>(s.data<int64_t>()[i]);
    const Tensor scale = Tensor::rand({features}, 3), bias = Tensor::randn({features}, 4);
    const Tensor residual = Tensor::randn({rows * ldo}, 5);
    for (int64_t f = 0; f < features; ++f) correction[f] = static_cast<int32_t>(37 * f - 300);
    for (Activation act : {Activation::none, Activation::relu, Activation::relu6})
      for (bool with_extras : {false, true}) {
        const float* b = with_extras ? bias.data<float>() : nullptr;
        const float* res = with_extras ? residual.data<float>() : nullptr;
        std::vector<float> want(static_cast<size_t>(rows * ldo), -7.0f);
        int8_epilogue_rows(sums.data(), ld, features, rows, scale.data<float>(), correction.data(), b, res, ldo, act,
                           want.data(), ldo, Isa::reference);
        for (int64_t m = 0; m < rows; ++m)
          for (int64_t f = 0; f < ldo; ++f) {
            if (f >= features) {
              ASSERT_EQ(want[m * ldo + f], -7.0f);  // columns past the block untouched
              continue;
            }
            double v = double(scale.data<float>()[f]) * (sums[f * ld + m] - correction[f]) + (b != nullptr ? b[f] : 0.0) +
                       (res != nullptr ? res[m * ldo + f] : 0.0);
            if (act != Activation::none) v = std::min(std::max(v, 0.0), act == Activation::relu6 ? 6.0 : 1e30);
            ASSERT_NEAR(want[m * ldo + f], v, 1e-5 * (1.0 + std::abs(v))) << m << "," << f;
          }
        for (Isa isa : isas()) {
          SCOPED_TRACE(isa_name(isa));
          std::vector<float> got(want.size(), -7.0f);
          int8_epilogue_rows(sums.data(), ld, features, rows, scale.data<float>(), correction.data(), b, res, ldo, act,
                             got.data(), ldo, isa);
          for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6f * (1.0f + std::abs(want[i]))) << i;
        }
      }
  }
}

}  // namespace
}  // namespace neurite::kernels
