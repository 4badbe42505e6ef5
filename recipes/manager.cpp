#include "neurite/recipes/manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "neurite/error.h"

namespace neurite::recipes {

using autograd::Tensor;

namespace {
constexpr double kEps = 1e-9;  // fractional epochs are sums of 1/steps_per_epoch
}

UpdateClock::UpdateClock(const Modifier& m, int64_t steps_per_epoch) {
  const double spe = static_cast<double>(steps_per_epoch);
  start_ = m.start_step ? static_cast<double>(*m.start_step) / spe : std::max(m.start_epoch, 0.0);
  end_ = m.end_step ? (*m.end_step < 0 ? -1.0 : static_cast<double>(*m.end_step) / spe) : m.end_epoch;
  frequency_ = m.update_frequency_steps ? static_cast<double>(*m.update_frequency_steps) / spe : m.update_frequency;
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

std::vector<PlannedModifier> plan(const Recipe& recipe, int64_t steps_per_epoch, std::optional<double> epochs) {
  check<ValueError>(steps_per_epoch >= 1, "recipe plan: steps per epoch is {}, expected >= 1", steps_per_epoch);
  const double length = epochs.value_or(recipe.epochs().value_or(0));
  // Updates at or past the end fire on the first step there: plan one step beyond the run for them.
  const auto steps = static_cast<int64_t>(std::ceil(length * static_cast<double>(steps_per_epoch) - kEps)) + 1;
  std::vector<PlannedModifier> out;
  for (const Modifier& m : recipe.modifiers) {
    UpdateClock clock(m, steps_per_epoch);
    PlannedModifier p{m.type, clock.start(), clock.end(), {}};
    if (m.is_pruning()) {
      for (int64_t s = 0; s < steps; ++s) {
        const double e = static_cast<double>(s) / static_cast<double>(steps_per_epoch);
        if (clock.due(e))
          p.updates.push_back({e, pruning::scheduled_sparsity(e, clock.start(), clock.end(), m.init_sparsity,
                                                              m.final_sparsity, m.inter_func)});
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

// A modifier at run time.
struct Manager::Active {
  const Modifier& m;
  UpdateClock clock;
  std::vector<std::pair<std::string, layers::ParameterPtr>> params;
  std::vector<double> init, final;  // per parameter (pruning)
  std::vector<bool> was_trainable;
  bool started = false;

  Active(const Modifier& modifier, int64_t steps_per_epoch) : m(modifier), clock(modifier, steps_per_epoch) {}
};

namespace {

std::vector<std::pair<std::string, layers::ParameterPtr>> resolve(const Modifier& m, layers::Module& model,
                                                                  bool strict) {
  std::vector<std::string> names;
  try {
    if (strict) names = pruning::select(model, m.params);
    else
      for (const auto& selector : m.params) try {
          for (auto& n : pruning::select(model, {selector})) names.push_back(n);
        } catch (const ValueError&) {
        }
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("{}: {}: {}", m.where, m.type, e.what()));
  }
  std::vector<std::pair<std::string, layers::ParameterPtr>> out;
  for (const auto& [name, p] : model.named_parameters())
    if (std::find(names.begin(), names.end(), name) != names.end()) out.emplace_back(name, p);
  return out;
}

double learning_rate_at(const Modifier& m, double epoch, const UpdateClock& clock) {
  const double t = epoch - clock.start();
  if (m.type == "LearningRateFunctionModifier") {
    const double span = clock.end() > clock.start() ? clock.end() - clock.start() : 1.0;
    double p = std::clamp(t / span, 0.0, 1.0);
    if (m.lr_func == "cyclic_linear") p = std::fmod(t, m.cycle_epochs) / m.cycle_epochs;
    if (m.lr_func == "cosine") return m.final_lr + (m.init_lr - m.final_lr) * 0.5 * (1 + std::cos(std::numbers::pi * p));
    return m.init_lr + (m.final_lr - m.init_lr) * p;
  }
  auto kw = [&](const char* key, double fallback) {
    auto it = m.lr_kwargs.find(key);
    return it == m.lr_kwargs.end() || it->second.empty() ? fallback : it->second.front();
  };
  const double gamma = kw("gamma", 0.1);
  if (m.lr_class == "StepLR") return m.init_lr * std::pow(gamma, std::floor(t / kw("step_size", 1) + kEps));
  if (m.lr_class == "ExponentialLR") return m.init_lr * std::pow(gamma, std::floor(t + kEps));
  if (m.lr_class == "MultiStepLR") {
    const auto& milestones = m.lr_kwargs.at("milestones");
    const auto passed = std::count_if(milestones.begin(), milestones.end(), [&](double e) { return e <= t + kEps; });
    return m.init_lr * std::pow(gamma, static_cast<double>(passed));
  }
  // CosineAnnealingWarmRestarts: cycles of T_0, T_0*T_mult, ... epochs.
  double period = kw("T_0", 1), into = t;
  const double mult = kw("T_mult", 1), eta_min = kw("eta_min", 0);
  while (into >= period - kEps) {
    into -= period;
    period *= mult;
  }
  return eta_min + (m.init_lr - eta_min) * 0.5 * (1 + std::cos(std::numbers::pi * into / period));
}

}  // namespace

Manager::Manager(const Recipe& recipe, layers::Module& model, optim::Optimizer& optimizer, int64_t steps_per_epoch)
    : recipe_(recipe), steps_per_epoch_(steps_per_epoch) {
  for (const Modifier& m : recipe_.modifiers) {
    auto a = std::make_unique<Active>(m, steps_per_epoch);
    if (m.is_pruning() || m.is_constant_pruning() || m.type == "TrainableParamsModifier") {
      a->params = resolve(m, model, m.type != "TrainableParamsModifier" || m.params_strict);
      for (const auto& [name, p] : a->params) {
        double final = m.final_sparsity;
        for (const auto& [selector, s] : m.final_sparsity_by_selector)
          if (!pruning::select(model, {selector}).empty() &&
              std::ranges::count(pruning::select(model, {selector}), name) > 0)
            final = s;
        a->final.push_back(final);
      }
    }
    active_.push_back(std::move(a));
  }
  optimizer_ = &optimizer;
}

Manager::~Manager() = default;

void Manager::before_step(double epoch, int64_t) {
  for (auto& a : active_) {
    const Modifier& m = a->m;
    if (m.type == "EpochRangeModifier") continue;
    const bool was_ended = a->clock.ended();
    if (m.sets_learning_rate() && m.type != "SetLearningRateModifier") {
      // Every step inside the window.
      if (epoch + kEps >= a->clock.start() && (a->clock.end() < 0 || epoch + kEps < a->clock.end()))
        for (auto& g : optimizer_->param_groups()) g.lr = learning_rate_at(m, epoch, a->clock);
      continue;
    }
    if (!a->clock.due(epoch)) continue;
    const bool first = !a->started;
    a->started = true;
    if (m.type == "SetLearningRateModifier") {
      if (first)
        for (auto& g : optimizer_->param_groups()) g.lr = m.learning_rate;
    } else if (m.type == "SetWeightDecayModifier") {
      if (first)
        for (auto& g : optimizer_->param_groups()) g.weight_decay = m.weight_decay;
    } else if (m.type == "TrainableParamsModifier") {
      const bool at_end = a->clock.ended() && !was_ended && a->clock.end() >= 0 && !first;
      for (size_t i = 0; i < a->params.size(); ++i) {
        auto& v = a->params[i].second->value();
        if (first) a->was_trainable.push_back(v.requires_grad());
        if (first) v.set_requires_grad(m.trainable);
        if (at_end) v.set_requires_grad(a->was_trainable[i]);
        if (!v.requires_grad()) v.zero_grad();
      }
    } else if (m.is_constant_pruning()) {
      for (auto& [name, p] : a->params) {
        if (first) {  // today's zeros, kept
          Tensor mask = Tensor::empty(p->shape());
          const float* w = p->value().data().data<float>();
          for (int64_t i = 0; i < p->numel(); ++i) mask.data<float>()[i] = w[i] != 0.0f ? 1.0f : 0.0f;
          p->set_mask(mask);
        } else if (a->clock.ended()) {
          p->set_mask(Tensor());
        }
      }
    } else if (m.is_pruning()) {
      if (first) {
        for (auto& [name, p] : a->params)
          a->init.push_back(m.init_from_param ? pruning::sparsity_of(p->value().data()) : m.init_sparsity);
      }
      std::vector<Tensor> weights, previous;
      for (auto& [name, p] : a->params) {
        weights.push_back(p->value().data());
        previous.push_back(p->mask());
      }
      auto target = [&](size_t i) {
        return pruning::scheduled_sparsity(epoch, a->clock.start(), a->clock.end(), a->init[i], a->final[i],
                                           m.inter_func);
      };
      std::vector<Tensor> masks;
      if (m.global_sparsity) masks = pruning::global_magnitude_masks(weights, previous, target(0), m.mask_type);
      else
        for (size_t i = 0; i < weights.size(); ++i)
          masks.push_back(pruning::magnitude_mask(weights[i], previous[i], target(i), m.mask_type));
      for (size_t i = 0; i < masks.size(); ++i) a->params[i].second->set_mask(masks[i]);
      if (a->clock.ended() && !m.leave_enabled)
        for (auto& [name, p] : a->params) p->set_mask(Tensor());  // weights stay zero but may grow back
    }
  }
}

void Manager::fast_forward(int64_t steps) {
  for (int64_t s = 0; s < steps; ++s) {
    const double epoch = static_cast<double>(s) / static_cast<double>(steps_per_epoch_);
    for (auto& a : active_)
      if (a->clock.due(epoch) && !a->started) {
        a->started = true;
        for (auto& [name, p] : a->params) {
          a->init.push_back(a->m.init_from_param ? pruning::sparsity_of(p->value().data()) : a->m.init_sparsity);
          a->was_trainable.push_back(true);
        }
      }
  }
}

}  // namespace neurite::recipes
