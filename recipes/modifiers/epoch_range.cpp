// EpochRangeModifier: does nothing while training; its end_epoch counts
// towards the run's length (Recipe::epochs) as every modifier's does.
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

class EpochRange final : public Modifier {
 public:
  std::unique_ptr<ModifierRun> start(layers::Module&, optim::Optimizer&, int64_t) const override { return nullptr; }
};

}  // namespace

ModifierType epoch_range_modifier() {
  return {"EpochRangeModifier", {"start_epoch", "end_epoch"},
          [](const FieldReader&) { return std::make_unique<EpochRange>(); }};
}

}  // namespace neurite::recipes::detail
