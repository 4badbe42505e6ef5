// SetLearningRateModifier and SetWeightDecayModifier: set one hyperparameter
// of the parameter groups (param_groups, or every group) once, at start_epoch
// (or start_step). As in SparseML, end_epoch is accepted and ignored, and a
// learning rate must lie in (0, 1].
#include "neurite/optim/optimizer.h"
#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

using Hyperparameter = double optim::ParamGroup::*;

class SetOnce final : public ClockedRun {
 public:
  SetOnce(const Window& window, int64_t steps_per_epoch, std::vector<optim::ParamGroup*> groups, Hyperparameter field,
          double value)
      : ClockedRun(window, steps_per_epoch), groups_(std::move(groups)), field_(field), value_(value) {}

 private:
  void update(double, bool first) override {
    if (first)
      for (auto* g : groups_) g->*field_ = value_;
  }
  std::vector<optim::ParamGroup*> groups_;
  Hyperparameter field_;
  double value_;
};

class SetHyperparameter final : public Modifier {
 public:
  SetHyperparameter(Hyperparameter field, double value, std::vector<int64_t> groups)
      : field_(field), value_(value), groups_(std::move(groups)) {}
  std::unique_ptr<ModifierRun> start(layers::Module&, optim::Optimizer& optimizer,
                                     int64_t steps_per_epoch) const override {
    return std::make_unique<SetOnce>(window, steps_per_epoch, chosen_groups(optimizer, groups_, *this), field_, value_);
  }
  bool sets_learning_rate() const override { return field_ == &optim::ParamGroup::lr; }

 private:
  Hyperparameter field_;
  double value_;
  std::vector<int64_t> groups_;
};

}  // namespace

ModifierType set_learning_rate_modifier() {
  return {"SetLearningRateModifier",
          {"learning_rate", "start_epoch", "start_step", "param_groups", "log_types"},
          [](const FieldReader& f) {
            return std::make_unique<SetHyperparameter>(&optim::ParamGroup::lr, f.learning_rate("learning_rate"),
                                                       f.param_groups());
          },
          {"end_epoch"}};
}

ModifierType set_weight_decay_modifier() {
  return {"SetWeightDecayModifier",
          {"weight_decay", "start_epoch", "start_step", "param_groups", "log_types"},
          [](const FieldReader& f) {
            return std::make_unique<SetHyperparameter>(&optim::ParamGroup::weight_decay,
                                                       f.non_negative("weight_decay"), f.param_groups());
          },
          {"end_epoch"}};
}

}  // namespace neurite::recipes::detail
