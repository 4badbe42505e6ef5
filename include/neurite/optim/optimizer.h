// Optimizers (SGD, Adam, AdamW) with parameter groups, PyTorch's update rules
// and state dicts. Every update respects pruning masks: a masked weight stays
// zero, its gradient is taken as zero, and its optimizer state is zero. A
// parameter training in a sparse form is updated at its kept values, and its
// state is kept for those values only.
//
//   optim::Sgd sgd({{model->parameters(), 0.1}}, {.momentum = 0.9, .nesterov = true, .weight_decay = 5e-4});
//   loss.backward();
//   optim::clip_grad_norm(model->parameters(), 5.0);
//   sgd.step();
//   sgd.zero_grad();
#pragma once

#include <functional>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "neurite/layers/module.h"

namespace neurite::optim {

using layers::ParameterPtr;
using layers::Tensor;

struct ParamGroup {
  std::vector<ParameterPtr> params;
  double lr = 0.01;
  double weight_decay = 0.0;
};

// Per-parameter state by "<group>.<index>.<name>" (e.g. "0.3.exp_avg"), plus
// "step" counters; checkpoints store it as it is.
using OptimizerState = std::map<std::string, Tensor>;

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;

  // Updates every parameter that has a gradient, then re-applies masks.
  void step();
  void zero_grad();
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

  OptimizerState state_dict() const;
  // Bytes of state held now (kept positions only for sparse parameters).
  int64_t state_bytes() const;
  // Throws ValueError naming an entry whose shape does not fit its parameter.
  void load_state_dict(const OptimizerState& state);

 protected:
  // One parameter's update: w, its gradient g (already masked), its group and
  // its state tensors (made by state_tensor on first use). `step` counts this
  // parameter's updates from 1, as PyTorch's per-parameter state["step"].
  struct Slot {
    float* w;
    const float* g;
    int64_t n;
    const layers::Shape& shape;
    const ParamGroup& group;
    std::map<std::string, Tensor>& state;
  };
  virtual void update(Slot& slot, int64_t step) = 0;
  // The state tensor `name` of the slot's parameter, zeros of its shape at first.
  static float* state_tensor(Slot& slot, const std::string& name);

 private:
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<std::map<std::string, Tensor>>> state_;  // [group][param] -> name -> tensor
  // [group][param]: the sparse form the state is laid out for (null: dense)
  std::vector<std::vector<std::shared_ptr<const autograd::SparseWeight>>> layout_;
};

struct SgdOptions {
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};
// PyTorch's SGD: d = g + wd·w; buf = momentum·buf + (1 - dampening)·d (buf = d
// at first); d = nesterov ? d + momentum·buf : buf; w -= lr·d.
class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options = {});

 protected:
  void update(Slot& slot, int64_t step) override;

 private:
  SgdOptions options_;
};

struct AdamOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};
// PyTorch's Adam (weight decay as L2 added to the gradient) and AdamW (decay
// decoupled: w *= 1 - lr·wd before the Adam step).
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options = {}, bool decoupled_weight_decay = false);

 protected:
  void update(Slot& slot, int64_t step) override;

 private:
  AdamOptions options_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamOptions& options = {}) : Adam(std::move(groups), options, true) {}
};

// Scales all gradients so their global L2 norm is at most max_norm; returns
// the norm before clipping (as torch.nn.utils.clip_grad_norm_).
// `common_norm`, if given, maps the norm computed here to the one to use:
// data-parallel ranks hold the same gradients but may add them up in another
// order (dense or sparse forms), so they take rank 0's and clip alike.
double clip_grad_norm(const std::vector<ParameterPtr>& params, double max_norm,
                      const std::function<double(double)>& common_norm = {});

}  // namespace neurite::optim
