// What the runs of modifiers share: the base of those that act when their
// UpdateClock fires, and resolving selectors on the model.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "neurite/layers/module.h"
#include "neurite/optim/optimizer.h"
#include "neurite/recipes/modifier.h"

namespace neurite::recipes::detail {

// A run that acts when its UpdateClock fires; the first firing starts the
// modifier.
class ClockedRun : public ModifierRun {
 public:
  ClockedRun(const Window& window, int64_t steps_per_epoch) : clock_(window, steps_per_epoch) {}
  void before_step(double epoch) final;
  void skip_step(double epoch) final;

 protected:
  // When the clock fires: `first` on its first firing; clock().ended() on its last.
  virtual void update(double epoch, bool first) = 0;
  // Resuming past the start: what the first update set up that the
  // checkpoint does not hold.
  virtual void resume_started() {}
  const UpdateClock& clock() const { return clock_; }

 private:
  UpdateClock clock_;
  bool started_ = false;
};

using NamedParameters = std::vector<std::pair<std::string, layers::ParameterPtr>>;

// The parameters of `model` that `selectors` match, in the model's order. A
// selector matching nothing is a ValueError naming the modifier, unless not
// `strict`, when it is skipped.
NamedParameters select_parameters(const layers::Module& model, const std::vector<std::string>& selectors,
                                  const Modifier& modifier, bool strict = true);

// The optimizer's groups a modifier sets: those `indices` name (SparseML's
// param_groups), or all when it names none; ValueError naming the modifier
// for an index the optimizer does not have.
std::vector<optim::ParamGroup*> chosen_groups(optim::Optimizer& optimizer, const std::vector<int64_t>& indices,
                                              const Modifier& modifier);

}  // namespace neurite::recipes::detail
