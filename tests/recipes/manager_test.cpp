// What each modifier changes (and what it leaves alone), block-exact final
// sparsity, and resuming in the middle of a recipe.
#include <gtest/gtest.h>

#include <cstring>

#include "neurite/data/dataset.h"
#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/layers.h"
#include "neurite/layers/models.h"
#include "neurite/layers/quantize.h"
#include "neurite/pruning/pruning.h"
#include "neurite/recipes/manager.h"
#include "neurite/train/recipe_callback.h"
#include "neurite/train/trainer.h"
#include "support/temp_dir.h"

namespace neurite::recipes {

using autograd::Tensor;
namespace {

struct Snapshot {
  std::vector<double> lr, wd;
  std::vector<bool> trainable;
  std::vector<bool> masked;
};

Snapshot snapshot(const layers::Module& model, const optim::Optimizer& opt) {
  Snapshot s;
  for (const auto& g : opt.param_groups()) {
    s.lr.push_back(g.lr);
    s.wd.push_back(g.weight_decay);
  }
  for (const auto& [name, p] : model.named_parameters()) {
    s.trainable.push_back(p->value().requires_grad());
    s.masked.push_back(p->has_mask());
  }
  return s;
}

TEST(Modifiers, EachChangesWhatItShouldAndNothingElse) {
  auto model = layers::models::make_model("cnn", {.image_size = 8});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1, .weight_decay = 1e-4}});
  const Snapshot before = snapshot(*model, sgd);
  auto run = [&](const std::string& modifier, double epoch) {
    Manager m(Recipe::parse("modifiers:\n  - " + modifier + "\n", "r.yaml"), *model, sgd, 4);
    for (int64_t s = 0; s <= static_cast<int64_t>(epoch * 4); ++s) m.before_step(s / 4.0, s);
  };
  run("!SetLearningRateModifier {learning_rate: 0.03, start_epoch: 1}", 1.0);
  Snapshot after = snapshot(*model, sgd);
  EXPECT_EQ(after.lr, std::vector<double>{0.03});
  EXPECT_EQ(after.wd, before.wd);
  EXPECT_EQ(after.trainable, before.trainable);
  EXPECT_EQ(after.masked, before.masked);

  run("!SetWeightDecayModifier {weight_decay: 0.01, start_epoch: 0}", 0.0);
  after = snapshot(*model, sgd);
  EXPECT_EQ(after.wd, std::vector<double>{0.01});
  EXPECT_EQ(after.lr, std::vector<double>{0.03});
  EXPECT_EQ(after.trainable, before.trainable);

  run("!TrainableParamsModifier {params: [\"re:features\\\\..*\"], trainable: false, start_epoch: 0}", 0.0);
  after = snapshot(*model, sgd);
  const auto params = model->named_parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(after.trainable[i], params[i].first.rfind("features", 0) != 0) << params[i].first;
  EXPECT_EQ(after.lr, std::vector<double>{0.03});
  EXPECT_EQ(after.masked, before.masked);
}

TEST(Modifiers, LearningRateCurvesFollowTheirFunctions) {
  auto model = layers::models::make_model("mlp", {.image_size = 4});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 1.0}});
  auto lr_at = [&](const std::string& modifier, double epoch) {
    Manager m(Recipe::parse("modifiers:\n  - " + modifier + "\n", "r.yaml"), *model, sgd, 10);
    m.before_step(epoch, static_cast<int64_t>(epoch * 10));
    return sgd.param_groups()[0].lr;
  };
  const std::string linear = "!LearningRateFunctionModifier {lr_func: linear, init_lr: 0.1, final_lr: 0.0, start_epoch: 0, end_epoch: 4}";
  EXPECT_NEAR(lr_at(linear, 1.0), 0.075, 1e-12);
  const std::string cosine = "!LearningRateFunctionModifier {lr_func: cosine, init_lr: 0.1, final_lr: 0.0, start_epoch: 0, end_epoch: 4}";
  EXPECT_NEAR(lr_at(cosine, 2.0), 0.05, 1e-12);
  const std::string step = "!LearningRateModifier {lr_class: StepLR, lr_kwargs: {step_size: 2, gamma: 0.5}, init_lr: 0.2, start_epoch: 0, end_epoch: 10}";
  EXPECT_NEAR(lr_at(step, 4.5), 0.05, 1e-12);
  const std::string multi = "!LearningRateModifier {lr_class: MultiStepLR, lr_kwargs: {milestones: [1, 3], gamma: 0.1}, init_lr: 1.0, start_epoch: 0, end_epoch: 10}";
  EXPECT_NEAR(lr_at(multi, 2.0), 0.1, 1e-12);
}

