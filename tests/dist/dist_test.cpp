// Data-parallel training, run by ctest under `mpirun -np 2`: two ranks train
// as one process does on the same global batch, hold bitwise the same weights
// after every step, prune to the same masks, send only the kept gradient
// values of pruned weights, and stop together when masks differ.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "neurite/dist/dist.h"
#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/layers.h"
#include "neurite/layers/models.h"
#include "neurite/optim/by_name.h"
#include "neurite/recipes/manager.h"
#include "neurite/train/recipe_callback.h"
#include "neurite/train/trainer.h"

namespace neurite::dist {
namespace {

using autograd::Tensor;
using autograd::Variable;

std::shared_ptr<Communicator> two_ranks() {
  auto world = Communicator::world();
  EXPECT_EQ(world->size(), 2) << "run under mpirun -np 2";
  return world;
}

// 240 random 1x8x8 images of 4 classes (class k: a brighter row band), the same on every rank.
std::shared_ptr<data::TensorDataset> bands() {
  Tensor x = Tensor::rand({240, 1, 8, 8}, 11, 0, 0.3f), y = Tensor::randint({240}, 12, 0, 4);
  for (int64_t i = 0; i < 240; ++i)
    for (int64_t c = 0; c < 16; ++c) x.data<float>()[i * 64 + 16 * y.data<int64_t>()[i] + c] += 0.7f;
  return std::make_shared<data::TensorDataset>(x, y, 4, "bands");
}

// Parameters (and masks) that differ in any bit from rank 0's, summed over the ranks.
int64_t differing_from_rank_0(const layers::Module& m, const Communicator& world) {
  double differing = 0;
  for (const auto& [name, p] : m.named_parameters()) {
    for (const Tensor* t : std::vector<const Tensor*>{&p->value().data(), &p->mask()}) {
      if (!t->defined()) continue;
      Tensor theirs = t->clone();
      world.broadcast(theirs.bytes(), theirs.nbytes(), 0);
      differing += std::memcmp(theirs.bytes(), t->bytes(), t->nbytes()) != 0;
    }
  }
  double none = 0;
  std::tie(differing, none) = world.sum(differing, none);
  return static_cast<int64_t>(differing);
}

struct TrainedRun {
  std::shared_ptr<layers::UnaryModule> model;
  train::Summary summary;
};

// The mlp trained for `epochs` on bands with a global batch of 24 (10 steps
// an epoch), alone or on `world`'s ranks, under `recipe` if given.
TrainedRun train_mlp(const std::shared_ptr<Communicator>& world, int64_t epochs, const std::string& recipe = "") {
  layers::manual_seed(3);
  TrainedRun r{layers::models::make_model("mlp", {.in_channels = 1, .image_size = 8, .num_classes = 4}), {}};
  auto data = bands();
  auto sgd = optim::make_optimizer("sgd", {{.params = r.model->parameters(), .lr = 0.05, .weight_decay = 1e-4}}, 0.9);
  const bool shared = world != nullptr;
  data::DataLoader loader(data, {.batch_size = 24, .seed = 5, .prefetch = 0, .shard = shared ? world->rank() : 0,
                                 .shards = shared ? world->size() : 1});
  train::TrainerOptions options{.epochs = epochs, .log = [](const std::string&) {}};
  options.kernels.autotune = false;
  options.world = world;
  train::Trainer trainer(r.model, *sgd, nullptr, loader, data, options);
  // Data-parallel, after every step: the ranks' weights and masks, bit for bit.
  struct SameBits : train::Callback {
    const layers::Module* model = nullptr;
    const Communicator* world = nullptr;
    int64_t differing = 0, steps = 0;
    void after_step(double, int64_t, double) override {
      differing += differing_from_rank_0(*model, *world);
      ++steps;
    }
  } same_bits;
  same_bits.model = r.model.get();
  same_bits.world = world.get();
  if (shared) trainer.add_callback(&same_bits);
  std::unique_ptr<recipes::Manager> manager;
  std::unique_ptr<train::RecipeCallback> callback;
  if (!recipe.empty()) {
    manager = std::make_unique<recipes::Manager>(recipes::Recipe::parse(recipe, "test.yaml"), *r.model, *sgd,
                                                 loader.batches_per_epoch());
    callback = std::make_unique<train::RecipeCallback>(*manager);
    trainer.add_callback(callback.get());
  }
  r.summary = trainer.fit();
  if (shared) {
    EXPECT_EQ(same_bits.differing, 0) << "weights or masks differed between the ranks after some step";
    EXPECT_EQ(same_bits.steps, 10 * epochs);
  }
  return r;
}

// A conv net with batch norm trained for 2 epochs, alone or on `world`'s
// ranks with its batch norms synchronised or not. Batches of 25: the ranks
// hold 12 and 13 examples, and the last batch of each epoch 7 and 8.
std::shared_ptr<layers::UnaryModule> train_conv_bn(const std::shared_ptr<Communicator>& world, bool sync,
                                                   int64_t batch_size = 25) {
  layers::manual_seed(6);
  auto model = std::make_shared<layers::Sequential>(std::vector<std::shared_ptr<layers::UnaryModule>>{
      std::make_shared<layers::Conv2d>(1, 4, 3, layers::Conv2dLayerOptions{.padding = 1, .bias = false}),
      std::make_shared<layers::BatchNorm2d>(4), std::make_shared<layers::ReLU>(), std::make_shared<layers::Flatten>(),
      std::make_shared<layers::Linear>(4 * 8 * 8, 4)});
  if (sync) {
    EXPECT_EQ(synchronize_batch_norms(*model, world), 1);
  }
  auto data = bands();
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1}});
  const bool shared = world != nullptr;
  data::DataLoader loader(data, {.batch_size = batch_size, .seed = 5, .prefetch = 0,
                                 .shard = shared ? world->rank() : 0, .shards = shared ? world->size() : 1});
  train::TrainerOptions options{.epochs = 2, .log = [](const std::string&) {}};
  options.kernels.autotune = false;
  options.world = world;
  train::Trainer(model, sgd, nullptr, loader, data, options).fit();
  return model;
}

