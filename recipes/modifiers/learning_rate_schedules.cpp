// LearningRateFunctionModifier and LearningRateModifier: on each step inside
// their window, set every group's learning rate from an optim::Schedule of the
// epochs since their start. The schedules' factors are mapped onto absolute
// rates (Schedule::rescaled) because recipes give init_lr, final_lr and
// eta_min, which may be 0, rather than factors of a base rate.
#include <algorithm>
#include <map>
#include <ranges>

#include "neurite/optim/optimizer.h"
#include "neurite/optim/schedule.h"
#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

using optim::Schedule;

class ScheduledRun final : public ModifierRun {
 public:
  ScheduledRun(const UpdateClock& clock, Schedule learning_rate, std::vector<optim::ParamGroup*> groups)
      : clock_(clock), learning_rate_(std::move(learning_rate)), groups_(std::move(groups)) {}

  void before_step(double epoch) override {
    if (!clock_.contains(epoch)) return;
    // An epoch a rounding error short of the start counts as the start.
    const double lr = learning_rate_.factor(std::max(0.0, epoch - clock_.start()));
    for (auto* g : groups_) g->lr = lr;
  }
  void skip_step(double) override {}  // the next step sets the rate from the epoch alone

 private:
  const UpdateClock clock_;
  const Schedule learning_rate_;
  std::vector<optim::ParamGroup*> groups_;
};

class ScheduledLearningRate : public Modifier {
 public:
  std::unique_ptr<ModifierRun> start(layers::Module&, optim::Optimizer& optimizer,
                                     int64_t steps_per_epoch) const override {
    const UpdateClock clock(window, steps_per_epoch);
    return std::make_unique<ScheduledRun>(clock, learning_rate(clock), chosen_groups(optimizer, groups_, *this));
  }
  bool sets_learning_rate() const override { return true; }

 protected:
  explicit ScheduledLearningRate(const FieldReader& f) : groups_(f.param_groups()) {}
  // The rate over the epochs since the start of `clock`.
  virtual Schedule learning_rate(const UpdateClock& clock) const = 0;

 private:
  std::vector<int64_t> groups_;  // param_groups; empty: every group
};

// lr_func: linear, cosine or cyclic_linear from init_lr to final_lr.
class LearningRateFunction final : public ScheduledLearningRate {
 public:
  explicit LearningRateFunction(const FieldReader& f)
      : ScheduledLearningRate(f),
        function_(read_function(f)),
        init_lr_(f.learning_rate("init_lr", true)),
        final_lr_(f.learning_rate("final_lr", true)),
        cycle_epochs_(f.number_or("cycle_epochs", 1.0)) {
    f.require_end();
    check<ValueError>(cycle_epochs_ > 0, "{}: cycle_epochs is {}, expected > 0", f.at("cycle_epochs"), cycle_epochs_);
  }

 private:
  enum class Function { linear, cosine, cyclic_linear };

  static Function read_function(const FieldReader& f) {
    static const std::map<std::string, Function> functions = {
        {"linear", Function::linear}, {"cosine", Function::cosine}, {"cyclic_linear", Function::cyclic_linear}};
    const std::string name = f.text_or("lr_func", "linear");
    const auto it = functions.find(name);
    check<ValueError>(it != functions.end(), "{}: lr_func is '{}', expected linear, cosine or cyclic_linear",
                      f.at("lr_func"), name);
    return it->second;
  }

  Schedule learning_rate(const UpdateClock& clock) const override {
    // Without an end (end_step: -1) the curve spans one epoch.
    const double span = clock.end() > clock.start() ? clock.end() - clock.start() : 1.0;
    switch (function_) {
      case Function::cosine: return Schedule::cosine(span).rescaled(final_lr_, init_lr_);
      case Function::cyclic_linear: return Schedule::sawtooth(init_lr_, final_lr_, cycle_epochs_);
      case Function::linear: break;
    }
    return Schedule::linear(init_lr_, final_lr_, span);
  }

  Function function_;
  double init_lr_, final_lr_, cycle_epochs_;
};

