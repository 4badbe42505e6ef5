#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "neurite/error.h"
#include "neurite/autograd/tensor.h"
#include "support/expect_error.h"

namespace neurite::autograd {
namespace {

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

TEST(Tensor, FactoriesFillShapeAndAlign) {
  const Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(values(z), std::vector<float>(6, 0.0f));
  EXPECT_EQ(values(Tensor::ones({4})), std::vector<float>(4, 1.0f));
  EXPECT_EQ(values(Tensor::full({2}, 2.5f)), (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(values(Tensor::arange(1, 2, 0.25)), (std::vector<float>{1, 1.25, 1.5, 1.75}));
  const Tensor ai = Tensor::arange(5, 0, -2, Dtype::i64);
  EXPECT_EQ(std::vector<int64_t>(ai.data<int64_t>(), ai.data<int64_t>() + 3), (std::vector<int64_t>{5, 3, 1}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(Tensor::empty({3, 5}).data<float>()) % 64, 0u);
  EXPECT_EQ(Tensor::scalar(3).dim(), 0);
  EXPECT_FLOAT_EQ(Tensor::scalar(3).item(), 3.0f);
}

TEST(Tensor, SeededRandomIsReproducibleAndHasTheRightMoments) {
  const Tensor a = Tensor::randn({10000}, 42), b = Tensor::randn({10000}, 42), c = Tensor::randn({10000}, 43);
  EXPECT_EQ(values(a), values(b));
  EXPECT_NE(values(a), values(c));
  double s = 0, ss = 0;
  for (float v : values(a)) { s += v; ss += v * v; }
  EXPECT_NEAR(s / 10000, 0.0, 0.03);
  EXPECT_NEAR(ss / 10000, 1.0, 0.05);
  for (float v : values(Tensor::rand({1000}, 1, -2, 3))) {
    EXPECT_GE(v, -2.0f);
    EXPECT_LT(v, 3.0f);
  }
  const Tensor r = Tensor::randint({1000}, 5, 3, 7);
  for (int64_t i = 0; i < r.numel(); ++i) {
    EXPECT_GE(r.data<int64_t>()[i], 3);
    EXPECT_LT(r.data<int64_t>()[i], 7);
  }
}

TEST(Tensor, ReshapeSharesStorageAndInfersOneExtent) {
  Tensor t = Tensor::arange(0, 12);
  Tensor r = t.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  EXPECT_TRUE(r.shares_storage(t));
  r.at<float>({1, 2}) = 100;
  EXPECT_EQ(t.data<float>()[6], 100);
  EXPECT_THROW(t.reshape({5, -1}), ShapeError);
  EXPECT_THROW(t.reshape({-1, -1}), ShapeError);
}

TEST(Tensor, PermuteTransposeSliceMatchHandComputedValues) {
  const Tensor t = Tensor::arange(0, 24).reshape({2, 3, 4});
  const Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(p.at<float>({i, j, k}), t.at<float>({j, k, i}));
  EXPECT_EQ(values(t.transpose(0, 1).slice(0, 1, 2)), values(t.slice(1, 1, 2).reshape({2, 4})));
  EXPECT_EQ(values(t.slice(2, 1, 4, 2).reshape({-1})), (std::vector<float>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}));
  EXPECT_EQ(values(t.slice(2, -1, 100).reshape({-1})), (std::vector<float>{3, 7, 11, 15, 19, 23}));
  EXPECT_EQ(t.slice(0, 5, 9).numel(), 0);
  EXPECT_THROW(t.permute({0, 0, 1}), ShapeError);
  EXPECT_THROW(t.transpose(0, 3), ShapeError);
}

TEST(Tensor, ConcatAndIndexSelect) {
  const Tensor a = Tensor::arange(0, 4).reshape({2, 2}), b = Tensor::arange(10, 16).reshape({2, 3});
  EXPECT_EQ(values(Tensor::concat({a, b}, 1)), (std::vector<float>{0, 1, 10, 11, 12, 2, 3, 13, 14, 15}));
  EXPECT_THROW(Tensor::concat({a, b}, 0), ShapeError);
  const Tensor idx = Tensor::from_data({3}, std::vector<int64_t>{2, 0, 2});
  EXPECT_EQ(values(b.index_select(1, idx)), (std::vector<float>{12, 10, 12, 15, 13, 15}));
  EXPECT_THROW(b.index_select(1, Tensor::from_data({1}, std::vector<int64_t>{3})), ShapeError);
}

TEST(Tensor, TypedAccessChecksTheDtype) {
  Tensor t = Tensor::zeros({2}, Dtype::i64);
  EXPECT_THROW(t.data<float>(), DtypeError);
  EXPECT_EQ(t.to(Dtype::f32).dtype(), Dtype::f32);
  EXPECT_THROW(Tensor().data<float>(), StateError);
  EXPECT_THROW(Tensor::zeros({2}).item(), ShapeError);
}

TEST(Tensor, PrintsShapeDtypeAndValues) {
  EXPECT_EQ(Tensor::arange(0, 3).str(), "Tensor(float32 [3]) [0, 1, 2]");
  EXPECT_NE(Tensor::zeros({100}).str().find("(100 values)"), std::string::npos);
}

class Npy : public ::testing::Test {
 protected:
  std::string path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("neurite_npy_" + std::to_string(getpid()) + name)).string();
  }
};

TEST_F(Npy, RoundTripsFloatAndIntBitExactly) {
  const Tensor f = Tensor::randn({3, 1, 5}, 9);
  save_npy(path("f.npy"), f);
  const Tensor g = load_npy(path("f.npy"));
  EXPECT_EQ(g.shape(), f.shape());
  EXPECT_EQ(values(g), values(f));
  const Tensor i = Tensor::arange(0, 7, 1, Dtype::i64);
  save_npy(path("i.npy"), i);
  const Tensor j = load_npy(path("i.npy"));
  EXPECT_EQ(j.dtype(), Dtype::i64);
  EXPECT_EQ(std::vector<int64_t>(j.data<int64_t>(), j.data<int64_t>() + 7), std::vector<int64_t>({0, 1, 2, 3, 4, 5, 6}));
  save_npy(path("s.npy"), Tensor::scalar(2));
  EXPECT_EQ(load_npy(path("s.npy")).dim(), 0);
}

TEST_F(Npy, RejectsMissingTruncatedAndForeignFiles) {
  EXPECT_THROW(load_npy(path("does-not-exist.npy")), IoError);
  { std::ofstream(path("text.npy")) << "hello"; }
  EXPECT_THROW(load_npy(path("text.npy")), FormatError);
  save_npy(path("t.npy"), Tensor::zeros({100}));
  std::filesystem::resize_file(path("t.npy"), 200);
  testing::expect_error<FormatError>([&] { load_npy(path("t.npy")); },
                                     {"t.npy: .npy data: shape [100] needs 400 bytes, more than the"});
  // Sizes from the header are checked before anything is allocated: a
  // trillion elements, and a size that overflows int64.
  auto with_shape = [&](const std::string& name, const std::string& shape) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    header.resize(118, ' ');
    header += '\n';
    std::ofstream(path(name), std::ios::binary) << std::string("\x93NUMPY\x01\x00", 8) << char(header.size() % 256)
                                                << char(header.size() / 256) << header << std::string(64, '\0');
    return path(name);
  };
  testing::expect_error<FormatError>([&] { load_npy(with_shape("huge.npy", "(1000000, 1000000)")); },
                                     {"huge.npy: .npy data: shape [1000000,1000000] needs 4000000000000 bytes"});
  testing::expect_error<FormatError>([&] { load_npy(with_shape("overflow.npy", "(70000000000000000, 1000)")); },
                                     {"overflow.npy: .npy data: shape [70000000000000000,1000] is too large"});
  testing::expect_error<FormatError>([&] { load_npy(with_shape("digits.npy", "(99999999999999999999,)")); },
                                     {"digits.npy: a size in the .npy shape is too large"});
}

}  // namespace
}  // namespace neurite::autograd
