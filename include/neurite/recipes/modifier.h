// A recipe's modifiers as typed objects. Each modifier type of SparseML's
// recipes (EpochRangeModifier, GMPruningModifier, ...) is a subclass of
// Modifier with its own fields, checks and effect; Recipe::parse reads them.
// Started on a model and optimizer, a modifier gives a ModifierRun that the
// Manager calls before each optimizer step.
//
//   for (const auto& m : recipe.modifiers)
//     if (const recipes::SparsityRamp* ramp = m->sparsity_ramp())
//       fmt::print("{} at {}: sparsity {} -> {}\n", m->type, m->where, ramp->init_sparsity, ramp->final_sparsity);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "neurite/pruning/pruning.h"

namespace neurite::optim {
class Optimizer;
}

namespace neurite::recipes {

// When a modifier acts, in epochs (stage offsets applied).
struct Window {
  double start_epoch = -1, end_epoch = -1;  // -1: from the start / never ending
  double update_frequency = -1;             // epochs between updates; -1: every step
  // Step-based windows (start_step, end_step, update_frequency_steps), if given: they win over epochs.
  std::optional<int64_t> start_step, end_step, update_frequency_steps;
};

// When an updating modifier fires: at its start, whenever epoch >= last
// update + update_frequency (every step for -1), and on the first step at or
// past its end.
class UpdateClock {
 public:
  UpdateClock(const Window& window, int64_t steps_per_epoch);
  bool due(double epoch);             // advances the clock when it fires
  bool contains(double epoch) const;  // inside [start, end)
  bool ended() const { return ended_; }
  double start() const { return start_; }
  double end() const { return end_; }  // -1: never

 private:
  double start_, end_, frequency_;
  std::optional<double> last_;
  bool ended_ = false;
};

// What a gradual pruning modifier asks for, for plans and printing.
struct SparsityRamp {
  double init_sparsity = 0;   // 0 for __FROM_PARAM__: each tensor's own sparsity, known on the model
  double final_sparsity = 0;  // the largest, when final_sparsity maps sparsities to selectors
  pruning::Interpolation inter_func = pruning::Interpolation::cubic;
  pruning::MaskType mask_type;
};

// A modifier started on a model and optimizer, with its clock and state.
class ModifierRun {
 public:
  virtual ~ModifierRun() = default;
  virtual void before_step(double epoch) = 0;  // before each optimizer step
  // Resuming: the step at `epoch` was taken before the checkpoint. Advances
  // the clock without acting (the checkpoint holds masks and settings).
  virtual void skip_step(double epoch) = 0;
};

// One modifier as read from a recipe: a subclass per type holds its own
// fields. The reader sets the three members below; the subclass does the rest.
class Modifier {
 public:
  std::string type;   // the YAML tag without '!', e.g. "GMPruningModifier"
  std::string where;  // "file:line" of its tag
  Window window;

  virtual ~Modifier() = default;
  Modifier(const Modifier&) = delete;
  Modifier& operator=(const Modifier&) = delete;

  // Resolves its selectors on `model` (ValueError naming where, the type and
  // the parameter names) and returns its run; nullptr if it does nothing
  // while training (EpochRangeModifier).
  virtual std::unique_ptr<ModifierRun> start(layers::Module& model, optim::Optimizer& optimizer,
                                             int64_t steps_per_epoch) const = 0;
  virtual bool sets_learning_rate() const { return false; }
  virtual std::vector<std::string> selectors() const { return {}; }  // the parameters it acts on
  virtual const SparsityRamp* sparsity_ramp() const { return nullptr; }  // gradual pruning only

 protected:
  Modifier() = default;
};

}  // namespace neurite::recipes
