// SetLearningRateModifier and SetWeightDecayModifier: set one hyperparameter
// of every parameter group once, at start_epoch (or start_step).
#include "neurite/optim/optimizer.h"
#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

using Hyperparameter = double optim::ParamGroup::*;

class SetOnce final : public ClockedRun {
 public:
  SetOnce(const Window& window, int64_t steps_per_epoch, optim::Optimizer& optimizer, Hyperparameter field,
          double value)
      : ClockedRun(window, steps_per_epoch), optimizer_(optimizer), field_(field), value_(value) {}

 private:
  void update(double, bool first) override {
    if (first)
      for (auto& g : optimizer_.param_groups()) g.*field_ = value_;
  }
  optim::Optimizer& optimizer_;
  Hyperparameter field_;
  double value_;
};

class SetHyperparameter final : public Modifier {
 public:
  SetHyperparameter(Hyperparameter field, double value) : field_(field), value_(value) {}
  std::unique_ptr<ModifierRun> start(layers::Module&, optim::Optimizer& optimizer,
                                     int64_t steps_per_epoch) const override {
    return std::make_unique<SetOnce>(window, steps_per_epoch, optimizer, field_, value_);
  }
  bool sets_learning_rate() const override { return field_ == &optim::ParamGroup::lr; }

 private:
  Hyperparameter field_;
  double value_;
};

}  // namespace

ModifierType set_learning_rate_modifier() {
  return {"SetLearningRateModifier", {"learning_rate", "start_epoch", "start_step", "log_types"},
          [](const FieldReader& f) {
            return std::make_unique<SetHyperparameter>(&optim::ParamGroup::lr, f.non_negative("learning_rate"));
          }};
}

ModifierType set_weight_decay_modifier() {
  return {"SetWeightDecayModifier", {"weight_decay", "start_epoch", "start_step", "param_groups", "log_types"},
          [](const FieldReader& f) {
            return std::make_unique<SetHyperparameter>(&optim::ParamGroup::weight_decay,
                                                       f.non_negative("weight_decay"));
          }};
}

}  // namespace neurite::recipes::detail
