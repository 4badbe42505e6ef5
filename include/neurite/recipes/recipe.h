// Recipes in SparseML's YAML format (../shared/RECIPES.md): variables,
// eval() expressions, stages and modifiers, read into typed modifiers whose
// errors name the file, the line and the field.
//
//   recipes::Recipe r = recipes::Recipe::load("gmp90.yaml", {{"num_epochs", "6"}});
//   for (const auto& m : r.modifiers) fmt::print("{} [{}, {})\n", m.type, m.start_epoch, m.end_epoch);
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "neurite/pruning/pruning.h"

namespace neurite::recipes {

// What a modifier does, for the manager and for `neurite recipe check`.
struct Modifier {
  std::string type;  // the YAML tag without '!', e.g. "GMPruningModifier"
  std::string where;  // "file:line" of its tag
  double start_epoch = -1, end_epoch = -1;  // epochs, stage offsets applied; -1: from the start / never ending
  double update_frequency = -1;             // epochs between updates; -1: every step
  // Step-based windows (start_step, end_step, update_frequency_steps), if given: they win over epochs.
  std::optional<int64_t> start_step, end_step, update_frequency_steps;

  // Pruning (GMPruningModifier, MagnitudePruningModifier, GlobalMagnitudePruningModifier,
  // StructuredPruningModifier, ConstantPruningModifier).
  std::vector<std::string> params;  // selectors
  double init_sparsity = 0;
  bool init_from_param = false;  // init_sparsity: __FROM_PARAM__
  double final_sparsity = 0;
  std::map<std::string, double> final_sparsity_by_selector;  // final_sparsity: {0.9: [names], ...}
  bool leave_enabled = true, global_sparsity = false;
  pruning::Interpolation inter_func = pruning::Interpolation::cubic;
  pruning::MaskType mask_type;

  // Learning rate and weight decay.
  double learning_rate = 0, init_lr = 0, final_lr = 0, cycle_epochs = 1, weight_decay = 0;
  std::string lr_func, lr_class;
  std::map<std::string, std::vector<double>> lr_kwargs;  // numbers, or lists for milestones

  // TrainableParamsModifier.
  bool trainable = true, params_strict = true;

  bool is_pruning() const;
  bool is_constant_pruning() const { return type == "ConstantPruningModifier"; }
  bool sets_learning_rate() const;
};

struct Recipe {
  std::string file, text;
  std::vector<Modifier> modifiers;

  // Throws IoError for a missing file, FormatError for malformed YAML and
  // ValueError for an unknown modifier or field, an out-of-range value, an
  // unresolved variable or a bad eval(); each names file:line and the field.
  // `overrides` replace top-level (and stage) variables: the CLI's --recipe-var.
  static Recipe load(const std::string& path, const std::map<std::string, std::string>& overrides = {});
  static Recipe parse(const std::string& text, const std::string& file,
                      const std::map<std::string, std::string>& overrides = {});

  // The run's length: EpochRangeModifier's end, else the latest end of any
  // modifier, else nullopt.
  std::optional<double> epochs() const;
  bool sets_learning_rate() const;
};

}  // namespace neurite::recipes
