// neurite/autograd/variable.h — a Tensor that records how it was computed, and
// reverse-mode differentiation over that record.
//
//   Variable w(Tensor::randn({3, 2}, 1), /*requires_grad=*/true);
//   Variable x(Tensor::ones({4, 3}));
//   Variable loss = sum(relu(matmul(x, w)));
//   loss.backward();            // w.grad() now holds dloss/dw, shape [3,2]
//
// Graphs are built as ops run (define-by-run). `backward` walks the graph in
// reverse topological order without recursion, so chains of any length work,
// and frees the graph as it goes: call it once per forward pass.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "neurite/autograd/tensor.h"

namespace neurite::autograd {

class Variable;

// The backward contract, shared by every op:
//   backward(grad_output, inputs) runs once, after every consumer of the op's
//   result has added its gradient. For each input with requires_grad() it
//   computes that input's share and calls input.add_grad(g) with g of exactly
//   the input's shape (`sum_to` reduces broadcast dimensions). It skips inputs
//   that need no gradient, and captures only the tensors it reads.
using BackwardFn = std::function<void(const Tensor& grad_output, std::vector<Variable>& inputs)>;

namespace detail {
struct Node;
}

class Variable {
 public:
  Variable() = default;  // undefined
  // A leaf: data with no history; parameters pass requires_grad = true.
  explicit Variable(Tensor data, bool requires_grad = false);
  // The result of an op: records `inputs` and `backward` when gradients are
  // enabled and some input requires a gradient; otherwise a plain leaf.
  Variable(Tensor data, std::vector<Variable> inputs, BackwardFn backward);

  bool defined() const { return node_ != nullptr; }
  const Tensor& data() const;
  Tensor& data();  // for in-place updates of leaves (optimizers)
  const Shape& shape() const { return data().shape(); }
  int64_t dim() const { return data().dim(); }
  int64_t size(int64_t d) const { return data().size(d); }
  int64_t numel() const { return data().numel(); }
  Dtype dtype() const { return data().dtype(); }
  float item() const { return data().item(); }

  bool requires_grad() const;
  void set_requires_grad(bool requires_grad);  // leaves only (StateError otherwise)
  bool is_leaf() const;

  // The accumulated gradient (undefined until a backward pass reaches it).
  const Tensor& grad() const;
  bool has_grad() const;
  void zero_grad();  // drops the gradient
  // Adds g (same shape, else ShapeError) into the gradient. The first
  // gradient is copied, unless it is passed as an rvalue whose storage nothing
  // else shares: then it is adopted, which saves a copy of every activation
  // gradient in backward (ops pass their fresh results with std::move).
  void add_grad(const Tensor& g);
  void add_grad(Tensor&& g);
  void set_grad(const Tensor& g);

  // Backpropagates from a one-element result (gradient 1), or from any result
  // with a given gradient of the same shape. Throws StateError when the
  // variable does not require a gradient.
  void backward();
  void backward(const Tensor& grad_output);
  // The same, calling `leaf_ready` with each leaf that requires a gradient as
  // soon as its gradient is final (every op that used it has passed its share
  // back; it may have none if no path carried one): distributed training
  // starts exchanging gradients while the backward pass goes on.
  void backward(const Tensor& grad_output, const std::function<void(const Variable& leaf)>& leaf_ready);

  // The same data, cut from the graph.
  Variable detach() const;

  bool same(const Variable& other) const { return node_ == other.node_; }
  // Equal for two handles of one variable (a key for maps of leaves).
  const void* identity() const { return node_.get(); }

 private:
  friend struct detail::Node;
  std::shared_ptr<detail::Node> node_;
};

// Disables graph recording in its scope (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

bool grad_enabled();

}  // namespace neurite::autograd
