// Optimizers and schedules against PyTorch 1.13 (tests/golden/make_optim_golden.py),
// mask handling, state dicts and clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

#include "neurite/error.h"
#include "neurite/optim/optimizer.h"
#include "neurite/optim/schedule.h"
#include "support/golden.h"

namespace neurite::optim {
namespace {

using layers::Parameter;
using testing::expect_close;
using testing::golden;

// Runs `steps` updates of sum(p * c[t]) + 0.5 sum(p^2): the gradient is c[t] + p.
template <typename Make>
Tensor trajectory(const std::string& name, Make make) {
  const std::string test_case = "optim_" + name;
  const Tensor c = golden(test_case, "c");
  auto p = std::make_shared<Parameter>(golden(test_case, "p0"));
  auto optimizer = make(std::vector<ParamGroup>{{.params = {p}}});
  const int64_t steps = c.size(0), n = p->numel();
  Tensor out = Tensor::empty(c.shape());
  for (int64_t t = 0; t < steps; ++t) {
    Tensor g = p->value().data().clone();
    for (int64_t k = 0; k < n; ++k) g.data<float>()[k] += c.data<float>()[t * n + k];
    p->value().set_grad(g);
    optimizer->step();
    std::copy_n(p->value().data().data<float>(), n, out.data<float>() + t * n);
  }
  return out;
}

TEST(Optimizers, TrajectoriesMatchPyTorch) {
  auto with_lr = [](std::vector<ParamGroup> g, double lr, double wd) {
    g[0].lr = lr;
    g[0].weight_decay = wd;
    return g;
  };
  const std::map<std::string, std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)>> configs = {
      {"sgd", [&](auto g) { return std::make_unique<Sgd>(with_lr(g, 0.1, 0)); }},
      {"sgd_momentum",
       [&](auto g) { return std::make_unique<Sgd>(with_lr(g, 0.1, 0.01), SgdOptions{.momentum = 0.9, .dampening = 0.1}); }},
      {"sgd_nesterov",
       [&](auto g) { return std::make_unique<Sgd>(with_lr(g, 0.05, 1e-3), SgdOptions{.momentum = 0.9, .nesterov = true}); }},
      {"adam", [&](auto g) { return std::make_unique<Adam>(with_lr(g, 0.01, 0.1), AdamOptions{.beta1 = 0.8, .beta2 = 0.95}); }},
      {"adamw", [&](auto g) { return std::make_unique<AdamW>(with_lr(g, 0.01, 0.1)); }},
  };
  for (const auto& [name, make] : configs)
    expect_close(trajectory(name, make), golden("optim_" + name, "p"), name, 1e-5, 1e-6);
}

// 30 steps to a relative 1e-6 (the 6-step check above allows 1e-5, under
// which decay applied after the step instead of before can hide); eps = 1e-3
// in the second case, so where eps sits in the denominator shows.
TEST(AdamW, ThirtyStepsMatchPyTorchToOnePartInAMillion) {
  const Tensor plain = trajectory("adamw_long", [](std::vector<ParamGroup> g) {
    g[0].lr = 0.02;
    g[0].weight_decay = 0.05;
    return std::make_unique<AdamW>(g);
  });
  expect_close(plain, golden("optim_adamw_long", "p"), "adamw_long", 1e-6, 1e-7);
  const Tensor large_eps = trajectory("adamw_long_eps", [](std::vector<ParamGroup> g) {
    g[0].lr = 0.01;
    g[0].weight_decay = 0.3;
    return std::make_unique<AdamW>(g, AdamOptions{.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-3});
  });
  expect_close(large_eps, golden("optim_adamw_long_eps", "p"), "adamw_long_eps", 1e-6, 1e-7);
}

TEST(Schedules, MatchPyTorchsSchedulersEpochByEpoch) {
  const std::map<std::string, Schedule> schedules = {
      {"step", Schedule::step(3, 0.5)},
      {"multistep", Schedule::multistep({2, 5}, 0.1)},
      {"exponential", Schedule::exponential(0.9)},
      {"linear", Schedule::linear(0.25, 1.0, 4)},
      {"cosine", Schedule::cosine(10, 0, 0.01)},
  };
  for (const auto& [name, schedule] : schedules) {
    const Tensor want = golden("schedules", name);
    // Past T_max PyTorch's cosine rises again (a periodic curve); ours holds its minimum.
    const int64_t epochs = name == "cosine" ? 11 : want.numel();
    for (int64_t e = 0; e < epochs; ++e)
      EXPECT_NEAR(schedule.factor(static_cast<double>(e)), want.data<float>()[e], 1e-6) << name << " epoch " << e;
  }
}

TEST(Schedules, CosineWarmsUpLinearlyAndSchedulerSetsGroupRates) {
  const Schedule s = Schedule::cosine(10, 2);
  EXPECT_DOUBLE_EQ(s.factor(0), 0.0);
  EXPECT_DOUBLE_EQ(s.factor(1), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(2), 1.0);
  EXPECT_NEAR(s.factor(6), 0.5, 1e-12);
  auto p = std::make_shared<Parameter>(Tensor::zeros({2}));
  Sgd sgd({{.params = {p}, .lr = 0.4}, {.params = {}, .lr = 0.2}});
  LrScheduler sched(sgd, Schedule::cosine(10, 2), /*steps_per_epoch=*/4);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.0);
  for (int i = 0; i < 4; ++i) sched.step();
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.2);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[1].lr, 0.1);
  EXPECT_THROW(Schedule::cosine(2, 3), ValueError);
}