TEST(Modifiers, FinalSparsityIsExactToOneWeightOrOneBlock) {
  for (const std::string mask : {"unstructured", "[4,1]"}) {
    auto model = layers::models::make_model("cnn", {.image_size = 8});
    optim::Sgd sgd({{.params = model->parameters()}});
    Manager m(Recipe::parse("modifiers:\n  - !GMPruningModifier {params: __ALL_PRUNABLE__, final_sparsity: 0.85, "
                            "start_epoch: 0, end_epoch: 1, update_frequency: 0.5, mask_type: " + mask + "}\n",
                            "r.yaml"),
              *model, sgd, 2);
    for (int64_t s = 0; s <= 2; ++s) m.before_step(s / 2.0, s);
    for (const auto& name : pruning::select(*model, {"__ALL_PRUNABLE__"}))
      for (const auto& [n, p] : model->named_parameters())
        if (n == name) {
          const double zeros = pruning::sparsity_of(p->value().data()) * static_cast<double>(p->numel());
          const double group = mask == "unstructured" ? 1.0 : 4.0;
          EXPECT_LE(std::abs(zeros - 0.85 * static_cast<double>(p->numel())), group) << mask << " " << n;
        }
  }
}

// Class k of 3 lights up band k of an 8x8 image.
std::shared_ptr<data::TensorDataset> bands(int64_t n) {
  Tensor x = Tensor::rand({n, 1, 8, 8}, 5, 0, 0.2f), y = Tensor::randint({n}, 6, 0, 3);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < 16; ++k) x.data<float>()[i * 64 + 16 * y.data<int64_t>()[i] + k] += 0.8f;
  return std::make_shared<data::TensorDataset>(x, y, 3, "bands");
}

struct RecipeRun {
  std::string dir;  // its run folder
  std::shared_ptr<layers::UnaryModule> model;
  std::unique_ptr<optim::Sgd> sgd;
  std::unique_ptr<data::DataLoader> loader;
  std::unique_ptr<Manager> manager;
  std::unique_ptr<train::Trainer> trainer;
  std::unique_ptr<train::RecipeCallback> hook;
};

std::unique_ptr<RecipeRun> recipe_run(const std::string& dir, int64_t epochs, const Recipe& recipe,
                                      std::shared_ptr<data::TensorDataset> data) {
  auto r = std::make_unique<RecipeRun>();
  r->dir = dir;
  layers::manual_seed(3);
  train::Checkpoint tmpl;
  tmpl.model = "cnn";
  tmpl.options = {.image_size = 8, .num_classes = 3};
  tmpl.recipe = recipe.text;
  r->model = layers::models::make_model("cnn", tmpl.options);
  r->sgd = std::make_unique<optim::Sgd>(std::vector<optim::ParamGroup>{{.params = r->model->parameters(), .lr = 0.05}},
                                        optim::SgdOptions{.momentum = 0.9});
  r->loader = std::make_unique<data::DataLoader>(data, data::DataLoaderOptions{.batch_size = 16, .seed = 4});
  r->manager = std::make_unique<Manager>(recipe, *r->model, *r->sgd, r->loader->batches_per_epoch());
  r->hook = std::make_unique<train::RecipeCallback>(*r->manager);
  r->trainer = std::make_unique<train::Trainer>(
      r->model, *r->sgd, nullptr, *r->loader, data,
      // Deterministic kernels: runs that timed their layers apart could pick sparse in one and dense in the other.
      train::TrainerOptions{.epochs = epochs, .out_dir = dir, .log = [](auto&) {}, .checkpoint_template = tmpl,
                            .kernels = {.autotune = false}});
  r->trainer->add_callback(r->hook.get());
  return r;
}

