// EpochRangeModifier: sets the run's length to its end_epoch (over --epochs);
// it does nothing while training.
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

class EpochRange final : public Modifier {
 public:
  std::unique_ptr<ModifierRun> start(layers::Module&, optim::Optimizer&, int64_t) const override { return nullptr; }
  std::optional<double> run_length() const override { return window.end_epoch; }
};

}  // namespace

ModifierType epoch_range_modifier() {
  return {"EpochRangeModifier", {"start_epoch", "end_epoch"},
          [](const FieldReader&) { return std::make_unique<EpochRange>(); }};
}

}  // namespace neurite::recipes::detail
