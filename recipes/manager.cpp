#include "neurite/recipes/manager.h"

#include <algorithm>
#include <cmath>

#include "neurite/error.h"

namespace neurite::recipes {

namespace {
constexpr double kEps = 1e-9;  // fractional epochs are sums of 1/steps_per_epoch
}

UpdateClock::UpdateClock(const Window& w, int64_t steps_per_epoch) {
  const double spe = static_cast<double>(steps_per_epoch);
  start_ = w.start_step ? static_cast<double>(*w.start_step) / spe : std::max(w.start_epoch, 0.0);
  end_ = w.end_step ? (*w.end_step < 0 ? -1.0 : static_cast<double>(*w.end_step) / spe) : w.end_epoch;
  frequency_ = w.update_frequency_steps ? static_cast<double>(*w.update_frequency_steps) / spe : w.update_frequency;
}

bool UpdateClock::due(double epoch) {
  if (ended_ || epoch + kEps < start_) return false;
  if (end_ >= 0 && epoch + kEps >= end_) {
    ended_ = true;
    last_ = epoch;
    return true;
  }
  if (last_ && frequency_ > 0 && epoch + kEps < *last_ + frequency_) return false;
  last_ = epoch;
  return true;
}

bool UpdateClock::contains(double epoch) const {
  return epoch + kEps >= start_ && (end_ < 0 || epoch + kEps < end_);
}

std::vector<PlannedModifier> plan(const Recipe& recipe, int64_t steps_per_epoch, std::optional<double> epochs) {
  check<ValueError>(steps_per_epoch >= 1, "recipe plan: steps per epoch is {}, expected >= 1", steps_per_epoch);
  const double length = epochs.value_or(recipe.epochs().value_or(0));
  // Updates at or past the end fire on the first step there: plan one step beyond the run for them.
  const double planned = std::ceil(length * static_cast<double>(steps_per_epoch) - kEps) + 1;
  check<ValueError>(planned <= 1e9, "recipe plan: {} epochs of {} steps are more steps than a plan holds (10^9)", length,
                    steps_per_epoch);
  const auto steps = static_cast<int64_t>(planned);
  std::vector<PlannedModifier> out;
  for (const auto& m : recipe.modifiers) {
    UpdateClock clock(m->window, steps_per_epoch);
    PlannedModifier p{m->type, clock.start(), clock.end(), {}};
    if (const SparsityRamp* ramp = m->sparsity_ramp()) {
      for (int64_t s = 0; s < steps; ++s) {
        const double e = static_cast<double>(s) / static_cast<double>(steps_per_epoch);
        if (clock.due(e))
          p.updates.push_back({e, pruning::scheduled_sparsity(e, clock.start(), clock.end(), ramp->init_sparsity,
                                                              ramp->final_sparsity, ramp->inter_func)});
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

Manager::Manager(const Recipe& recipe, layers::Module& model, optim::Optimizer& optimizer, int64_t steps_per_epoch)
    : recipe_(recipe), steps_per_epoch_(steps_per_epoch) {
  for (const auto& m : recipe_.modifiers)
    if (auto run = m->start(model, optimizer, steps_per_epoch)) runs_.push_back(std::move(run));
}

void Manager::before_step(double epoch, int64_t) {
  for (auto& run : runs_) run->before_step(epoch);
}

void Manager::fast_forward(int64_t steps) {
  for (int64_t s = 0; s < steps; ++s) {
    const double epoch = static_cast<double>(s) / static_cast<double>(steps_per_epoch_);
    for (auto& run : runs_) run->skip_step(epoch);
  }
}

}  // namespace neurite::recipes