TEST(Schedules, CosineRestartsAndSawtoothRepeatTheirPeriods) {
  // CosineAnnealingWarmRestarts(T_0=2, T_mult=2, eta_min=0.1), base lr 1: restarts at epochs 2 and 6.
  const Schedule restarts = Schedule::cosine_restarts(2, 2, 0.1);
  const double quarter = 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi / 4));  // a quarter into the period of 4
  const double three_quarters = 0.1 + 0.9 * 0.5 * (1 - std::cos(std::numbers::pi / 4));
  const double want[] = {1.0, 0.55, 1.0, quarter, 0.55, three_quarters, 1.0};
  for (int e = 0; e < 7; ++e) EXPECT_NEAR(restarts.factor(e), want[e], 1e-12) << "epoch " << e;
  const Schedule saw = Schedule::sawtooth(0.2, 1.0, 2);
  const double saw_want[] = {0.2, 0.4, 0.6, 0.8, 0.2, 0.4, 0.6};
  for (int i = 0; i < 7; ++i) EXPECT_NEAR(saw.factor(i / 2.0), saw_want[i], 1e-12) << "epoch " << i / 2.0;
  EXPECT_THROW(Schedule::cosine_restarts(0), ValueError);
  EXPECT_THROW(Schedule::cosine_restarts(1, 0.5), ValueError);
  EXPECT_THROW(Schedule::sawtooth(1, 0, 0), ValueError);
}

TEST(Schedules, RescaledMapsFactorsZeroAndOneToTheGivenRates) {
  const Schedule cosine = Schedule::cosine(4).rescaled(0.001, 0.05);  // from 0.05 down to 0.001
  EXPECT_DOUBLE_EQ(cosine.factor(0), 0.05);
  EXPECT_DOUBLE_EQ(cosine.factor(2), 0.0255);
  EXPECT_DOUBLE_EQ(cosine.factor(4), 0.001);
  EXPECT_DOUBLE_EQ(Schedule::step(2, 0.5).rescaled(0, 0.2).factor(4.5), 0.05);
  const Schedule warm_up = Schedule::linear(0, 1, 2).rescaled(0.0, 0.1);  // from a rate of 0, which no base can scale
  EXPECT_DOUBLE_EQ(warm_up.factor(0), 0.0);
  EXPECT_DOUBLE_EQ(warm_up.factor(1), 0.05);
}

// PyTorch's MultiStepLR: lr = base * gamma ^ (number of milestones <= epoch),
// a milestone counted as often as it is listed, in any order. PyTorch 1.13
// gives [1, 1, 1, .01, .01, .01, .001, .001] for milestones [6, 3, 3], gamma 0.1.
TEST(MultiStepLR, DropsExactlyAtEachMilestone) {
  const Schedule s = Schedule::multistep({5, 2, 9}, 0.5);  // unsorted on purpose
  for (const auto& [epoch, want] : std::vector<std::pair<double, double>>{
           {0, 1},          {1.75, 1},        {2 - 1e-6, 1},     {2, 0.5},   {2 + 1e-6, 0.5}, {2.25, 0.5},
           {4.999, 0.5},    {5, 0.25},        {5.5, 0.25},       {9 - 1e-6, 0.25}, {9, 0.125}, {30, 0.125}})
    EXPECT_DOUBLE_EQ(s.factor(epoch), want) << "epoch " << epoch;
  const Schedule repeated = Schedule::multistep({6, 3, 3}, 0.1);
  for (const auto& [epoch, want] : std::vector<std::pair<double, double>>{
           {2, 1}, {3 - 1e-6, 1}, {3, 0.01}, {3 + 1e-6, 0.01}, {5.75, 0.01}, {6, 0.001}, {7, 0.001}})
    EXPECT_NEAR(repeated.factor(epoch), want, 1e-15) << "repeated milestones, epoch " << epoch;
  // A fractional milestone, reached by a step count that is not a whole epoch.
  const Schedule half = Schedule::multistep({1.5}, 0.1);
  EXPECT_DOUBLE_EQ(half.factor(1.25), 1.0);
  EXPECT_DOUBLE_EQ(half.factor(1.5), 0.1);
}

