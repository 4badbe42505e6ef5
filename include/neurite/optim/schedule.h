// Learning-rate schedules. A schedule is a pure function of the (fractional)
// epoch that scales each group's base learning rate; LrScheduler applies it
// once per training step, so warm-up and cosine decay are smooth within an
// epoch while step and multistep schedules change at epoch boundaries.
//
//   optim::LrScheduler sched(sgd, optim::Schedule::cosine(30, /*warmup_epochs=*/2), steps_per_epoch);
//   for (...) { ...; sgd.step(); sched.step(); }
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "neurite/optim/optimizer.h"

namespace neurite::optim {

class Schedule {
 public:
  using Factor = std::function<double(double epoch)>;
  static Schedule constant();
  // gamma ^ floor(epoch / step_size), as StepLR.
  static Schedule step(double step_size, double gamma = 0.1);
  // gamma ^ (number of milestones <= epoch), as MultiStepLR.
  static Schedule multistep(std::vector<double> milestones, double gamma = 0.1);
  // gamma ^ floor(epoch), as ExponentialLR stepped per epoch.
  static Schedule exponential(double gamma);
  // Linear warm-up from 0 over warmup_epochs, then cosine from 1 down to
  // min_factor at total_epochs (CosineAnnealingLR's curve after warm-up).
  static Schedule cosine(double total_epochs, double warmup_epochs = 0, double min_factor = 0);
  // From start_factor to end_factor linearly over total_epochs, then flat, as LinearLR.
  static Schedule linear(double start_factor, double end_factor, double total_epochs);
  // Cosine from 1 down to min_factor over each period, then back to 1: the first period lasts
  // first_period epochs, each later one period_mult times the one before (CosineAnnealingWarmRestarts).
  static Schedule cosine_restarts(double first_period, double period_mult = 1, double min_factor = 0);
  // From start_factor towards end_factor linearly over each period, then back to start_factor: a
  // sawtooth (SparseML's cyclic_linear).
  static Schedule sawtooth(double start_factor, double end_factor, double period);

  // This curve with factor 0 mapped to at_zero and 1 to at_one: at_zero + (at_one - at_zero) * factor.
  // Recipes give absolute rates (init_lr, final_lr, eta_min) where LrScheduler scales a base rate.
  Schedule rescaled(double at_zero, double at_one) const;

  double factor(double epoch) const { return factor_(epoch); }

 private:
  explicit Schedule(Factor f) : factor_(std::move(f)) {}
  Factor factor_;
};

class LrScheduler {
 public:
  // Captures each group's current lr as its base; sets the lr of step 0.
  LrScheduler(Optimizer& optimizer, Schedule schedule, int64_t steps_per_epoch);
  void step();  // after each optimizer step
  double epoch() const { return static_cast<double>(steps_) / static_cast<double>(steps_per_epoch_); }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps);  // when resuming
  std::vector<double> base_lrs() const { return base_lrs_; }

 private:
  void apply();
  Optimizer& optimizer_;
  Schedule schedule_;
  int64_t steps_per_epoch_, steps_ = 0;
  std::vector<double> base_lrs_;
};

}  // namespace neurite::optim