// The recipe run whole over 4 epochs, and stopped after 2 then resumed from
// its checkpoint to 4: the two runs, whose end states must be bit-exact.
struct WholeAndResumed {
  std::unique_ptr<RecipeRun> whole, resumed;
};
WholeAndResumed whole_and_resumed(const Recipe& recipe, const std::string& tag) {
  auto data = bands(80);
  const auto whole = testing::temp_dir(tag + "_whole"), split = testing::temp_dir(tag + "_split");
  WholeAndResumed r{recipe_run(whole.string(), 4, recipe, data), nullptr};
  r.whole->trainer->fit();
  recipe_run(split.string(), 2, recipe, data)->trainer->fit();  // stopped after 2 of 4 epochs
  r.resumed = recipe_run(split.string(), 4, recipe, data);
  const train::Checkpoint ckpt = train::load_checkpoint((split / "checkpoint.h5").string());
  EXPECT_EQ(ckpt.recipe, recipe.text);
  r.resumed->trainer->resume(ckpt);
  r.resumed->manager->fast_forward(r.resumed->trainer->step());
  r.resumed->trainer->fit();
  const auto want = r.whole->model->state_dict(), got = r.resumed->model->state_dict();
  EXPECT_EQ(want.size(), got.size());
  for (const auto& [name, t] : want)
    EXPECT_EQ(std::memcmp(t.bytes(), got.at(name).bytes(), t.nbytes()), 0) << name;
  return r;
}

TEST(Manager, ResumingMidRecipeContinuesTheSchedule) {
  const Recipe recipe = Recipe::parse(R"(modifiers:
  - !LearningRateFunctionModifier {lr_func: cosine, init_lr: 0.05, final_lr: 0.001, start_epoch: 0, end_epoch: 4}
  - !GMPruningModifier {params: __ALL_PRUNABLE__, final_sparsity: 0.8, start_epoch: 0, end_epoch: 3,
                        update_frequency: 0.5, mask_type: "[4,1]"}
)",
                                      "r.yaml");
  const auto runs = whole_and_resumed(recipe, "recipes");
  EXPECT_NEAR(pruning::total_sparsity(*runs.resumed->model), 0.8, 0.01);
}

// No step follows the last one: a ramp that ends with the run still makes its
// final update before the last evaluation and checkpoint, as recipe check plans.
TEST(Manager, ARampThatEndsWithTheRunReachesItsFinalSparsity) {
  const Recipe recipe = Recipe::parse(R"(modifiers:
  - !GMPruningModifier {params: __ALL_PRUNABLE__, init_sparsity: 0.05, final_sparsity: 0.5, start_epoch: 0,
                        end_epoch: 2, update_frequency: 0.3}
)",
                                      "end.yaml");
  const auto dir = testing::temp_dir("ramp_end");
  auto run = recipe_run(dir.string(), 2, recipe, bands(80));
  run->trainer->fit();
  EXPECT_NEAR(pruning::total_sparsity(*run->model), 0.5, 0.005);
  EXPECT_EQ(train::load_checkpoint((dir / "checkpoint.h5").string()).masks.size(), 4u);  // saved after the update
}

