// Module bookkeeping: names, counts, modes, state dicts and masks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/layers.h"
#include "neurite/layers/models.h"
#include "support/expect_error.h"

namespace neurite::layers {
namespace {

std::vector<std::string> names(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name);
  return out;
}

TEST(Module, ParameterNamesAreDottedPathsAsInPyTorch) {
  auto resnet = models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
  const auto n = names(*resnet);
  EXPECT_EQ(n.front(), "conv1.weight");
  EXPECT_EQ(n.back(), "fc.bias");
  EXPECT_NE(std::find(n.begin(), n.end(), "layer1.0.conv1.weight"), n.end());
  EXPECT_NE(std::find(n.begin(), n.end(), "layer2.0.shortcut.0.weight"), n.end());
  EXPECT_NE(std::find(n.begin(), n.end(), "layer3.2.bn2.bias"), n.end());
  EXPECT_EQ(names(*models::make_model("mlp")),
            (std::vector<std::string>{"1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"}));
}

// Counts and state-dict sizes of PyTorch's twins (tests/golden/zoo.py).
TEST(Module, ZooParameterCountsEqualPyTorchs) {
  const std::vector<std::tuple<std::string, models::ModelOptions, int64_t, size_t>> cases = {
      {"mlp", {}, 1863690, 6},
      {"cnn", {}, 421738, 16},
      {"resnet20", {.in_channels = 3, .image_size = 32}, 272474, 128},
      {"resnet32", {.in_channels = 3, .image_size = 32}, 466906, 200},
      {"resnet56", {.in_channels = 3, .image_size = 32}, 855770, 344},
      {"mobilenet", {}, 136202, 68},
      {"vit-tiny", {}, 306826, 56},
      {"transformer", {}, 5291530, 52},
  };
  for (const auto& [name, options, count, entries] : cases) {
    auto m = models::make_model(name, options);
    EXPECT_EQ(m->parameter_count(), count) << name;
    EXPECT_EQ(m->state_dict().size(), entries) << name;
  }
}

TEST(Module, EveryZooModelRunsForwardAndBackward) {
  for (const auto& name : models::model_names()) {
    SCOPED_TRACE(name);
    const bool tokens = models::takes_tokens(name);
    auto m = models::make_model(name, {.num_classes = 5, .seq_len = 16});
    const Tensor x = tokens ? Tensor::randint({2, 16}, 1, 0, 8192) : Tensor::randn({2, 1, 28, 28}, 1);
    Variable y = m->forward(Variable(x));
    ASSERT_EQ(y.shape(), (Shape{2, 5}));
    autograd::sum(y).backward();
    for (const auto& [pname, p] : m->named_parameters()) EXPECT_TRUE(p->value().has_grad()) << pname;
  }
}

TEST(Module, TrainAndEvalReachEveryChild) {
  auto m = models::make_model("resnet20");
  m->eval();
  for (const auto& [name, child] : m->named_children()) EXPECT_FALSE(child->is_training()) << name;
  m->train();
  for (const auto& [name, child] : m->named_children()) EXPECT_TRUE(child->is_training()) << name;
}

// A module tree has one kernel policy: set on the root it reaches every
// child, and a child added later takes its parent's.
TEST(Module, KernelPolicyReachesEveryChildIncludingLaterOnes) {
  struct Growing : Module {
    void add(const std::string& name, std::shared_ptr<Module> m) { register_module(name, std::move(m)); }
  };
  auto root = std::make_shared<Growing>();
  auto early = std::make_shared<Linear>(2, 2);
  root->add("early", early);
  root->set_kernel_policy({.sparse = kernels::SparseKernels::never, .autotune = false});
  auto late = std::make_shared<Linear>(2, 2);
  root->add("late", late);
  for (const Module* m : {static_cast<const Module*>(early.get()), static_cast<const Module*>(late.get())}) {
    EXPECT_EQ(m->kernel_policy().sparse, kernels::SparseKernels::never);
    EXPECT_FALSE(m->kernel_policy().autotune);
  }
  EXPECT_TRUE(Linear(2, 2).kernel_policy().autotune);  // the default: timed
}

TEST(Module, StateDictRoundTripsExactly) {
  manual_seed(1);
  auto a = models::make_model("cnn");
  manual_seed(2);
  auto b = models::make_model("cnn");
  b->load_state_dict(a->state_dict());
  const StateDict loaded = b->state_dict();
  for (const auto& [name, t] : a->state_dict()) {
    const Tensor& u = loaded.at(name);
    ASSERT_EQ(std::memcmp(t.bytes(), u.bytes(), t.nbytes()), 0) << name;
  }
}

TEST(Module, StrictLoadListsMissingAndUnexpectedNames) {
  auto m = models::make_model("mlp");
  StateDict state = m->state_dict();
  state.erase("3.bias");
  state.emplace("head.weight", Tensor::zeros({1}));
  testing::expect_error<ValueError>([&] { m->load_state_dict(state); },
                                    {"load_state_dict: missing [3.bias], unexpected [head.weight]"});
  EXPECT_NO_THROW(m->load_state_dict(state, /*strict=*/false));
  state = m->state_dict();
  state["5.weight"] = Tensor::zeros({3, 1024});
  EXPECT_THROW(m->load_state_dict(state, false), ShapeError);
}

TEST(Module, MaskZeroesWeightsAndSurvivesLoading) {
  Linear fc(4, 3);
  Tensor mask = Tensor::ones({3, 4});
  mask.data<float>()[5] = 0.0f;
  fc.weight.set_mask(mask);
  EXPECT_EQ(fc.weight.value().data().data<float>()[5], 0.0f);
  StateDict dense = fc.state_dict();
  dense["weight"].fill_(1.0f);
  fc.load_state_dict(dense);
  EXPECT_EQ(fc.weight.value().data().data<float>()[5], 0.0f);
  EXPECT_EQ(fc.weight.value().data().data<float>()[4], 1.0f);
}

TEST(Module, BadNamesAndOptionsAreRefused) {
  testing::expect_error<ValueError>([] { models::make_model("resnet21"); },
                                    {"unknown model 'resnet21', expected one of: cnn,"});
  EXPECT_THROW(MultiheadAttention(10, 3), Error);
  EXPECT_THROW(Dropout(1.0f), ValueError);
  auto vit = models::make_model("vit-tiny");
  EXPECT_THROW(vit->forward(Variable(Tensor::randn({1, 1, 32, 32}, 1))), ShapeError);
}

}  // namespace
}  // namespace neurite::layers
