// Sparse ops against the dense ops on masked weights: forward and every
// gradient, for CSR and block forms, at densities from no nonzero to dense,
// on shapes around the kernels' register tiles, under every ISA this CPU runs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include <fmt/format.h>

#include "neurite/kernels/sparse.h"
#include "neurite/error.h"
#include "neurite/autograd/sparse.h"
#include "support/gradcheck.h"

namespace neurite::autograd {
namespace {

// A 0/1 mask of shape (rows, cols...) kept in aligned br x bc blocks: `keep`
// blocks exactly (-1: a fraction `density` of them).
Tensor block_mask(const Shape& shape, int br, int bc, double density, uint64_t seed, int64_t keep = -1) {
  const int64_t rows = shape[0], cols = numel(shape) / rows, blocks = rows / br * (cols / bc);
  std::vector<int64_t> order(static_cast<size_t>(blocks));
  for (int64_t i = 0; i < blocks; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  if (keep < 0) keep = std::llround(density * static_cast<double>(blocks));
  Tensor m = Tensor::zeros(shape);
  for (int64_t i = 0; i < keep; ++i) {
    const int64_t rb = order[i] / (cols / bc), cb = order[i] % (cols / bc);
    for (int r = 0; r < br; ++r)
      for (int c = 0; c < bc; ++c) m.data<float>()[(rb * br + r) * cols + cb * bc + c] = 1;
  }
  return m;
}

Tensor times(const Tensor& a, const Tensor& b) {
  Tensor y = a.clone();
  for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] *= b.data<float>()[i];
  return y;
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.data<float>()[i], w = want.data<float>()[i];
    ASSERT_NEAR(g, w, 2e-4 * (1 + std::abs(w))) << what << " at " << i;
  }
}

struct Case {
  kernels::WeightFormat format;
  double density;
  int64_t keep;  // exact block count, or -1
};
const Case kCases[] = {
    {kernels::WeightFormat::csr, 0, 0},      {kernels::WeightFormat::csr, 0, 1},       {kernels::WeightFormat::csr, 0.05, -1},
    {kernels::WeightFormat::csr, 0.5, -1},   {kernels::WeightFormat::csr, 1, -1},      {kernels::WeightFormat::rows4, 0, 0},
    {kernels::WeightFormat::rows4, 0, 1},    {kernels::WeightFormat::rows4, 0.05, -1}, {kernels::WeightFormat::rows4, 0.5, -1},
    {kernels::WeightFormat::rows4, 1, -1},   {kernels::WeightFormat::cols4, 0, 0},     {kernels::WeightFormat::cols4, 0, 1},
    {kernels::WeightFormat::cols4, 0.05, -1}, {kernels::WeightFormat::cols4, 0.5, -1}, {kernels::WeightFormat::cols4, 1, -1}};
int rows_of(kernels::WeightFormat f) { return f == kernels::WeightFormat::rows4 ? 4 : 1; }
int cols_of(kernels::WeightFormat f) { return f == kernels::WeightFormat::cols4 ? 4 : 1; }

std::vector<kernels::Isa> isas() {
  std::vector<kernels::Isa> out;
  for (auto isa : {kernels::Isa::reference, kernels::Isa::avx2, kernels::Isa::avx512})
    if (kernels::isa_supported(isa)) out.push_back(isa);
  return out;
}


// Runs the sparse op and the dense op on the masked weight; compares y, dx,
// dW (at the kept positions) and db.
template <typename Sparse, typename Dense>
void compare(const Shape& x_shape, const Tensor& weight, const Tensor& mask,
             const std::shared_ptr<const SparseWeight>& form, Sparse sparse, Dense dense, const std::string& what) {
  const Tensor x0 = Tensor::randn(x_shape, 11), b0 = Tensor::randn({weight.size(0)}, 12);
  Variable x(x0.clone(), true), values(form->gather(weight), true), bias(b0.clone(), true);
  Variable y = sparse(x, values, bias);
  Variable xd(x0.clone(), true), wd(times(weight, mask), true), bd(b0.clone(), true);
  Variable yd = dense(xd, wd, bd);
  expect_close(y.data(), yd.data(), what + " y");
  const Tensor g = Tensor::randn(y.shape(), 13);
  y.backward(g);
  yd.backward(g);
  expect_close(x.grad(), xd.grad(), what + " dx");
  expect_close(values.grad(), form->gather(wd.grad()), what + " dW");
  expect_close(bias.grad(), bd.grad(), what + " db");
}

TEST(SparseLinear, MatchesTheDenseMaskedLinear) {
  uint64_t seed = 100;
  for (auto isa : isas()) {
    for (const Case& c : kCases)
      for (auto [n, out, in] : {std::tuple{1, 4, 4}, {7, 8, 12}, {8, 12, 20}, {9, 16, 8}, {17, 8, 36},
                                {63, 20, 16}, {64, 4, 64}, {65, 12, 28}, {130, 36, 40}}) {
        const Tensor w = Tensor::randn({out, in}, ++seed);
        const Tensor mask = block_mask({out, in}, rows_of(c.format), cols_of(c.format), c.density, ++seed, c.keep);
        auto form = SparseWeight::linear(mask, c.format);
        ASSERT_EQ(form->format(), c.format);
        const std::string what = fmt::format("{} {} density {} keep {} x({},{}) w({},{})", kernels::isa_name(isa),
                                             to_string(c.format), c.density, c.keep, n, in, out, in);
        compare({n, in}, w, mask, form,
                [&](Variable& x, Variable& v, Variable& b) { return sparse_linear(x, form, v, b, isa); },
                [](Variable& x, Variable& w, Variable& b) { return linear(x, w, b); }, what);
      }
  }
}

// A first layer: its input needs no gradient, so the weight gradient runs on its own.
TEST(SparseOps, WeightGradientWithoutAnInputGradient) {
  const Tensor lw = Tensor::randn({12, 20}, 1), lmask = block_mask({12, 20}, 4, 1, 0.3, 2);
  auto lform = SparseWeight::linear(lmask);
  const Tensor cw = Tensor::randn({8, 3, 3, 3}, 3), cmask = block_mask({8, 3, 3, 3}, 1, 1, 0.3, 4);
  const Conv2dOptions o{.pad_h = 1, .pad_w = 1};
  auto cform = SparseWeight::conv2d(cmask, o);
  for (bool conv : {false, true}) {
    const Tensor x = Tensor::randn(conv ? Shape{2, 3, 7, 7} : Shape{9, 20}, 5);
    const Tensor& w = conv ? cw : lw;
    auto form = conv ? cform : lform;
    Variable values(form->gather(w), true), wd(times(w, conv ? cmask : lmask), true);
    Variable y = conv ? sparse_conv2d(Variable(x), form, values) : sparse_linear(Variable(x), form, values);
    Variable yd = conv ? conv2d(Variable(x), wd, {}, o) : linear(Variable(x), wd);
    const Tensor g = Tensor::randn(y.shape(), 6);
    y.backward(g);
    yd.backward(g);
    expect_close(values.grad(), form->gather(wd.grad()), conv ? "conv dW" : "linear dW");
  }
}

TEST(SparseLinear, AcceptsBatchedInputs) {
  const Tensor w = Tensor::randn({8, 6}, 1), mask = block_mask({8, 6}, 1, 1, 0.3, 2);
  auto form = SparseWeight::linear(mask);
  compare({2, 3, 6}, w, mask, form,
          [&](Variable& x, Variable& v, Variable& b) { return sparse_linear(x, form, v, b); },
          [](Variable& x, Variable& w, Variable& b) { return linear(x, w, b); }, "3-D input");
}

TEST(SparseConv2d, MatchesTheDenseMaskedConvolution) {
  struct Geometry {
    int64_t c, f, k, h, w;
    Conv2dOptions o;
  };
  const Geometry geometries[] = {
      {3, 8, 3, 8, 8, {.pad_h = 1, .pad_w = 1}},
      {4, 4, 3, 9, 7, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
      {8, 12, 1, 8, 8, {.stride_h = 2, .stride_w = 2}},
      {4, 8, 1, 5, 6, {}},
      {4, 4, 3, 11, 10, {.dilation_h = 2, .dilation_w = 2}},
      {2, 4, 5, 9, 9, {.stride_h = 2, .stride_w = 1, .pad_h = 2, .pad_w = 1}},
      {4, 16, 3, 17, 17, {.stride_h = 3, .stride_w = 3, .pad_h = 1, .pad_w = 1, .dilation_h = 2, .dilation_w = 1}},
  };
  uint64_t seed = 500;
  for (auto isa : isas()) {
    for (const Case& c : kCases)
      for (const Geometry& g : geometries) {
        const Shape ws{g.f, g.c, g.k, g.k};
        const Tensor w = Tensor::randn(ws, ++seed);
        const Tensor mask = block_mask(ws, rows_of(c.format), cols_of(c.format), c.density, ++seed, c.keep);
        if (numel(ws) / g.f % cols_of(c.format) != 0) continue;
        auto form = SparseWeight::conv2d(mask, g.o, c.format);
        const std::string what =
            fmt::format("{} {} density {} keep {} c{} f{} k{} {}x{} stride {}x{} pad {}x{} dilation {}x{}",
                        kernels::isa_name(isa), to_string(c.format), c.density, c.keep, g.c, g.f, g.k, g.h, g.w,
                        g.o.stride_h, g.o.stride_w, g.o.pad_h, g.o.pad_w, g.o.dilation_h, g.o.dilation_w);
        compare({3, g.c, g.h, g.w}, w, mask, form,
                [&](Variable& x, Variable& v, Variable& b) { return sparse_conv2d(x, form, v, b, isa); },
                [&](Variable& x, Variable& w, Variable& b) { return conv2d(x, w, b, g.o); }, what);
      }
  }
}

TEST(SparseOps, GradientsMatchFiniteDifferences) {
  const Tensor lmask = block_mask({6, 8}, 1, 1, 0.4, 1);
  auto lform = SparseWeight::linear(lmask);
  testing::expect_gradients_match(
      [&](auto& in) { return sparse_linear(in[0], lform, in[1], in[2]); },
      {Tensor::randn({5, 8}, 2), lform->gather(Tensor::randn({6, 8}, 3)), Tensor::randn({6}, 4)});
  const Conv2dOptions o{.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
  const Tensor cmask = block_mask({4, 3, 3, 3}, 4, 1, 0.5, 5);
  auto cform = SparseWeight::conv2d(cmask, o);
  EXPECT_EQ(cform->format(), kernels::WeightFormat::rows4);
  testing::expect_gradients_match(
      [&](auto& in) { return sparse_conv2d(in[0], cform, in[1], in[2]); },
      {Tensor::randn({2, 3, 7, 6}, 6), cform->gather(Tensor::randn({4, 3, 3, 3}, 7)), Tensor::randn({4}, 8)});
}

TEST(SparseWeight, PicksTheBlockFormTheMaskHasAndRoundTripsValues) {
  EXPECT_EQ(SparseWeight::linear(block_mask({8, 8}, 4, 1, 0.5, 1))->format(), kernels::WeightFormat::rows4);
  EXPECT_EQ(SparseWeight::linear(block_mask({8, 8}, 1, 4, 0.5, 1))->format(), kernels::WeightFormat::cols4);
  EXPECT_EQ(SparseWeight::linear(block_mask({8, 8}, 1, 1, 0.5, 1))->format(), kernels::WeightFormat::csr);
  EXPECT_EQ(SparseWeight::linear(block_mask({6, 8}, 1, 1, 0.5, 1), kernels::WeightFormat::csr)->format(), kernels::WeightFormat::csr);
  EXPECT_THROW(SparseWeight::linear(block_mask({8, 8}, 1, 1, 0.5, 1), kernels::WeightFormat::rows4), neurite::ValueError);
  EXPECT_THROW(SparseWeight::conv2d(Tensor::ones({4, 2, 3, 3}), Conv2dOptions{.groups = 2}), neurite::ValueError);
  const Tensor mask = block_mask({5, 7}, 1, 1, 0.3, 3), w = Tensor::randn({5, 7}, 4);
  auto form = SparseWeight::linear(mask);
  EXPECT_NEAR(form->density(), 0.3, 0.02);
  Tensor back = Tensor::zeros({5, 7});
  form->scatter(form->gather(w), back);
  expect_close(back, times(w, mask), "scatter(gather(w))");
}

}  // namespace
}  // namespace neurite::autograd
