#include "neurite/layers/module.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "neurite/error.h"
#include "neurite/kernels/sparse.h"
#include "neurite/layers/sparse_kernels.h"

namespace neurite::layers {

using autograd::to_string;

Variable& Parameter::value() {
  return const_cast<Variable&>(static_cast<const Parameter*>(this)->value());
}

const Variable& Parameter::value() const {
  if (sparse_ != nullptr) {
    if (!value_.data().defined()) value_.data() = Tensor::zeros(shape_);
    Tensor dense = value_.data();  // shares storage
    sparse_->scatter(values_.data(), dense);
  }
  return value_;
}

void Parameter::release_dense_view() {
  if (sparse_ != nullptr) value_.data() = Tensor();
}

void Parameter::set_mask(Tensor mask) {
  if (mask.defined())
    check<ShapeError>(mask.shape() == shape() && mask.dtype() == autograd::Dtype::f32,
                      "set_mask: mask {} must be float32 of the parameter's shape {}", to_string(mask.shape()),
                      to_string(shape()));
  to_dense();  // the sparse form follows the old mask
  mask_ = std::move(mask);
  ++mask_version_;
  density_ = 1.0;
  if (mask_.defined() && numel() > 0) {
    density_ = static_cast<double>(kernels::count_nonzero(mask_.data<float>(), numel())) / static_cast<double>(numel());
  }
  apply_mask();
}

void Parameter::apply_mask() {
  if (!mask_.defined() || sparse_ != nullptr) return;  // a sparse form holds kept values only
  const float* m = mask_.data<float>();
  float* w = value_.data().data<float>();
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) w[i] *= m[i];
  if (value_.has_grad()) {
    Tensor grad = value_.grad();  // shares the gradient's storage
    float* g = grad.data<float>();
    for (int64_t i = 0; i < n; ++i) g[i] *= m[i];
  }
}

void Parameter::to_sparse(std::shared_ptr<const autograd::SparseWeight> form) {
  check(form != nullptr && form->shape() == shape(), "Parameter::to_sparse: the form must have the shape {}",
        to_string(shape()));
  to_dense();
  values_ = Variable(form->gather(value_.data()), value_.requires_grad());
  value_.zero_grad();
  sparse_ = std::move(form);
  release_dense_view();
}

void Parameter::to_dense() {
  if (sparse_ == nullptr) return;
  value();  // scatters the values in
  sparse_.reset();
  values_ = Variable();
}

Variable& Parameter::trainable() {
  if (sparse_ == nullptr) return value_;
  if (values_.requires_grad() != value_.requires_grad()) values_.set_requires_grad(value_.requires_grad());
  return values_;
}

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

template <typename Visit>
void walk(const Module& m, const std::string& prefix, Visit&& visit) {
  visit(m, prefix);
  for (const auto& [name, child] : m.named_children()) walk(*child, join(prefix, name), visit);
}
}  // namespace

void Module::check_new_name(const std::string& name) const {
  check(!name.empty() && name.find('.') == std::string::npos, "Module: name '{}' must be non-empty and without '.'",
        name);
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& entry) { return entry.first == name; });
  };
  check(!taken(parameters_) && !taken(buffers_) && !taken(children_), "Module: name '{}' is registered twice", name);
}

Parameter& Module::register_parameter(const std::string& name, Tensor init) {
  check_new_name(name);
  parameters_.emplace_back(name, std::make_shared<Parameter>(std::move(init)));
  return *parameters_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor init) {
  check_new_name(name);
  buffers_.emplace_back(name, std::make_shared<Tensor>(std::move(init)));
  return *buffers_.back().second;
}

Module::Module() : kernels_(std::make_shared<detail::KernelContext>()) {}
Module::~Module() = default;

void Module::set_kernel_policy(const kernels::KernelPolicy& policy) {
  auto context = std::make_shared<detail::KernelContext>();
  context->policy = policy;
  share_kernel_context(context);
}

const kernels::KernelPolicy& Module::kernel_policy() const { return kernels_->policy; }

void Module::share_kernel_context(const std::shared_ptr<detail::KernelContext>& context) {
  kernels_ = context;
  for (auto& [name, child] : children_) child->share_kernel_context(context);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  check(child != nullptr, "Module: child '{}' is null", name);
  child->train(training_);
  child->share_kernel_context(kernels_);
  children_.emplace_back(name, std::move(child));
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> child) {
  check(child != nullptr, "Module: child '{}' is null", name);
  auto it = std::find_if(children_.begin(), children_.end(), [&](const auto& entry) { return entry.first == name; });
  check<ValueError>(it != children_.end(), "Module: no child named '{}' to replace", name);
  child->train(training_);
  child->share_kernel_context(kernels_);
  it->second = std::move(child);
}

std::vector<std::pair<std::string, ParameterPtr>> Module::named_parameters() const {
  std::vector<std::pair<std::string, ParameterPtr>> out;
  walk(*this, "", [&](const Module& m, const std::string& prefix) {
    for (const auto& [name, p] : m.parameters_) out.emplace_back(join(prefix, name), p);
  });
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [name, child] : children_) {
    out.emplace_back(name, child);
    for (auto& [below, m] : child->named_modules()) out.emplace_back(join(name, below), m);
  }
  return out;
}

void Module::apply(const std::function<void(Module&)>& f) {
  f(*this);
  for (auto& [name, child] : children_) child->apply(f);
}

std::vector<ParameterPtr> Module::parameters() const {
  std::vector<ParameterPtr> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  walk(*this, "", [&](const Module& m, const std::string& prefix) {
    for (const auto& [name, b] : m.buffers_) out.emplace_back(join(prefix, name), *b);
  });
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p->numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& p : parameters()) p->trainable().zero_grad();
}

StateDict Module::state_dict() const {
  StateDict out;
  for (const auto& [name, p] : named_parameters()) out.emplace(name, p->value().data().clone());
  for (const auto& [name, b] : named_buffers()) out.emplace(name, b.clone());
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  // Targets by name: parameters' data and buffers (tensors share storage, so
  // copying into these copies into the module).
  std::map<std::string, Tensor> targets;
  for (const auto& [name, p] : named_parameters()) {
    p->to_dense();  // the loaded values become the parameter
    targets.emplace(name, p->value().data());
  }
  for (const auto& [name, b] : named_buffers()) targets.emplace(name, b);
  if (strict) {
    std::vector<std::string> missing, unexpected;
    for (const auto& [name, t] : targets)
      if (!state.count(name)) missing.push_back(name);
    for (const auto& [name, t] : state)
      if (!targets.count(name)) unexpected.push_back(name);
    check(missing.empty() && unexpected.empty(), "load_state_dict: missing [{}], unexpected [{}]",
          fmt::join(missing, ", "), fmt::join(unexpected, ", "));
  }
  for (auto& [name, target] : targets) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    check<ShapeError>(it->second.shape() == target.shape() && it->second.dtype() == target.dtype(),
                      "load_state_dict: '{}' is {} {} in the state, {} {} in the module", name,
                      to_string(it->second.dtype()), to_string(it->second.shape()), to_string(target.dtype()),
                      to_string(target.shape()));
    target.copy_from_(it->second);
  }
  for (auto& p : parameters()) p->apply_mask();
}

Variable UnaryModule::forward_inputs(const std::vector<Variable>& inputs) {
  check<ValueError>(inputs.size() == 1, "the model takes one input, the data gives {}", inputs.size());
  return forward(inputs[0]);
}

}  // namespace neurite::layers