double worst_difference(const layers::Module& a, const layers::Module& b) {
  double worst = 0;
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor& x = pa[i].second->value().data();
    const Tensor& y = pb[i].second->value().data();
    for (int64_t k = 0; k < x.numel(); ++k)
      worst = std::max(worst, double(std::abs(x.data<float>()[k] - y.data<float>()[k])));
  }
  return worst;
}

TEST(DataParallel, TwoRanksTrainAsOneProcessOnTheSameGlobalBatch) {
  auto world = two_ranks();
  const TrainedRun alone = train_mlp(nullptr, 5);  // 50 steps, in this process alone
  const TrainedRun shared = train_mlp(world, 5);   // the same 50 steps, each rank on half of every batch
  EXPECT_LT(worst_difference(*alone.model, *shared.model), 1e-5);
  EXPECT_NEAR(shared.summary.epochs.back().train_loss, alone.summary.epochs.back().train_loss, 1e-5);
  EXPECT_NEAR(shared.summary.epochs.back().val_loss, alone.summary.epochs.back().val_loss, 1e-5);
  EXPECT_EQ(shared.summary.epochs.back().val_top1, alone.summary.epochs.back().val_top1);
  EXPECT_EQ(differing_from_rank_0(*shared.model, *world), 0);
}

TEST(DataParallel, ARecipesPruningStepsGiveTheSameMasksOnEveryRankAsInOneProcess) {
  auto world = two_ranks();
  const std::string recipe = R"(modifiers:
  - !EpochRangeModifier {start_epoch: 0, end_epoch: 4}
  - !GMPruningModifier {params: __ALL_PRUNABLE__, init_sparsity: 0.3, final_sparsity: 0.8, start_epoch: 0,
                        end_epoch: 3, update_frequency: 0.5}
)";
  const TrainedRun alone = train_mlp(nullptr, 4, recipe);
  const TrainedRun shared = train_mlp(world, 4, recipe);
  EXPECT_EQ(differing_from_rank_0(*shared.model, *world), 0);
  const auto pa = alone.model->named_parameters(), pb = shared.model->named_parameters();
  int64_t masks = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!pa[i].second->has_mask()) continue;
    ++masks;
    ASSERT_TRUE(pb[i].second->has_mask()) << pa[i].first;
    const Tensor& a = pa[i].second->mask();
    const Tensor& b = pb[i].second->mask();
    int64_t differ = 0;
    for (int64_t k = 0; k < a.numel(); ++k) differ += a.data<float>()[k] != b.data<float>()[k];
    EXPECT_EQ(differ, 0) << pa[i].first;
    EXPECT_NEAR(pa[i].second->density(), 0.2, 0.01) << pa[i].first;
  }
  EXPECT_EQ(masks, 3);
  EXPECT_LT(worst_difference(*alone.model, *shared.model), 1e-4);
}

// Synchronised batch norms see the whole global batch, so two ranks train
// as one process does; each rank's own statistics give another model.
TEST(DataParallel, SynchronisedBatchNormsTrainAsOneProcess) {
  auto world = two_ranks();
  const auto alone = train_conv_bn(nullptr, false);
  const auto synchronised = train_conv_bn(world, true);
  EXPECT_LT(worst_difference(*alone, *synchronised), 1e-5);
  const auto a = alone->state_dict(), b = synchronised->state_dict();
  for (const char* buffer : {"1.running_mean", "1.running_var"})
    for (int64_t c = 0; c < 4; ++c)
      EXPECT_NEAR(a.at(buffer).data<float>()[c], b.at(buffer).data<float>()[c], 1e-5) << buffer;
  EXPECT_EQ(differing_from_rank_0(*synchronised, *world), 0);
  const auto per_rank = train_conv_bn(world, false);
  EXPECT_GT(worst_difference(*alone, *per_rank), 1e-4);  // what synchronising changes
  // 240 examples in batches of 239: the last one would leave a rank without an example.
  try {
    train_conv_bn(world, true, 239);
    FAIL() << "a last batch of 1 example on 2 ranks with synchronised batch norms was accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("the last batch of 1 examples leaves some of the 2 ranks none"),
              std::string::npos) << e.what();
  }
}

