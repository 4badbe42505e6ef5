// Checkpoints (round trip, atomic write, broken files), evaluation, and
// resume equivalence of the Trainer.
#include <gtest/gtest.h>

#include "support/temp_dir.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "neurite/error.h"
#include "neurite/data/readers.h"
#include "neurite/layers/init.h"
#include "neurite/train/plot.h"
#include "neurite/train/trainer.h"
#include "support/expect_error.h"

#include <sstream>

namespace neurite::train {
namespace {

namespace fs = std::filesystem;
using neurite::testing::temp_dir;
using layers::models::ModelOptions;

void expect_same_bits(const layers::StateDict& a, const layers::StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const Tensor& u = b.at(name);
    ASSERT_EQ(t.shape(), u.shape()) << name;
    ASSERT_EQ(t.dtype(), u.dtype()) << name;
    EXPECT_EQ(std::memcmp(t.bytes(), u.bytes(), t.nbytes()), 0) << name;
  }
}

TEST(Checkpoint, RoundTripsBitExactlyWithMasksOptimizerStateAndRecipe) {
  const fs::path dir = temp_dir("train_roundtrip");
  Checkpoint c;
  c.model = "cnn";
  c.options = ModelOptions{.image_size = 12, .num_classes = 4};
  auto model = layers::models::make_model(c.model, c.options);
  auto& [name, weight] = model->named_parameters().front();
  Tensor mask = Tensor::ones(weight->shape());
  mask.data<float>()[1] = 0;
  weight->set_mask(mask);
  capture_model(*model, c);
  c.optimizer = "sgd";
  c.optimizer_state = {{"0.0.momentum_buffer", Tensor::randn(weight->shape(), 3)}, {"0.0.step", Tensor::scalar(7)}};
  c.epoch = 3;
  c.step = 123;
  c.rng_state = 0xFFFFFFFFFFFFFFF1ull;
  c.recipe = "modifiers:\n  - !EpochRangeModifier\n    end_epoch: 3\n";
  const std::string path = (dir / "c.h5").string();
  save_checkpoint(path, c);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const Checkpoint back = load_checkpoint(path);
  EXPECT_EQ(back.model, "cnn");
  EXPECT_EQ(back.options.image_size, 12);
  EXPECT_EQ(back.options.num_classes, 4);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.step, 123);
  EXPECT_EQ(back.rng_state, c.rng_state);
  EXPECT_EQ(back.recipe, c.recipe);
  EXPECT_EQ(back.optimizer, "sgd");
  expect_same_bits(back.state, c.state);
  expect_same_bits(back.masks, c.masks);
  expect_same_bits(back.optimizer_state, c.optimizer_state);
  auto rebuilt = build_model(back);
  EXPECT_TRUE(rebuilt->named_parameters().front().second->has_mask());
  expect_same_bits(rebuilt->state_dict(), model->state_dict());
}

TEST(Checkpoint, MissingCorruptAndForeignFilesAreClearErrors) {
  const fs::path dir = temp_dir("train_broken");
  EXPECT_THROW(load_checkpoint((dir / "none.h5").string()), IoError);
  std::ofstream(dir / "text.h5") << "not a checkpoint";
  EXPECT_THROW(load_checkpoint((dir / "text.h5").string()), FormatError);
  Checkpoint c;
  c.model = "mlp";
  capture_model(*layers::models::make_model("mlp"), c);
  save_checkpoint((dir / "good.h5").string(), c);
  const auto size = fs::file_size(dir / "good.h5");
  fs::copy_file(dir / "good.h5", dir / "cut.h5");
  fs::resize_file(dir / "cut.h5", size / 2);
  EXPECT_THROW(load_checkpoint((dir / "cut.h5").string()), FormatError);
  data::save_h5((dir / "data.h5").string(), Tensor::zeros({1, 2}), Tensor::zeros({1}, autograd::Dtype::i64));
  testing::expect_error<FormatError>([&] { load_checkpoint((dir / "data.h5").string()); },
                                     {"not a Neurite checkpoint"});
}

// Separable synthetic images: class k lights up quadrant k.
std::shared_ptr<data::TensorDataset> quadrants(int64_t n, uint64_t seed) {
  Tensor x = Tensor::randn({n, 1, 12, 12}, seed, 0, 0.3f);
  Tensor y = Tensor::randint({n}, seed + 1, 0, 4);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = y.data<int64_t>()[i];
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t c = 0; c < 6; ++c) x.data<float>()[i * 144 + (r + 6 * (k / 2)) * 12 + c + 6 * (k % 2)] += 1.0f;
  }
  return std::make_shared<data::TensorDataset>(x, y, 4, "quadrants");
}

