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
#include "neurite/layers/layers.h"
#include "neurite/layers/sparse_kernels.h"
#include "neurite/train/plot.h"
#include "neurite/train/trainer.h"
#include "support/expect_error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>
#include <vector>

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
  const auto parameters = model->named_parameters();  // the reference below must not outlive it
  const auto& [name, weight] = parameters.front();
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
                     std::shared_ptr<data::TensorDataset> val, kernels::KernelPolicy policy = {}) {
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
                                                       .checkpoint_template = tmpl, .kernels = policy});
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

// Masks 70 % of every weight with two or more dimensions, in a fixed pattern.
void prune_fixed(layers::Module& model) {
  uint64_t seed = 100;
  for (const auto& [name, p] : model.named_parameters()) {
    if (p->shape().size() < 2) continue;
    const Tensor r = Tensor::rand(p->shape(), ++seed);
    Tensor mask = Tensor::zeros(p->shape());
    for (int64_t i = 0; i < mask.numel(); ++i) mask.data<float>()[i] = r.data<float>()[i] < 0.3f ? 1.0f : 0.0f;
    p->set_mask(mask);
  }
}

std::map<std::string, Tensor> masks_of(const layers::Module& model) {
  std::map<std::string, Tensor> masks;
  for (const auto& [name, p] : model.named_parameters())
    if (p->has_mask()) masks.emplace(name, p->mask().clone());
  return masks;
}

void expect_masked_weights_zero(const layers::Module& model, const std::string& when) {
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p->has_mask()) continue;
    const float* w = p->value().data().data<float>();
    const float* m = p->mask().data<float>();
    int64_t live = 0;
    for (int64_t i = 0; i < p->numel(); ++i) live += m[i] == 0.0f && w[i] != 0.0f;
    EXPECT_EQ(live, 0) << name << ": masked weights not zero " << when;
  }
}

// A pruned run interrupted after one epoch and resumed in a fresh, unpruned
// model gets its masks back from the checkpoint: the masked weights stay zero
// through further steps and the run ends bit-exactly where the uninterrupted
// one does, with dense masked kernels and with sparse ones.
TEST(Trainer, ResumeRestoresMasksAndKeepsMaskedWeightsZero) {
  auto train = quadrants(48, 1), val = quadrants(16, 50);
  for (const auto mode : {kernels::SparseKernels::never, kernels::SparseKernels::always}) {
    SCOPED_TRACE(mode == kernels::SparseKernels::never ? "dense masked kernels" : "sparse kernels");
    const kernels::KernelPolicy policy{.sparse = mode};
    const fs::path whole = temp_dir("train_masks_whole"), split = temp_dir("train_masks_split");
    TrainingRun a = make_run(whole.string(), 2, train, val, policy);
    prune_fixed(*a.model);
    const auto masks = masks_of(*a.model);
    ASSERT_EQ(masks.size(), 4u);  // cnn: two convolutions, two linear layers
    a.trainer->fit();

    TrainingRun b = make_run(split.string(), 1, train, val, policy);  // interrupted after 1 epoch
    prune_fixed(*b.model);
    b.trainer->fit();
    const layers::StateDict at_interrupt = b.model->state_dict();

    TrainingRun c = make_run(split.string(), 2, train, val, policy);  // a new process, its model unpruned
    ASSERT_TRUE(masks_of(*c.model).empty());
    c.trainer->resume(load_checkpoint((split / "checkpoint.h5").string()));
    EXPECT_EQ(c.trainer->epoch(), 1);
    expect_same_bits(masks_of(*c.model), masks);
    expect_same_bits(c.model->state_dict(), at_interrupt);
    expect_masked_weights_zero(*c.model, "after resume");

    c.trainer->fit();
    expect_same_bits(masks_of(*c.model), masks);
    expect_masked_weights_zero(*c.model, "after training on");
    expect_same_bits(c.model->state_dict(), a.model->state_dict());
    for (const auto& [name, mask] : masks)
      EXPECT_NE(std::memcmp(c.model->state_dict().at(name).bytes(), at_interrupt.at(name).bytes(),
                            mask.nbytes()), 0) << name << ": the resumed run did not train it";
  }
}

