// TrainableParamsModifier: freezes (trainable: false) or unfreezes the
// selected parameters over its window, and gives them back their own setting
// at its end.
#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

class SetTrainable final : public ClockedRun {
 public:
  SetTrainable(const Window& window, int64_t steps_per_epoch, NamedParameters params, bool trainable)
      : ClockedRun(window, steps_per_epoch), params_(std::move(params)), trainable_(trainable) {}

 private:
  void update(double, bool first) override {
    const bool at_end = clock().ended() && !first;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& v = params_[i].second->value();
      if (first) {
        was_trainable_.push_back(v.requires_grad());
        v.set_requires_grad(trainable_);
      }
      if (at_end) v.set_requires_grad(was_trainable_[i]);
      if (!v.requires_grad()) v.zero_grad();
    }
  }
  // The checkpoint does not say what they were before the start.
  void resume_started() override { was_trainable_.assign(params_.size(), true); }

  NamedParameters params_;
  bool trainable_;
  std::vector<bool> was_trainable_;
};

class TrainableParams final : public Modifier {
 public:
  explicit TrainableParams(const FieldReader& f)
      : params_(f.selectors("params")),
        trainable_(f.boolean_or("trainable", true)),
        params_strict_(f.boolean_or("params_strict", true)) {}
  std::unique_ptr<ModifierRun> start(layers::Module& model, optim::Optimizer&,
                                     int64_t steps_per_epoch) const override {
    return std::make_unique<SetTrainable>(window, steps_per_epoch,
                                          select_parameters(model, params_, *this, params_strict_), trainable_);
  }
  std::vector<std::string> selectors() const override { return params_; }

 private:
  std::vector<std::string> params_;
  bool trainable_, params_strict_;
};

}  // namespace

ModifierType trainable_params_modifier() {
  return {"TrainableParamsModifier", join({kWindowFields, {"params", "trainable", "params_strict"}}),
          [](const FieldReader& f) { return std::make_unique<TrainableParams>(f); }};
}

}  // namespace neurite::recipes::detail
