// The learning rates the manager sets from optim's schedules, step by step
// over whole windows, against the closed forms of SparseML's lr_func and
// PyTorch's schedulers (the formulas the manager computed itself before).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>

#include "neurite/layers/models.h"
#include "neurite/recipes/manager.h"

namespace neurite::recipes {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kTolerance = 1e-9;  // as the manager's, for epochs a rounding error short of a boundary

struct Case {
  std::string modifier;
  double start, end;                                 // the window in epochs
  std::function<double(double t)> learning_rate;  // at t epochs after the start
};

std::vector<Case> cases() {
  auto linear = [](double init, double final, double span) {
    return [=](double t) { return init + (final - init) * std::clamp(t / span, 0.0, 1.0); };
  };
  return {
      {"!LearningRateFunctionModifier {lr_func: linear, init_lr: 0.1, final_lr: 0.001, start_epoch: 1, end_epoch: 5}",
       1, 5, linear(0.1, 0.001, 4)},
      {"!LearningRateFunctionModifier {lr_func: linear, init_lr: 0, final_lr: 0.1, start_step: 3, end_step: 17}",
       3.0 / 7, 17.0 / 7, linear(0, 0.1, 14.0 / 7)},
      {"!LearningRateFunctionModifier {lr_func: cosine, init_lr: 0.05, final_lr: 0.001, start_epoch: 0.5, "
       "end_epoch: 4.5}",
       0.5, 4.5,
       [](double t) {
         return 0.001 + (0.05 - 0.001) * 0.5 * (1 + std::cos(kPi * std::clamp(t / 4, 0.0, 1.0)));
       }},
      {"!LearningRateFunctionModifier {lr_func: cyclic_linear, init_lr: 0.01, final_lr: 0.1, cycle_epochs: 0.75, "
       "start_epoch: 0, end_epoch: 3}",
       0, 3, [](double t) { return 0.01 + (0.1 - 0.01) * (std::fmod(t, 0.75) / 0.75); }},
      {"!LearningRateModifier {lr_class: StepLR, lr_kwargs: {step_size: 2, gamma: 0.5}, init_lr: 0.2, "
       "start_epoch: 1, end_epoch: 9}",
       1, 9, [](double t) { return 0.2 * std::pow(0.5, std::floor(t / 2 + kTolerance)); }},
      {"!LearningRateModifier {lr_class: MultiStepLR, lr_kwargs: {milestones: [3.5, 1], gamma: 0.3}, init_lr: 1.0, "
       "start_epoch: 0.25, end_epoch: 8}",
       0.25, 8,  // milestones are epochs of the run, as in SparseML: 1 and 3.5 are 0.75 and 3.25 into the window
       [](double t) { return std::pow(0.3, (0.75 <= t + kTolerance) + (3.25 <= t + kTolerance)); }},
      {"!LearningRateModifier {lr_class: ExponentialLR, lr_kwargs: {gamma: 0.9}, init_lr: 0.1, start_epoch: 0, "
       "end_epoch: 6}",
       0, 6, [](double t) { return 0.1 * std::pow(0.9, std::floor(t + kTolerance)); }},
      {"!LearningRateModifier {lr_class: CosineAnnealingWarmRestarts, lr_kwargs: {cycle_epochs: 1.5, T_mult: 2, "
       "lr_min: 0.001}, init_lr: 0.1, start_epoch: 0, end_epoch: 12}",
       0, 12,
       [](double t) {
         double period = 1.5;
         while (t >= period - kTolerance) {
           t -= period;
           period *= 2;
         }
         return 0.001 + (0.1 - 0.001) * 0.5 * (1 + std::cos(kPi * t / period));
       }},
  };
}

TEST(LearningRateModifiers, EveryStepOfTheWindowFollowsTheClosedForm) {
  constexpr int64_t kStepsPerEpoch = 7;  // epochs that are not exact in binary
  constexpr double kUntouched = 123.0;
  auto model = layers::models::make_model("mlp", {.image_size = 4});
  for (const Case& c : cases()) {
    optim::Sgd sgd({{.params = model->parameters(), .lr = kUntouched}});
    Manager manager(Recipe::parse("modifiers:\n  - " + c.modifier + "\n", "r.yaml"), *model, sgd, kStepsPerEpoch);
    double want = kUntouched;
    const auto steps = static_cast<int64_t>((c.end + 1) * kStepsPerEpoch);
    for (int64_t s = 0; s < steps; ++s) {
      const double epoch = static_cast<double>(s) / kStepsPerEpoch;
      manager.before_step(epoch, s);
      if (epoch + kTolerance >= c.start && epoch + kTolerance < c.end) want = c.learning_rate(epoch - c.start);
      const double got = sgd.param_groups()[0].lr;
      EXPECT_NEAR(got, want, 1e-7 * std::abs(want)) << c.modifier << " at epoch " << epoch;
    }
  }
}

}  // namespace
}  // namespace neurite::recipes