struct TrainingRun {
  std::shared_ptr<layers::UnaryModule> model;
  std::unique_ptr<optim::Sgd> sgd;
  std::unique_ptr<optim::LrScheduler> schedule;
  std::unique_ptr<data::DataLoader> loader;
  std::unique_ptr<Trainer> trainer;
};

TrainingRun make_run(const std::string& dir, int64_t epochs, std::shared_ptr<data::TensorDataset> train,
             std::shared_ptr<data::TensorDataset> val) {
  TrainingRun r;
  layers::manual_seed(11);
  Checkpoint tmpl;
  tmpl.model = "cnn";
  tmpl.options = {.image_size = 12, .num_classes = 4};
  tmpl.optimizer = "sgd";
  r.model = layers::models::make_model(tmpl.model, tmpl.options);
  r.sgd = std::make_unique<optim::Sgd>(std::vector<optim::ParamGroup>{{.params = r.model->parameters(), .lr = 0.05}},
                                       optim::SgdOptions{.momentum = 0.9});
  r.loader = std::make_unique<data::DataLoader>(train, data::DataLoaderOptions{.batch_size = 16, .seed = 2});
  r.schedule = std::make_unique<optim::LrScheduler>(*r.sgd, optim::Schedule::cosine(4), r.loader->batches_per_epoch());
  r.trainer = std::make_unique<Trainer>(r.model, *r.sgd, r.schedule.get(), *r.loader, val,
                                        TrainerOptions{.epochs = epochs, .out_dir = dir, .log = [](auto&) {},
                                                       .checkpoint_template = tmpl});
  return r;
}

TEST(Trainer, LearnsWritesMetricsAndResumesToTheSameWeights) {
  auto train = quadrants(96, 1), val = quadrants(64, 50);
  const fs::path whole = temp_dir("train_whole"), split = temp_dir("train_split");
  TrainingRun a = make_run(whole.string(), 4, train, val);
  const Summary s = a.trainer->fit();
  ASSERT_EQ(s.epochs.size(), 4u);
  EXPECT_GT(s.epochs.back().val_top1, 0.9);
  EXPECT_LT(s.epochs.back().train_loss, s.epochs.front().train_loss);

  TrainingRun b = make_run(split.string(), 2, train, val);  // interrupted after 2 epochs
  b.trainer->fit();
  TrainingRun c = make_run(split.string(), 4, train, val);  // a new process resumes
  c.trainer->resume(load_checkpoint((split / "checkpoint.h5").string()));
  c.trainer->fit();
  expect_same_bits(c.model->state_dict(), a.model->state_dict());

  std::ifstream metrics(whole / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    for (const char* key : {"epoch", "lr", "train_loss", "val_loss", "val_top1", "seconds", "sparsity"})
      EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j["epoch"], ++lines);
  }
  EXPECT_EQ(lines, 4);
  const auto summary = nlohmann::json::parse(std::ifstream(whole / "summary.json"));
  EXPECT_EQ(summary["epochs"], 4);
  EXPECT_DOUBLE_EQ(summary["val_top1"].get<double>(), s.epochs.back().val_top1);
  EXPECT_EQ(load_checkpoint((whole / "checkpoint.h5").string()).epoch, 4);
  EXPECT_TRUE(fs::exists(whole / "curves.svg"));
}

TEST(Plot, WritesOneLinePerSeriesAndEscapesText) {
  const fs::path dir = temp_dir("train_plot");
  LineChart chart{"a <b> & c", "epoch", "loss", {{"one", {1, 2, 3}, {0.5, 0.25, 0.125}}, {"two", {1, 2}, {1, 2}}}};
  write_svg({chart, chart}, (dir / "c.svg").string());
  std::stringstream text;
  text << std::ifstream(dir / "c.svg").rdbuf();
  const std::string svg = text.str();
  size_t lines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 4u);
  EXPECT_NE(svg.find("a &lt;b&gt; &amp; c"), std::string::npos);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_THROW(write_svg(chart, "/nonexistent/dir/c.svg"), IoError);
}

TEST(Evaluate, CountsTopOneAndLeavesTheModeAlone) {
  auto model = layers::models::make_model("cnn", {.image_size = 12, .num_classes = 4});
  model->train();
  const Evaluation e = evaluate(*model, *quadrants(10, 3), 4);
  EXPECT_EQ(e.examples, 10);
  EXPECT_GE(e.top1, 0.0);
  EXPECT_LE(e.top1, 1.0);
  EXPECT_GT(e.loss, 0.0);
  EXPECT_TRUE(model->is_training());
}

}  // namespace
}  // namespace neurite::train