// Per optimizer step: with 4 steps an epoch, steps 7, 8, 9 are epochs 1.75, 2, 2.25.
TEST(MultiStepLR, SchedulerSetsTheDroppedRateOnTheMilestonesFirstStep) {
  auto p = std::make_shared<Parameter>(Tensor::zeros({2}));
  Sgd sgd({{.params = {p}, .lr = 0.8}});
  LrScheduler sched(sgd, Schedule::multistep({2, 3}, 0.5), /*steps_per_epoch=*/4);
  std::vector<double> lrs{sgd.param_groups()[0].lr};
  for (int i = 0; i < 13; ++i) {
    sched.step();
    lrs.push_back(sgd.param_groups()[0].lr);
  }
  for (int step = 0; step <= 13; ++step) {
    const double want = step < 8 ? 0.8 : step < 12 ? 0.4 : 0.2;
    EXPECT_DOUBLE_EQ(lrs[step], want) << "step " << step;
  }
  sched.set_steps(7);  // resuming just before a milestone, then on it
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.8);
  sched.set_steps(12);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.2);
  // Three steps an epoch: epoch 2 is 6/3, and epoch 5/3 is still before it.
  LrScheduler thirds(sgd, Schedule::multistep({2}, 0.1), /*steps_per_epoch=*/3);  // its base: the 0.2 of now
  thirds.set_steps(5);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.2);
  thirds.set_steps(6);
  EXPECT_NEAR(sgd.param_groups()[0].lr, 0.02, 1e-15);
}

TEST(Optimizers, MaskedWeightsGradientsAndStateStayZero) {
  auto p = std::make_shared<Parameter>(Tensor::randn({4, 5}, 1));
  Tensor mask = Tensor::ones({4, 5});
  for (int k : {0, 3, 7, 19}) mask.data<float>()[k] = 0.0f;
  for (int which = 0; which < 2; ++which) {
    std::unique_ptr<Optimizer> opt;
    if (which == 0) opt = std::make_unique<Sgd>(std::vector<ParamGroup>{{.params = {p}, .lr = 0.1, .weight_decay = 0.1}},
                                                SgdOptions{.momentum = 0.9});
    else opt = std::make_unique<AdamW>(std::vector<ParamGroup>{{.params = {p}, .lr = 0.1, .weight_decay = 0.1}});
    p->set_mask(Tensor());
    for (int step = 0; step < 3; ++step) {
      if (step == 1) p->set_mask(mask);  // pruned mid-run: state built up before must be cleared
      p->value().set_grad(Tensor::randn({4, 5}, 10 + step));
      opt->step();
    }
    for (int k : {0, 3, 7, 19}) {
      EXPECT_EQ(p->value().data().data<float>()[k], 0.0f);
      EXPECT_EQ(p->value().grad().data<float>()[k], 0.0f);
      for (const auto& [name, t] : opt->state_dict()) {
        if (t.numel() == 20) { EXPECT_EQ(t.data<float>()[k], 0.0f) << name; }
      }
    }
  }
}

TEST(Optimizers, StateDictRoundTripContinuesTheSameTrajectory) {
  auto run = [](bool reload) {
    auto p = std::make_shared<Parameter>(Tensor::randn({6}, 3));
    auto opt = std::make_unique<Adam>(std::vector<ParamGroup>{{.params = {p}, .lr = 0.05}});
    for (int step = 0; step < 6; ++step) {
      if (reload && step == 3) {
        const OptimizerState state = opt->state_dict();
        opt = std::make_unique<Adam>(std::vector<ParamGroup>{{.params = {p}, .lr = 0.05}});
        opt->load_state_dict(state);
      }
      p->value().set_grad(Tensor::randn({6}, 100 + step));
      opt->step();
    }
    return p->value().data().clone();
  };
  expect_close(run(true), run(false), "resumed Adam", 0, 0);
  auto p = std::make_shared<Parameter>(Tensor::zeros({2}));
  Sgd sgd({{.params = {p}}}, {.momentum = 0.5});
  EXPECT_THROW(sgd.load_state_dict({{"0.0.momentum_buffer", Tensor::zeros({3})}}), ValueError);
  EXPECT_THROW(sgd.load_state_dict({{"1.0.momentum_buffer", Tensor::zeros({2})}}), ValueError);
}

TEST(Optimizers, ClipGradNormScalesToTheLimitAndReportsTheNorm) {
  auto a = std::make_shared<Parameter>(Tensor::zeros({2})), b = std::make_shared<Parameter>(Tensor::zeros({1}));
  a->value().set_grad(Tensor::from_data({2}, std::vector<float>{3, 0}));
  b->value().set_grad(Tensor::from_data({1}, std::vector<float>{4}));
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(a->value().grad().data<float>()[0], 0.6, 1e-5);
  EXPECT_NEAR(b->value().grad().data<float>()[0], 0.8, 1e-5);
  EXPECT_NEAR(clip_grad_norm({a, b}, 10.0), 1.0, 1e-5);  // under the limit: unchanged
  EXPECT_NEAR(b->value().grad().data<float>()[0], 0.8, 1e-5);
}

TEST(Optimizers, BadHyperparametersAreRefused) {
  const std::vector<ParamGroup> groups{ParamGroup{}};
  EXPECT_THROW(Sgd(std::vector<ParamGroup>{ParamGroup{.lr = -1}}), ValueError);
  EXPECT_THROW(Sgd(groups, {.nesterov = true}), ValueError);
  EXPECT_THROW(Adam(groups, {.beta1 = 1.0}), ValueError);
}

}  // namespace
}  // namespace neurite::optim
