// The recipe manager: fires a recipe's modifiers on the training loop's step
// events (pruning masks, learning rate, weight decay, freezing), and plans a
// recipe without running it (`neurite recipe check`).
//
//   recipes::Manager manager(recipe, *model, optimizer, loader.batches_per_epoch());
//   // in the training loop:
//   manager.before_step(epoch, step);  // before each optimizer step
#pragma once

#include <memory>
#include <optional>

#include "neurite/optim/optimizer.h"
#include "neurite/recipes/recipe.h"

namespace neurite::recipes {

struct PlannedUpdate {
  double epoch, sparsity;
};
struct PlannedModifier {
  std::string type;
  double start_epoch, end_epoch;
  std::vector<PlannedUpdate> updates;  // gradual pruning modifiers only
};
// The updates each modifier makes over a run of `epochs` (default: the
// recipe's own length) with `steps_per_epoch` steps.
std::vector<PlannedModifier> plan(const Recipe& recipe, int64_t steps_per_epoch, std::optional<double> epochs = {});

class Manager {
 public:
  // Checks every selector against the model now (ValueError listing the names).
  Manager(const Recipe& recipe, layers::Module& model, optim::Optimizer& optimizer, int64_t steps_per_epoch);
  // Before optimizer step `step` (counted from 0 over the run) at fractional `epoch`.
  void before_step(double epoch, int64_t step);
  // Resuming at `steps`: advances every clock past the steps already taken,
  // without acting (the checkpoint holds their masks and settings).
  void fast_forward(int64_t steps);
  const Recipe& recipe() const { return recipe_; }

 private:
  Recipe recipe_;
  int64_t steps_per_epoch_;
  std::vector<std::unique_ptr<ModifierRun>> runs_;  // one per modifier that acts while training
};

}  // namespace neurite::recipes