// The loop as a user extends it: a loss and metrics of their own, callbacks at
// each hook, the best epoch kept, and an early stop when validation stalls.
TEST(Trainer, TakesALossMetricsCallbacksKeepsTheBestAndStopsEarly) {
  auto train = quadrants(64, 3), val = quadrants(32, 60);
  const auto dir = testing::temp_dir("trainer_hooks");
  TrainingRun r = make_run(dir.string(), 20, train, val);
  struct Recorder : Callback {
    int steps = 0, evaluations = 0, epochs = 0;
    std::vector<std::string> saved;
    double last_loss = -1;
    void after_step(double, int64_t, double loss) override { ++steps, last_loss = loss; }
    void evaluated(const Evaluation& e) override { evaluations += e.metrics.count("error") == 1; }
    void checkpoint_saved(const std::string& path) override { saved.push_back(path); }
    void epoch_end(const EpochMetrics&) override { ++epochs; }
  } recorder;
  int loss_calls = 0;
  TrainerOptions options{.epochs = 20, .out_dir = dir.string(), .log = [](auto&) {}};
  options.loss = [&](const autograd::Variable& out, const Tensor& targets) {
    ++loss_calls;
    return autograd::cross_entropy(out, targets, {.label_smoothing = 0.1f});
  };
  options.metrics["error"] = [](const Tensor& out, const Tensor& targets) {
    int64_t wrong = 0;
    for (int64_t i = 0; i < targets.numel(); ++i) {
      const float* row = out.data<float>() + i * out.size(1);
      wrong += std::max_element(row, row + out.size(1)) - row != targets.data<int64_t>()[i];
    }
    return static_cast<double>(wrong) / static_cast<double>(targets.numel());
  };
  options.keep_best = "val_top1";
  options.early_stopping_patience = 2;
  Trainer trainer(r.model, *r.sgd, nullptr, *r.loader, val, options);
  trainer.add_callback(&recorder);
  const Summary s = trainer.fit();
  ASSERT_LT(s.epochs.size(), 20u) << "the separable task stops improving long before 20 epochs";
  EXPECT_EQ(recorder.epochs, static_cast<int>(s.epochs.size()));
  EXPECT_EQ(recorder.evaluations, recorder.epochs);
  EXPECT_EQ(recorder.steps, recorder.epochs * 4);  // 64 examples in batches of 16
  EXPECT_GT(loss_calls, recorder.steps);  // training and validation both use the given loss
  EXPECT_GE(recorder.last_loss, 0.0);
  for (const auto& m : s.epochs) EXPECT_NEAR(m.metrics.at("error"), 1.0 - m.val_top1, 1e-9);
  // best.h5 is the epoch with the best top-1; the run stopped `patience` epochs after it.
  size_t best = 0;
  for (size_t i = 1; i < s.epochs.size(); ++i)
    if (s.epochs[i].val_top1 > s.epochs[best].val_top1) best = i;
  EXPECT_EQ(s.epochs.size() - 1 - best, 2u);
  EXPECT_EQ(load_checkpoint((dir / "best.h5").string()).epoch, s.epochs[best].epoch);
  EXPECT_NE(std::find(recorder.saved.begin(), recorder.saved.end(), (dir / "best.h5").string()), recorder.saved.end());
}

// A module of one's own, registered by name, round-trips through a checkpoint
// as the zoo's models do.
TEST(Checkpoint, HoldsARegisteredModuleOfOnesOwn) {
  struct Tiny : layers::UnaryModule {
    std::shared_ptr<layers::Linear> fc;
    explicit Tiny(int64_t classes) : fc(register_module("fc", std::make_shared<layers::Linear>(16, classes))) {}
    autograd::Variable forward(const autograd::Variable& x) override {
      return fc->forward(autograd::reshape(x, {x.shape()[0], 16}));
    }
  };
  layers::models::register_model("tiny", [](const layers::models::ModelOptions& o) {
    return std::make_shared<Tiny>(o.num_classes);
  });
  EXPECT_THROW(layers::models::register_model("tiny", [](const auto&) { return std::make_shared<Tiny>(2); }),
               ValueError);
  Checkpoint c;
  c.model = "tiny";
  c.options = {.image_size = 4, .num_classes = 3};
  auto model = layers::models::make_model(c.model, c.options);
  capture_model(*model, c);
  const auto dir = testing::temp_dir("registered_model");
  save_checkpoint((dir / "tiny.h5").string(), c);
  auto loaded = build_model(load_checkpoint((dir / "tiny.h5").string()));
  const Tensor x = Tensor::randn({2, 1, 4, 4}, 3);
  autograd::NoGradGuard no_grad;
  const Tensor want = model->forward(autograd::Variable(x)).data(), got = loaded->forward(autograd::Variable(x)).data();
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(got.data<float>()[i], want.data<float>()[i]);
}

