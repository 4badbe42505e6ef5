#include "neurite/optim/optimizer.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "neurite/error.h"

namespace neurite::optim {

using autograd::to_string;

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  for (size_t g = 0; g < groups_.size(); ++g) {
    check<ValueError>(groups_[g].lr >= 0 && groups_[g].weight_decay >= 0,
                      "optimizer: group {} has lr {} and weight_decay {}, expected non-negative values", g,
                      groups_[g].lr, groups_[g].weight_decay);
    state_.emplace_back(groups_[g].params.size());
    layout_.emplace_back(groups_[g].params.size());
  }
}

float* Optimizer::state_tensor(Slot& slot, const std::string& name) {
  auto it = slot.state.find(name);
  if (it == slot.state.end()) it = slot.state.emplace(name, Tensor::zeros(slot.shape)).first;
  return it->second.data<float>();
}

namespace {

// The layout of a parameter's state follows its sparse form: [nnz] values
// when sparse, its dense shape otherwise. Moves every state tensor laid out
// for `from` to `to` (null: dense), through the dense layout; entries
// pruned meanwhile drop out, so the state stays that of kept positions only.
void relayout(std::map<std::string, Tensor>& state, const std::shared_ptr<const autograd::SparseWeight>& from,
              const std::shared_ptr<const autograd::SparseWeight>& to, const layers::Shape& shape) {
  for (auto& [name, t] : state) {
    if (name == "step") continue;
    Tensor dense = t;
    if (from != nullptr) {
      dense = Tensor::zeros(shape);
      from->scatter(t, dense);
    }
    t = to != nullptr ? to->gather(dense) : dense;
  }
}

}  // namespace

void Optimizer::step() {
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      layers::Parameter& p = *groups_[g].params[i];
      autograd::Variable& v = p.trainable();
      if (!v.has_grad() || !v.requires_grad()) continue;
      p.apply_mask();  // zeroes the gradient at pruned positions too (a no-op when sparse)
      auto& state = state_[g][i];
      if (layout_[g][i] != p.sparse_form()) {
        relayout(state, layout_[g][i], p.sparse_form(), p.shape());
        layout_[g][i] = p.sparse_form();
      }
      auto [counter, inserted] = state.emplace("step", Tensor::zeros({}));
      const int64_t step = static_cast<int64_t>(++counter->second.data<float>()[0]);
      Tensor w = v.data(), grad = v.grad();
      Slot slot{w.data<float>(), grad.data<float>(), w.numel(), v.shape(), groups_[g], state};
      update(slot, step);
      if (p.has_mask() && !p.is_sparse()) {
        p.apply_mask();
        const float* m = p.mask().data<float>();
        for (auto& [name, t] : state)
          if (t.shape() == p.shape()) {
            float* s = t.data<float>();
            for (int64_t k = 0; k < t.numel(); ++k) s[k] *= m[k];
          }
      }
    }
}

void Optimizer::zero_grad() {
  for (auto& group : groups_)
    for (auto& p : group.params) p->trainable().zero_grad();
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;  // always in the dense layout, whatever form each parameter trains in
  for (size_t g = 0; g < state_.size(); ++g)
    for (size_t i = 0; i < state_[g].size(); ++i) {
      auto dense = state_[g][i];
      relayout(dense, layout_[g][i], nullptr, groups_[g].params[i]->shape());
      for (const auto& [name, t] : dense) out.emplace(fmt::format("{}.{}.{}", g, i, name), t.clone());
    }
  return out;
}

int64_t Optimizer::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& group : state_)
    for (const auto& slot : group)
      for (const auto& [name, t] : slot) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  for (size_t g = 0; g < state_.size(); ++g)
    for (size_t i = 0; i < state_[g].size(); ++i) {
      state_[g][i].clear();
      layout_[g][i] = nullptr;
    }
  for (const auto& [key, t] : state) {
    size_t g = 0, i = 0;
    char name[64] = {};
    check<ValueError>(std::sscanf(key.c_str(), "%zu.%zu.%63s", &g, &i, name) == 3 && g < groups_.size() &&
                          i < groups_[g].params.size(),
                      "optimizer state: entry '{}' names no parameter of this optimizer", key);
    const layers::Shape& shape = groups_[g].params[i]->shape();
    check<ValueError>(std::string(name) == "step" || t.shape() == shape,
                      "optimizer state: '{}' is {}, its parameter is {}", key, to_string(t.shape()), to_string(shape));
    state_[g][i][name] = t.clone();
  }
}

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& options)
    : Optimizer(std::move(groups)), options_(options) {
  check<ValueError>(options.momentum >= 0 && options.dampening >= 0,
                    "SGD: momentum {} and dampening {} must be non-negative", options.momentum, options.dampening);
  check<ValueError>(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
                    "SGD: Nesterov momentum needs momentum > 0 and dampening 0, got {} and {}", options.momentum,
                    options.dampening);
}