// Gradients of two layers on rank-dependent data: the reducer's result is
// the weighted sum of both ranks' gradients, and a pruned weight sends its
// kept values alone, whether a rank trains it dense or in its sparse form.
TEST(DataParallel, TheReducerSumsWeightedGradientsAndSendsOnlyKeptValues) {
  auto world = two_ranks();
  layers::manual_seed(9);
  auto model = std::make_shared<layers::Sequential>(std::vector<std::shared_ptr<layers::UnaryModule>>{
      std::make_shared<layers::Linear>(64, 32), std::make_shared<layers::ReLU>(), std::make_shared<layers::Linear>(32, 4)});
  auto params = model->named_parameters();
  auto unused = std::make_shared<layers::Linear>(2, 2);  // no rank computes a gradient for it
  for (auto& named : unused->named_parameters()) params.emplace_back("unused." + named.first, named.second);
  Tensor mask = Tensor::zeros({32, 64});
  for (int64_t k = 0; k < mask.numel(); k += 10) mask.data<float>()[k] = 1;  // 10 % kept
  params[0].second->set_mask(mask);
  const double weights[2] = {0.25, 0.75};  // rank 0 holds a quarter of the batch
  auto gradients_on = [&](int rank) {       // what rank `rank` computes locally
    model->zero_grad();
    const Tensor x = Tensor::randn({8, 64}, 100 + static_cast<uint64_t>(rank));
    autograd::cross_entropy(model->forward(Variable(x)), Tensor::randint({8}, 200 + static_cast<uint64_t>(rank), 0, 4))
        .backward();
    std::vector<Tensor> g;
    for (size_t i = 0; i + 2 < params.size(); ++i) g.push_back(params[i].second->value().grad().clone());
    return g;
  };
  const std::vector<Tensor> g0 = gradients_on(0), g1 = gradients_on(1);
  // Rank 1 trains the pruned weight in its sparse form, rank 0 dense and masked: the same values travel.
  model->set_kernel_policy({.sparse = world->rank() == 1 ? kernels::SparseKernels::always : kernels::SparseKernels::never,
                            .autotune = false});
  GradientReducer reducer(params, world, {.bucket_bytes = 1024});  // several buckets
  model->zero_grad();
  const Tensor x = Tensor::randn({8, 64}, 100 + static_cast<uint64_t>(world->rank()));
  Variable loss = autograd::cross_entropy(model->forward(Variable(x)),
                                          Tensor::randint({8}, 200 + static_cast<uint64_t>(world->rank()), 0, 4));
  reducer.begin_step(weights[world->rank()]);
  loss.backward(Tensor::ones(loss.shape()), reducer.leaf_ready());
  reducer.finish_step();
  EXPECT_EQ(params[0].second->is_sparse(), world->rank() == 1);
  for (size_t i = params.size() - 2; i < params.size(); ++i)
    EXPECT_FALSE(params[i].second->trainable().has_grad()) << params[i].first << " got a gradient nobody computed";
  for (size_t i = 0; i + 2 < params.size(); ++i) {
    layers::Parameter& p = *params[i].second;
    Tensor want = Tensor::empty(p.shape());
    for (int64_t k = 0; k < want.numel(); ++k) {
      const bool pruned = i == 0 && mask.data<float>()[k] == 0;
      want.data<float>()[k] =
          pruned ? 0.0f : static_cast<float>(weights[0] * g0[i].data<float>()[k] + weights[1] * g1[i].data<float>()[k]);
    }
    if (p.is_sparse()) want = p.sparse_form()->gather(want);  // the kept values, in the form's order
    const Tensor& got = p.trainable().grad();
    ASSERT_EQ(got.numel(), want.numel()) << params[i].first;
    for (int64_t k = 0; k < got.numel(); ++k)
      ASSERT_NEAR(got.data<float>()[k], want.data<float>()[k], 1e-6) << params[i].first << " at " << k;
  }
  // 205 kept weights of 2048, then 32 + 128 + 4 dense values, and the unused layer's 4 + 2.
  EXPECT_EQ(reducer.last_step().values, 205 + 32 + 128 + 4 + 6);
  EXPECT_GT(reducer.last_step().bytes_sent, 0);
}

TEST(DataParallel, MasksThatDifferBetweenRanksStopEveryRankNamingTheParameter) {
  auto world = two_ranks();
  layers::manual_seed(4);
  auto fc = std::make_shared<layers::Linear>(8, 4);
  auto params = fc->named_parameters();
  Tensor mask = Tensor::ones({4, 8});
  mask.data<float>()[world->rank()] = 0;  // a different position on each rank
  params[0].second->set_mask(mask);
  GradientReducer reducer(params, world);
  try {
    reducer.begin_step(0.5);
    FAIL() << "begin_step accepted masks that differ";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("the mask of weight differs between the ranks"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace neurite::dist
