// When pruned layers train with sparse kernels.
//
// A Linear or Conv2d layer (and the projections of attention) whose weight has
// a mask runs its forward and both gradients on the weight's sparse form
// (autograd/sparse.h) when that is faster for its shapes and density. In
// `automatic` mode the layer measures both on its first forward at a new
// density (shapes and density rounded to 1 % share the result; above 70 %
// dense kernels won on every shape measured, bench/RESULTS.md); `always` and `never`
// force the choice, e.g. to time a step both ways:
//
//   layers::set_sparse_kernels(layers::SparseKernels::never);  // dense masked kernels
//
// The default comes from the environment variable NEURITE_SPARSE_KERNELS
// (auto, always, never), else automatic. The two kernels round differently,
// and `automatic` decides by timing: within a process the choices are
// cached and fixed, but a run resumed in a new process is bit-exact only
// under `always` or `never`.
#pragma once

#include "neurite/autograd/ops.h"
#include "neurite/layers/module.h"

namespace neurite::layers {

enum class SparseKernels { automatic, always, never };
void set_sparse_kernels(SparseKernels mode);
SparseKernels sparse_kernels();

namespace detail {
// Puts `weight` into the form the policy picks for input x (conv: its
// options; null for a linear weight) and says whether that form is sparse.
bool use_sparse(Parameter& weight, const autograd::Variable& x, const autograd::Conv2dOptions* conv);
}  // namespace detail

}  // namespace neurite::layers
