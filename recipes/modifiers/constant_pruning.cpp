// ConstantPruningModifier: keeps the zeros the selected weights have at its
// start (sparse transfer learning) by masking them until its end.
#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

using autograd::Tensor;

class KeepZeros final : public ClockedRun {
 public:
  KeepZeros(const Window& window, int64_t steps_per_epoch, NamedParameters params)
      : ClockedRun(window, steps_per_epoch), params_(std::move(params)) {}

 private:
  void update(double, bool first) override {
    for (auto& [name, p] : params_)
      if (first) {
        Tensor mask = Tensor::empty(p->shape());
        const float* w = p->value().data().data<float>();
        for (int64_t i = 0; i < p->numel(); ++i) mask.data<float>()[i] = w[i] != 0.0f ? 1.0f : 0.0f;
        p->set_mask(mask);
      } else if (clock().ended()) {
        p->set_mask(Tensor());
      }
  }

  NamedParameters params_;
};

class ConstantPruning final : public Modifier {
 public:
  explicit ConstantPruning(const FieldReader& f) : params_(f.selectors("params")) {}
  std::unique_ptr<ModifierRun> start(layers::Module& model, optim::Optimizer&,
                                     int64_t steps_per_epoch) const override {
    return std::make_unique<KeepZeros>(window, steps_per_epoch, select_parameters(model, params_, *this));
  }
  std::vector<std::string> selectors() const override { return params_; }

 private:
  std::vector<std::string> params_;
};

}  // namespace

ModifierType constant_pruning_modifier() {
  return {"ConstantPruningModifier", join({kWindowFields, {"params", "update_frequency", "log_types"}}),
          [](const FieldReader& f) { return std::make_unique<ConstantPruning>(f); }};
}

}  // namespace neurite::recipes::detail
