#include "neurite/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "neurite/error.h"

namespace neurite::optim {

namespace {
// Epochs are step / steps_per_epoch: a boundary may be missed by a rounding error.
constexpr double kBoundaryTolerance = 1e-9;
}  // namespace

Schedule Schedule::constant() {
  return Schedule([](double) { return 1.0; });
}

Schedule Schedule::step(double step_size, double gamma) {
  check<ValueError>(step_size > 0, "step schedule: step_size is {}, expected > 0", step_size);
  return Schedule([=](double e) { return std::pow(gamma, std::floor(e / step_size + kBoundaryTolerance)); });
}

Schedule Schedule::multistep(std::vector<double> milestones, double gamma) {
  std::sort(milestones.begin(), milestones.end());
  return Schedule([=](double e) {
    const auto passed =
        std::upper_bound(milestones.begin(), milestones.end(), e + kBoundaryTolerance) - milestones.begin();
    return std::pow(gamma, static_cast<double>(passed));
  });
}

Schedule Schedule::exponential(double gamma) {
  return Schedule([=](double e) { return std::pow(gamma, std::floor(e + kBoundaryTolerance)); });
}

Schedule Schedule::cosine(double total_epochs, double warmup_epochs, double min_factor) {
  check<ValueError>(total_epochs > 0 && warmup_epochs >= 0 && warmup_epochs < total_epochs,
                    "cosine schedule: warm-up of {} epochs must be shorter than the {} epochs in all", warmup_epochs,
                    total_epochs);
  return Schedule([=](double e) {
    if (e < warmup_epochs) return e / warmup_epochs;
    const double t = std::min(1.0, (e - warmup_epochs) / (total_epochs - warmup_epochs));
    return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(std::numbers::pi * t));
  });
}

Schedule Schedule::linear(double start_factor, double end_factor, double total_epochs) {
  check<ValueError>(total_epochs > 0, "linear schedule: total_epochs is {}, expected > 0", total_epochs);
  return Schedule([=](double e) {
    const double t = std::min(1.0, e / total_epochs);
    return start_factor + (end_factor - start_factor) * t;
  });
}

Schedule Schedule::cosine_restarts(double first_period, double period_mult, double min_factor) {
  check<ValueError>(first_period > 0, "cosine_restarts schedule: first_period is {}, expected > 0", first_period);
  check<ValueError>(period_mult >= 1, "cosine_restarts schedule: period_mult is {}, expected >= 1", period_mult);
  return Schedule([=](double e) {
    double period = first_period, into = e;
    while (into >= period - kBoundaryTolerance) {
      into -= period;
      period *= period_mult;
    }
    return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(std::numbers::pi * into / period));
  });
}

Schedule Schedule::sawtooth(double start_factor, double end_factor, double period) {
  check<ValueError>(period > 0, "sawtooth schedule: period is {}, expected > 0", period);
  return Schedule([=](double e) {
    const double into = std::fmod(e, period) / period;
    return start_factor + (end_factor - start_factor) * into;
  });
}

Schedule Schedule::rescaled(double at_zero, double at_one) const {
  return Schedule([shape = factor_, at_zero, at_one](double e) { return at_zero + (at_one - at_zero) * shape(e); });
}

LrScheduler::LrScheduler(Optimizer& optimizer, Schedule schedule, int64_t steps_per_epoch)
    : optimizer_(optimizer), schedule_(std::move(schedule)), steps_per_epoch_(steps_per_epoch) {
  check<ValueError>(steps_per_epoch > 0, "LrScheduler: steps_per_epoch is {}, expected > 0", steps_per_epoch);
  for (const auto& g : optimizer.param_groups()) base_lrs_.push_back(g.lr);
  apply();
}

void LrScheduler::step() {
  ++steps_;
  apply();
}

void LrScheduler::set_steps(int64_t steps) {
  steps_ = steps;
  apply();
}

void LrScheduler::apply() {
  const double f = schedule_.factor(epoch());
  auto& groups = optimizer_.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].lr = base_lrs_[g] * f;
}

}  // namespace neurite::optim