void Sgd::update(Slot& s, int64_t step) {
  const float lr = static_cast<float>(s.group.lr), wd = static_cast<float>(s.group.weight_decay);
  const float momentum = static_cast<float>(options_.momentum), keep = 1.0f - static_cast<float>(options_.dampening);
  float* w = s.w;
  const float* g = s.g;
  if (momentum == 0.0f) {
    for (int64_t k = 0; k < s.n; ++k) w[k] -= lr * (g[k] + wd * w[k]);
    return;
  }
  // Branch-free loops per case, so each vectorises.
  float* buf = state_tensor(s, "momentum_buffer");
  const float decay = step == 1 ? 0.0f : momentum, gain = step == 1 ? 1.0f : keep;  // buf = d at the first step
  if (options_.nesterov) {
    for (int64_t k = 0; k < s.n; ++k) {
      const float d = g[k] + wd * w[k];
      buf[k] = decay * buf[k] + gain * d;
      w[k] -= lr * (d + momentum * buf[k]);
    }
  } else {
    for (int64_t k = 0; k < s.n; ++k) {
      buf[k] = decay * buf[k] + gain * (g[k] + wd * w[k]);
      w[k] -= lr * buf[k];
    }
  }
}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled_weight_decay)
    : Optimizer(std::move(groups)), options_(options), decoupled_(decoupled_weight_decay) {
  check<ValueError>(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1 &&
                        options.eps >= 0,
                    "Adam: betas ({}, {}) must lie in [0, 1) and eps {} be non-negative", options.beta1,
                    options.beta2, options.eps);
}

void Adam::update(Slot& s, int64_t step) {
  const double lr = s.group.lr, wd = s.group.weight_decay;
  const float b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
  // 1 - beta in double, then rounded, as PyTorch does: 1.0f - 0.999f is 0.00099998713 (1.3e-5 off).
  const float keep1 = static_cast<float>(1 - options_.beta1), keep2 = static_cast<float>(1 - options_.beta2);
  const double correction1 = 1 - std::pow(options_.beta1, step), correction2 = 1 - std::pow(options_.beta2, step);
  const float step_size = static_cast<float>(lr / correction1);
  const float root_correction2 = static_cast<float>(std::sqrt(correction2)), eps = static_cast<float>(options_.eps);
  const float decay = decoupled_ ? static_cast<float>(1 - lr * wd) : 1.0f;
  const float l2 = decoupled_ ? 0.0f : static_cast<float>(wd);
  float* m = state_tensor(s, "exp_avg");
  float* v = state_tensor(s, "exp_avg_sq");
  for (int64_t k = 0; k < s.n; ++k) {
    const float g = s.g[k] + l2 * s.w[k];
    s.w[k] *= decay;
    m[k] = b1 * m[k] + keep1 * g;
    v[k] = b2 * v[k] + keep2 * g * g;
    s.w[k] -= step_size * m[k] / (std::sqrt(v[k]) / root_correction2 + eps);
  }
}

double clip_grad_norm(const std::vector<ParameterPtr>& params, double max_norm,
                      const std::function<double(double)>& common_norm) {
  double total = 0;
  for (const auto& p : params)
    if (p->trainable().has_grad()) {
      p->apply_mask();  // a pruned weight has no gradient, dense or sparse
      const Tensor& grad = p->trainable().grad();
      const float* g = grad.data<float>();
      for (int64_t k = 0; k < grad.numel(); ++k) total += static_cast<double>(g[k]) * g[k];
    }
  total = std::sqrt(total);
  if (common_norm) total = common_norm(total);
  const double scale = max_norm / (total + 1e-6);
  if (scale < 1)
    for (const auto& p : params)
      if (p->trainable().has_grad()) {
        Tensor grad = p->trainable().grad();
        float* g = grad.data<float>();
        for (int64_t k = 0; k < grad.numel(); ++k) g[k] = static_cast<float>(g[k] * scale);
      }
  return total;
}

}  // namespace neurite::optim