// lr_kwargs as written: numbers, or lists for milestones.
class Kwargs {
 public:
  explicit Kwargs(const FieldReader& f) : where_(f.at("lr_kwargs")) {
    if (f.has("lr_kwargs"))
      for (const auto& kv : f.node("lr_kwargs")) {
        const std::string key = kv.first.as<std::string>();
        std::vector<double>& values = values_[key];
        if (kv.second.IsSequence())
          for (const auto& item : kv.second) values.push_back(f.number(item, key));
        else
          values.push_back(f.number(kv.second, key));
      }
  }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  const std::vector<double>& list(const std::string& key) const { return values_.at(key); }
  double number(const std::string& key, double fallback) const {
    const auto it = values_.find(key);
    return it == values_.end() || it->second.empty() ? fallback : it->second.front();
  }
  // PyTorch's schedulers refuse these too: a period of 0 divides by 0, and
  // one that shrinks never ends.
  double period(const std::string& key, double fallback) const {
    const double v = number(key, fallback);
    check<ValueError>(v > 0, "{}: lr_kwargs.{} is {}, expected > 0", where_, key, v);
    return v;
  }
  template <typename... Args>
  void check_that(bool ok, fmt::format_string<Args...> message, Args&&... args) const {
    check<ValueError>(ok, "{}: lr_kwargs: {}", where_, fmt::format(message, std::forward<Args>(args)...));
  }
  double period_multiple(const std::string& key) const {
    const double v = number(key, 1);
    check<ValueError>(v >= 1, "{}: lr_kwargs.{} is {}, expected >= 1", where_, key, v);
    return v;
  }

 private:
  std::string where_;
  std::map<std::string, std::vector<double>> values_;
};

// lr_class: a PyTorch scheduler, with its lr_kwargs in epochs, as SparseML
// reads them: each class needs the lr_kwargs it lists (gamma has no default),
// ExponentialLR is StepLR with step_size 1, MultiStepLR's milestones are
// epochs of the run inside the window, and CosineAnnealingWarmRestarts takes
// SparseML's names lr_min and cycle_epochs (for eta_min and T_0).
struct LrClass {
  std::vector<std::string> required;  // the lr_kwargs entries it cannot do without
  std::function<Schedule(const Kwargs&, double init_lr, const Window&)> schedule;
};

const std::map<std::string, LrClass>& lr_classes() {
  static const std::map<std::string, LrClass> classes = {
      {"StepLR",
       {{"gamma", "step_size"},
        [](const Kwargs& kw, double lr, const Window&) {
          return Schedule::step(kw.period("step_size", 1), kw.number("gamma", 0)).rescaled(0, lr);
        }}},
      {"MultiStepLR",
       {{"gamma", "milestones"},
        [](const Kwargs& kw, double lr, const Window& w) {
          const double start = std::max(0.0, w.start_epoch);
          std::vector<double> since_start;
          for (double m : kw.list("milestones")) {
            kw.check_that(m > start && (w.end_epoch < 0 || m < w.end_epoch),
                          "milestone {} is not inside the window ({}, {})", m, start, w.end_epoch);
            since_start.push_back(m - start);
          }
          return Schedule::multistep(since_start, kw.number("gamma", 0)).rescaled(0, lr);
        }}},
      {"ExponentialLR",
       {{"gamma"},
        [](const Kwargs& kw, double lr, const Window&) { return Schedule::step(1, kw.number("gamma", 0)).rescaled(0, lr); }}},
      {"CosineAnnealingWarmRestarts",
       {{"lr_min", "cycle_epochs"},
        [](const Kwargs& kw, double lr, const Window&) {
          return Schedule::cosine_restarts(kw.period("cycle_epochs", 1), kw.period_multiple("T_mult"))
              .rescaled(kw.number("lr_min", 0), lr);
        }}},
  };
  return classes;
}

class LearningRateClass final : public ScheduledLearningRate {
 public:
  explicit LearningRateClass(const FieldReader& f) : ScheduledLearningRate(f), learning_rate_(read(f)) {}

 private:
  static Schedule read(const FieldReader& f) {
    const std::string name = f.text_or("lr_class", "StepLR");
    const auto it = lr_classes().find(name);
    check<ValueError>(it != lr_classes().end(), "{}: lr_class is '{}', expected one of: {}", f.at("lr_class"), name,
                      fmt::join(std::views::keys(lr_classes()), ", "));
    const double init_lr = f.learning_rate("init_lr");
    const Kwargs kwargs(f);
    const LrClass& lr_class = it->second;
    for (const std::string& key : lr_class.required)
      check<ValueError>(kwargs.has(key), "{}: {} needs lr_kwargs.{}", f.where(), name, key);
    return lr_class.schedule(kwargs, init_lr, f.window());
  }
  Schedule learning_rate(const UpdateClock&) const override { return learning_rate_; }

  Schedule learning_rate_;
};

}  // namespace

ModifierType learning_rate_function_modifier() {
  return {"LearningRateFunctionModifier",
          join({kWindowFields,
                {"lr_func", "init_lr", "final_lr", "cycle_epochs", "update_frequency", "param_groups", "log_types"}}),
          [](const FieldReader& f) { return std::make_unique<LearningRateFunction>(f); }};
}

ModifierType learning_rate_modifier() {
  return {"LearningRateModifier",
          join({kWindowFields,
                {"lr_class", "lr_kwargs", "init_lr", "update_frequency", "param_groups", "log_types"}}),
          [](const FieldReader& f) { return std::make_unique<LearningRateClass>(f); }};
}

}  // namespace neurite::recipes::detail
