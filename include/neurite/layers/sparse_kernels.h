// neurite/layers/sparse_kernels.h — when pruned layers train on sparse kernels.
//
// A Linear or Conv2d layer (and the projections of attention) whose weight has
// a mask runs its forward and both gradients on the weight's sparse form
// (neurite/autograd/sparse.h) as its module's KernelPolicy says
// (Module::set_kernel_policy, neurite/kernels/policy.h):
//   automatic, autotuning: when timing both on its first forward at a new
//     density shows sparse faster (shapes and density rounded to 1 % share the
//     result within a module tree; above kernels::kDenseAboveDensity dense
//     kernels won on every shape measured, so such layers do not time);
//   automatic, deterministic (autotune off): when its density is at most
//     kernels::kSparseBelowDensity — the same choice on every run;
//   always, never: forced, e.g. to time a step both ways.
// The two kernels round differently: a run resumed in a new process is
// bit-exact when the policy is deterministic or forced.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "neurite/autograd/ops.h"
#include "neurite/kernels/policy.h"
#include "neurite/layers/module.h"

namespace neurite::layers::detail {

// A module tree's kernel policy and the choices its layers made under it.
struct KernelContext {
  kernels::KernelPolicy policy;
  std::mutex mutex;
  std::map<std::string, bool> sparse_is_faster;  // by layer kind, shapes, density and mode
};

// Puts `weight` into the form the policy picks for input x (conv: its
// options; null for a linear weight) and says whether that form is sparse.
bool use_sparse(Parameter& weight, const autograd::Variable& x, const autograd::Conv2dOptions* conv,
                KernelContext& context);

}  // namespace neurite::layers::detail