// Regression: examples with tensor targets, trained with a loss of one's own.
TEST(Trainer, FitsARegressionWithTensorTargets) {
  struct Line : data::Dataset {  // y = 3 x1 - x2
    Tensor x = Tensor::randn({64, 2}, 7);
    int64_t size() const override { return 64; }
    data::Example get(int64_t i) const override {
      const float a = x.data<float>()[2 * i], b = x.data<float>()[2 * i + 1];
      return {.input = Tensor::from_data({2}, std::vector<float>{a, b}), .label = 0,
              .target = Tensor::full({1}, 3 * a - b)};
    }
    autograd::Shape input_shape() const override { return {2}; }
    int64_t num_classes() const override { return 0; }
    std::string source(int64_t i) const override { return std::to_string(i); }
  };
  auto line = std::make_shared<Line>();
  layers::manual_seed(5);
  auto model = std::make_shared<layers::Linear>(2, 1);
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1}});
  data::DataLoader loader(line, {.batch_size = 16, .seed = 1});
  TrainerOptions options{.epochs = 30, .log = [](auto&) {}};
  options.loss = [](const autograd::Variable& y, const Tensor& target) {
    return autograd::mse_loss(y, autograd::Variable(target));
  };
  Trainer trainer(model, sgd, nullptr, loader, line, options);
  const Summary s = trainer.fit();
  EXPECT_LT(s.epochs.back().val_loss, 1e-3);
  EXPECT_NEAR(model->weight.value().data().data<float>()[0], 3.0f, 0.05f);
  EXPECT_NEAR(model->weight.value().data().data<float>()[1], -1.0f, 0.05f);
}

// A model of two inputs (its own forward_inputs) trains on examples with
// more_inputs; a model of one refuses them by name.
TEST(Trainer, TrainsAModelOfTwoInputs) {
  const Tensor a = Tensor::randn({128, 2}, 3), b = Tensor::randn({128, 2}, 4);
  Tensor labels = Tensor::empty({128}, autograd::Dtype::i64);
  for (int64_t i = 0; i < 128; ++i)  // the class needs both inputs
    labels.data<int64_t>()[i] = a.data<float>()[2 * i] + b.data<float>()[2 * i + 1] > 0;
  auto pairs = std::make_shared<data::TensorDataset>(a, labels, 2, "pairs", std::vector<Tensor>{b});
  struct TwoInputs : layers::UnaryModule {
    std::shared_ptr<layers::Linear> fa = register_module("fa", std::make_shared<layers::Linear>(2, 2));
    std::shared_ptr<layers::Linear> fb = register_module("fb", std::make_shared<layers::Linear>(2, 2));
    autograd::Variable forward(const autograd::Variable&) override { throw ValueError("takes two inputs"); }
    autograd::Variable forward_inputs(const std::vector<autograd::Variable>& in) override {
      return autograd::add(fa->forward(in.at(0)), fb->forward(in.at(1)));
    }
  };
  layers::manual_seed(2);
  auto model = std::make_shared<TwoInputs>();
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.5}});
  data::DataLoader loader(pairs, {.batch_size = 16, .seed = 1});
  Trainer trainer(model, sgd, nullptr, loader, pairs, {.epochs = 20, .log = [](auto&) {}});
  EXPECT_GT(trainer.fit().epochs.back().val_top1, 0.95);

  auto one = std::make_shared<layers::Linear>(2, 2);
  testing::expect_error<ValueError>([&] { evaluate(*one, *pairs); }, {"the model takes one input, the data gives 2"});
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

// A fixed linear model, logits (x0, x1, -x0 - x1), behind a dropout that
// would scramble them in training mode. Ten points in batches of 4, 4, 2; the
// labels of points 1, 8 and 9 disagree with the argmax, so top-1 is exactly 0.7.
TEST(Evaluate, CountsTopOneAndLeavesTheModeAlone) {
  auto linear = std::make_shared<layers::Linear>(2, 3);
  linear->weight.value().data().copy_from_(Tensor::from_data({3, 2}, std::vector<float>{1, 0, 0, 1, -1, -1}));
  linear->bias->value().data().copy_from_(Tensor::zeros({3}));
  layers::Sequential model({std::make_shared<layers::Dropout>(0.5f), linear});
  const std::vector<float> x = {2, 0, 0, 2, -2, -1, 3, 1, 1, 3, -1, -3, 1, 0.5f, 0.5f, 1, -1, -1, 4, -1};
  const std::vector<int64_t> argmax = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  const std::vector<int64_t> labels = {0, 2, 2, 0, 1, 2, 0, 1, 0, 1};
  const data::TensorDataset points(Tensor::from_data({10, 2}, x), Tensor::from_data({10}, labels), 3, "points");
  double loss = 0;  // mean cross-entropy, by hand in double
  for (int64_t i = 0; i < 10; ++i) {
    const double logits[3] = {x[2 * i], x[2 * i + 1], -x[2 * i] - x[2 * i + 1]};
    ASSERT_EQ(std::max_element(logits, logits + 3) - logits, argmax[i]) << i;
    loss += std::log(std::exp(logits[0]) + std::exp(logits[1]) + std::exp(logits[2])) - logits[labels[i]];
  }
  loss /= 10;
  for (const bool training : {true, false}) {
    model.train(training);
    const Evaluation e = evaluate(model, points, /*batch_size=*/4);
    EXPECT_EQ(e.examples, 10);
    EXPECT_DOUBLE_EQ(e.top1, 0.7) << "training " << training;
    EXPECT_NEAR(e.loss, loss, 1e-5 * loss) << "training " << training;
    EXPECT_EQ(model.is_training(), training);
  }
}

}  // namespace
}  // namespace neurite::train
