#include "neurite/layers/sparse_kernels.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "neurite/error.h"
#include "neurite/autograd/sparse.h"
#include "neurite/kernels/autotune.h"

namespace neurite::layers {

using autograd::SparseWeight;
using autograd::Variable;

namespace {

SparseKernels initial_mode() {
  const char* env = std::getenv("NEURITE_SPARSE_KERNELS");
  if (env == nullptr || std::strcmp(env, "auto") == 0) return SparseKernels::automatic;
  if (std::strcmp(env, "always") == 0) return SparseKernels::always;
  if (std::strcmp(env, "never") == 0) return SparseKernels::never;
  throw ValueError(fmt::format("NEURITE_SPARSE_KERNELS={}: expected auto, always or never", env));
}

SparseKernels& mode() {
  static SparseKernels m = initial_mode();
  return m;
}

std::mutex g_mutex;
std::map<std::string, bool> g_decisions;  // by layer kind, shapes, density and form

std::shared_ptr<const SparseWeight> make_form(const Parameter& w, const autograd::Conv2dOptions* conv) {
  return conv != nullptr ? SparseWeight::conv2d(w.mask(), *conv) : SparseWeight::linear(w.mask());
}

// Times this layer's forward (and backward, when training) both ways on
// copies of its operands.
bool sparse_is_faster(const Parameter& w, const std::shared_ptr<const SparseWeight>& form, const Variable& x,
                      const autograd::Conv2dOptions* conv) {
  const bool training = autograd::grad_enabled();
  Variable xs(x.data(), training), dense(w.value().data(), training), values(form->gather(w.value().data()), training);
  auto run = [&](bool sparse) {
    Variable y = sparse ? (conv ? sparse_conv2d(xs, form, values) : sparse_linear(xs, form, values))
                        : (conv ? conv2d(xs, dense, {}, *conv) : linear(xs, dense));
    if (training) y.backward(autograd::Tensor::ones(y.shape()));
  };
  return kernels::fastest_run_seconds([&] { run(true); }) < kernels::fastest_run_seconds([&] { run(false); });
}

}  // namespace

void set_sparse_kernels(SparseKernels m) { mode() = m; }
SparseKernels sparse_kernels() { return mode(); }

bool detail::use_sparse(Parameter& weight, const Variable& x, const autograd::Conv2dOptions* conv) {
  const SparseKernels m = mode();
  if (!weight.has_mask() || m == SparseKernels::never || (conv != nullptr && conv->groups != 1) ||
      (m == SparseKernels::automatic && weight.density() > kernels::kDenseAboveDensity)) {
    weight.to_dense();
    return false;
  }
  bool sparse = true;
  if (m == SparseKernels::automatic) {
    std::string key = fmt::format("{} w{} x{} density {:.2f} {}", conv != nullptr ? "conv" : "linear",
                                  autograd::to_string(weight.shape()), autograd::to_string(x.shape()),
                                  weight.density(), autograd::grad_enabled() ? "train" : "infer");
    if (conv != nullptr)
      key += fmt::format(" s{}x{} p{}x{} d{}x{}", conv->stride_h, conv->stride_w, conv->pad_h, conv->pad_w,
                         conv->dilation_h, conv->dilation_w);
    std::lock_guard lock(g_mutex);
    auto it = g_decisions.find(key);
    if (it == g_decisions.end()) {
      auto form = weight.is_sparse() ? weight.sparse_form() : make_form(weight, conv);
      it = g_decisions.emplace(key, sparse_is_faster(weight, form, x, conv)).first;
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
