#include "neurite/layers/sparse_kernels.h"

#include <fmt/format.h>

#include <algorithm>

#include "neurite/error.h"
#include "neurite/autograd/sparse.h"
#include "neurite/kernels/autotune.h"

namespace neurite::layers {

using autograd::SparseWeight;
using autograd::Variable;

namespace {

std::shared_ptr<const SparseWeight> make_form(const Parameter& w, const autograd::Conv2dOptions* conv) {
  return conv != nullptr ? SparseWeight::conv2d(w.mask(), *conv) : SparseWeight::linear(w.mask());
}

// Times this layer's forward (and backward, when training) both ways on
// copies of its operands.
bool sparse_is_faster(const Parameter& w, const std::shared_ptr<const SparseWeight>& form, const Variable& x,
                      const autograd::Conv2dOptions* conv, kernels::Isa isa) {
  const bool training = autograd::grad_enabled();
  Variable xs(x.data(), training), dense(w.value().data(), training), values(form->gather(w.value().data()), training);
  auto run = [&](bool sparse) {
    Variable y = sparse ? (conv ? sparse_conv2d(xs, form, values, {}, isa) : sparse_linear(xs, form, values, {}, isa))
                        : (conv ? conv2d(xs, dense, {}, *conv) : linear(xs, dense));
    if (training) y.backward(autograd::Tensor::ones(y.shape()));
  };
  return kernels::fastest_run_seconds([&] { run(true); }) < kernels::fastest_run_seconds([&] { run(false); });
}

}  // namespace

bool detail::use_sparse(Parameter& weight, const Variable& x, const autograd::Conv2dOptions* conv,
                        KernelContext& context) {
  using kernels::SparseKernels;
  const kernels::KernelPolicy& policy = context.policy;
  const SparseKernels m = policy.sparse;
  const double max_density = policy.autotune ? kernels::kDenseAboveDensity : kernels::kSparseBelowDensity;
  if (!weight.has_mask() || m == SparseKernels::never || (conv != nullptr && conv->groups != 1) ||
      (m == SparseKernels::automatic && weight.density() > max_density)) {
    weight.to_dense();
    return false;
  }
  bool sparse = true;
  if (m == SparseKernels::automatic && policy.autotune) {
    std::string key = fmt::format("{} w{} x{} density {:.2f} {}", conv != nullptr ? "conv" : "linear",
                                  autograd::to_string(weight.shape()), autograd::to_string(x.shape()),
                                  weight.density(), autograd::grad_enabled() ? "train" : "infer");
    if (conv != nullptr)
      key += fmt::format(" s{}x{} p{}x{} d{}x{}", conv->stride_h, conv->stride_w, conv->pad_h, conv->pad_w,
                         conv->dilation_h, conv->dilation_w);
    std::lock_guard lock(context.mutex);
    auto it = context.sparse_is_faster.find(key);
    if (it == context.sparse_is_faster.end()) {
      auto form = weight.is_sparse() ? weight.sparse_form() : make_form(weight, conv);
      it = context.sparse_is_faster.emplace(key, sparse_is_faster(weight, form, x, conv, policy.resolved_isa())).first;
      if (it->second && !weight.is_sparse()) weight.to_sparse(std::move(form));
    }
    sparse = it->second;
  }
  if (!sparse) {
    weight.to_dense();
    return false;
  }
  if (!weight.is_sparse()) weight.to_sparse(make_form(weight, conv));
  weight.release_dense_view();
  return true;
}

}  // namespace neurite::layers
