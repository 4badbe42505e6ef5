#include "recipes/modifiers/registry.h"

#include <algorithm>
#include <vector>

namespace neurite::recipes::detail {

// Each defined in its modifier's file in this folder.
ModifierType epoch_range_modifier();
ModifierType set_learning_rate_modifier();
ModifierType set_weight_decay_modifier();
ModifierType learning_rate_function_modifier();
ModifierType learning_rate_modifier();
ModifierType gm_pruning_modifier();
ModifierType magnitude_pruning_modifier();
ModifierType global_magnitude_pruning_modifier();
ModifierType structured_pruning_modifier();
ModifierType constant_pruning_modifier();
ModifierType trainable_params_modifier();
ModifierType quantization_modifier();

namespace {

const std::vector<ModifierType>& known_types() {
  static const std::vector<ModifierType> types = {
      epoch_range_modifier(),
      set_learning_rate_modifier(),
      set_weight_decay_modifier(),
      learning_rate_function_modifier(),
      learning_rate_modifier(),
      gm_pruning_modifier(),
      magnitude_pruning_modifier(),
      global_magnitude_pruning_modifier(),
      structured_pruning_modifier(),
      constant_pruning_modifier(),
      trainable_params_modifier(),
      quantization_modifier(),
  };
  return types;
}

// SparseML modifiers that recipes may name but this release cannot run.
const std::vector<std::string> kLaterTags = {"MovementPruningModifier", "ACDCPruningModifier", "OBSPruningModifier",
                                             "MFACPruningModifier",     "DistillationModifier"};

}  // namespace

const ModifierType& modifier_type(const std::string& tag, const std::string& where) {
  check<ValueError>(std::ranges::find(kLaterTags, tag) == kLaterTags.end(),
                    "{}: {} is not supported yet (OBS/MFAC, Movement, ACDC and Distillation "
                    "modifiers come in a later release)",
                    where, tag);
  const auto& types = known_types();
  const auto it = std::ranges::find(types, tag, &ModifierType::tag);
  check<ValueError>(it != types.end(), "{}: unknown modifier '{}'", where, tag);
  return *it;
}

}  // namespace neurite::recipes::detail