// Overrides by class name win over name prefixes; the longest prefix wins
// among those; ignore skips a whole subtree by name, or a class.
TEST(Modifiers, QuantizationSchemesOverridesAndIgnoreMatchAsSparseMLs) {
  auto model = layers::models::make_model("cnn", {.image_size = 8});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1}});
  Manager m(Recipe::parse(R"(modifiers:
  - !QuantizationModifier
    start_epoch: 0
    scheme: tensorrt
    scheme_overrides:
      Linear: {weights: {num_bits: 8, symmetric: true, strategy: channel}, input_activations: null}
      features: {weights: {num_bits: 4, symmetric: false}}
      features.0: default
    ignore: [classifier.4]
)", "r.yaml"), *model, sgd, 4);
  m.before_step(0, 0);
  std::map<std::string, std::shared_ptr<layers::FakeQuantize>> q;
  for (const auto& [name, fq] : layers::fake_quantizers(*model)) q[name] = fq;
  // features.0 (conv): the modifier's own scheme, tensorrt: symmetric inputs and weights.
  ASSERT_TRUE(q.count("features.0.input_quant") && q.count("features.0.weight_quant"));
  EXPECT_TRUE(q["features.0.input_quant"]->symmetric());
  EXPECT_TRUE(q["features.0.weight_quant"]->symmetric());
  EXPECT_EQ(q["features.0.weight_quant"]->quant_max(), 127);
  // features.4: the prefix override, whose inputs take the default arguments (8 bits, asymmetric).
  EXPECT_EQ(q["features.4.weight_quant"]->quant_max(), 7);
  EXPECT_FALSE(q["features.4.weight_quant"]->symmetric());
  EXPECT_FALSE(q["features.4.input_quant"]->symmetric());
  // classifier.4 ignored; classifier.1 takes the class override.
  for (const auto& [name, fq] : q) EXPECT_FALSE(name.starts_with("classifier.4")) << name;
  ASSERT_TRUE(q.count("classifier.1.weight_quant"));
  EXPECT_FALSE(q.count("classifier.1.input_quant"));
  EXPECT_EQ(q["classifier.1.weight_quant"]->axis(), 0);
  EXPECT_EQ(q["classifier.1.weight_quant"]->scale().numel(), 128);
  // A strict recipe names a key that matches nothing.
  EXPECT_THROW(Manager(Recipe::parse("modifiers:\n  - !QuantizationModifier {start_epoch: 0, ignore: [nothing]}\n",
                                     "r.yaml"), *model, sgd, 4),
               ValueError);
}

// Pruned, then quantisation-aware: the run resumed after epoch 2 (quantisers
// and observers restored from the checkpoint, observers frozen at 3) ends
// bit-exact with the whole run, its pruned weights still exactly zero.
TEST(Manager, QuantizationAwareTrainingResumesBitExactAndKeepsTheZeros) {
  const Recipe recipe = Recipe::parse(R"(modifiers:
  - !GMPruningModifier {params: __ALL_PRUNABLE__, final_sparsity: 0.7, start_epoch: 0, end_epoch: 1, update_frequency: 0.5}
  - !ConstantPruningModifier {params: __ALL_PRUNABLE__, start_epoch: 1}
  - !QuantizationModifier {start_epoch: 1, disable_quantization_observer_epoch: 3, freeze_bn_stats_epoch: 3,
                           ignore: [classifier]}
)",
                                      "r.yaml");
  const auto runs = whole_and_resumed(recipe, "qat");
  const auto& a = runs.whole;
  const auto& c = runs.resumed;
  const auto quantizers = layers::fake_quantizers(*a->model);
  ASSERT_FALSE(quantizers.empty());
  for (const auto& [name, fq] : quantizers) {
    EXPECT_FALSE(fq->observer_enabled()) << name;
    EXPECT_TRUE(fq->observed()) << name;
    EXPECT_EQ(name.find("classifier"), std::string::npos) << name << " is ignored";
  }
  EXPECT_NEAR(pruning::total_sparsity(*a->model), 0.7, 0.01);
  // conv_bn_relus fusing (the default): each convolution trains with its batch norm folded.
  const auto conv = std::dynamic_pointer_cast<layers::Conv2d>(a->model->named_children()[0].second->named_children()[0].second);
  ASSERT_TRUE(conv);
  EXPECT_TRUE(conv->folds_batch_norm());
  EXPECT_TRUE(std::dynamic_pointer_cast<layers::Conv2d>(c->model->named_children()[0].second->named_children()[0].second)
                  ->folds_batch_norm())
      << "linked again on resume";
  // Loaded from the checkpoint (eval, export, infer), the model computes what the trained one does.
  const train::Checkpoint ckpt = train::load_checkpoint(a->dir + "/checkpoint.h5");
  auto loaded = train::build_model(ckpt);
  a->model->eval();
  loaded->eval();
  autograd::NoGradGuard no_grad;
  const Tensor x = Tensor::rand({4, 1, 8, 8}, 9);
  const Tensor want = a->model->forward(autograd::Variable(x)).data(), got = loaded->forward(autograd::Variable(x)).data();
  for (int64_t i = 0; i < want.numel(); ++i)
    EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5 * (1 + std::abs(want.data<float>()[i]))) << i;
}

}  // namespace
}  // namespace neurite::recipes
