// Module: the unit models are built from. A module registers its parameters,
// buffers and child modules by name, so every parameter has one dotted path
// (`layer1.0.conv1.weight`, as PyTorch names it) that checkpoints, recipes and
// ONNX export all use.
//
//   struct Net : layers::UnaryModule {
//     std::shared_ptr<layers::Linear> fc = register_module("fc", std::make_shared<layers::Linear>(784, 10));
//     autograd::Variable forward(const autograd::Variable& x) override { return fc->forward(x); }
//   };
//   Net net;
//   for (auto& [name, p] : net.named_parameters()) fmt::print("{} {}\n", name, to_string(p->shape()));
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "neurite/autograd/sparse.h"
#include "neurite/autograd/variable.h"

namespace neurite::layers {

using autograd::Shape;
using autograd::Tensor;
using autograd::Variable;

// A trainable tensor: a leaf Variable plus an optional pruning mask (1 keeps,
// 0 prunes; undefined while the parameter is dense).
//
// A pruned weight can also train in a sparse form (autograd/sparse.h): its
// layer switches it with to_sparse() when sparse kernels pay, and from then on
// the kept values are the parameter (trainable(): [nnz]) and value() is their
// dense view, made (or refreshed) on each call: a copy, so write values with
// load_state_dict or after to_dense(). A new mask, or loading values, returns
// it to dense; the layer rebuilds the form at its next forward.
class Parameter {
 public:
  explicit Parameter(Tensor init) : shape_(init.shape()), value_(std::move(init), true) {}

  // The dense weight (for a sparse parameter: its kept values scattered in).
  Variable& value();
  const Variable& value() const;
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return autograd::numel(shape_); }

  const Tensor& mask() const { return mask_; }
  bool has_mask() const { return mask_.defined(); }
  // The kept fraction of the mask (1 without one).
  double density() const { return density_; }
  // Counts set_mask() calls: whoever caches something of the mask sees when it changed.
  uint64_t mask_version() const { return mask_version_; }
  // Sets the mask (same shape, 0/1) and zeroes the pruned weights; an
  // undefined mask makes the parameter dense again.
  void set_mask(Tensor mask);
  // Zeroes the weights (and the gradient, if any) where the mask is 0.
  void apply_mask();

  bool is_sparse() const { return sparse_ != nullptr; }
  const std::shared_ptr<const autograd::SparseWeight>& sparse_form() const { return sparse_; }
  // Trains the kept values of `form` (built from this parameter's mask) from
  // now on; the dense weight's memory is freed.
  void to_sparse(std::shared_ptr<const autograd::SparseWeight> form);
  void to_dense();
  // Frees the dense view a value() call made of a sparse parameter (layers
  // call it as they train, so memory scales with the kept values).
  void release_dense_view();
  // What an optimizer updates: the kept values [nnz] when sparse, else value().
  Variable& trainable();

 private:
  Shape shape_;
  mutable Variable value_;  // without data while sparse, until value() makes the dense view
  Tensor mask_;
  double density_ = 1.0;
  uint64_t mask_version_ = 0;
  std::shared_ptr<const autograd::SparseWeight> sparse_;
  Variable values_;  // the kept values while sparse
};

using ParameterPtr = std::shared_ptr<Parameter>;
// Parameters and buffers by dotted name; sorted, so two dicts compare directly.
using StateDict = std::map<std::string, Tensor>;

namespace detail {
struct KernelContext;  // neurite/layers/sparse_kernels.h
}

class Module {
 public:
  virtual ~Module();
  Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // In registration order, depth first, with dotted names.
  std::vector<std::pair<std::string, ParameterPtr>> named_parameters() const;
  std::vector<ParameterPtr> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // Every module below this one, depth first, with dotted names (as PyTorch's
  // named_modules, without the module itself).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  // Calls f on this module and every module below it, depth first (as PyTorch's apply).
  void apply(const std::function<void(Module&)>& f);
  int64_t parameter_count() const;

  // train() switches dropout and batch norm to training behaviour, eval() to inference.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Copies of every parameter and buffer by name.
  StateDict state_dict() const;
  // Copies values in by name. strict: throws a ValueError listing missing and
  // unexpected names; a shape mismatch always throws (ShapeError, naming both).
  void load_state_dict(const StateDict& state, bool strict = true);

  void zero_grad();

  // Swaps the child registered as `name` for `child` (a new classifier for
  // transfer learning); ValueError when there is no such child.
  void replace_child(const std::string& name, std::shared_ptr<Module> child);

  // How the pruned layers of this module and its children pick their kernels
  // (neurite/kernels/policy.h, neurite/layers/sparse_kernels.h). A module
  // shares its parent's; setting one starts the tree's choices afresh.
  void set_kernel_policy(const kernels::KernelPolicy& policy);
  const kernels::KernelPolicy& kernel_policy() const;

 protected:
  detail::KernelContext& kernel_context() const { return *kernels_; }
  Parameter& register_parameter(const std::string& name, Tensor init);
  // The buffer lives in the module; the returned reference stays valid.
  Tensor& register_buffer(const std::string& name, Tensor init);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  void share_kernel_context(const std::shared_ptr<detail::KernelContext>& context);

  std::vector<std::pair<std::string, ParameterPtr>> parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::shared_ptr<detail::KernelContext> kernels_;
};

// A module with one output, the kind the Trainer drives: every layer of a
// Sequential and every model of layers/models take one input; a model of
// several (tokens and an attention mask, two views) overrides forward_inputs
// as well, and data whose examples carry more_inputs feeds it.
class UnaryModule : public Module {
 public:
  virtual Variable forward(const Variable& x) = 0;
  Variable operator()(const Variable& x) { return forward(x); }
  // All inputs in order; by default forward() of the one input (ValueError
  // for more).
  virtual Variable forward_inputs(const std::vector<Variable>& inputs);
};

}  // namespace neurite::layers
