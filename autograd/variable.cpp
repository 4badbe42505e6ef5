#include "neurite/autograd/variable.h"

#include <unordered_map>

#include "autograd/elementwise_kernels.h"
#include "neurite/error.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

namespace detail {

struct Node {
  Tensor data;
  Tensor grad;
  bool requires_grad = false;
  std::vector<Variable> inputs;  // empty for leaves
  BackwardFn backward;
  bool freed = false;  // an earlier backward pass ran through this node

  // A long chain would otherwise be destroyed by nested destructor calls, one
  // stack frame per node; unlink it iteratively instead.
  ~Node() {
    std::vector<Variable> pending = std::move(inputs);
    while (!pending.empty()) {
      Variable v = std::move(pending.back());
      pending.pop_back();
      Node* n = v.node_.get();
      if (n != nullptr && v.node_.use_count() == 1) {
        for (auto& in : n->inputs) pending.push_back(std::move(in));
        n->inputs.clear();
      }
    }
  }
};

}  // namespace detail

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Variable::Variable(Tensor data, bool requires_grad) : node_(std::make_shared<detail::Node>()) {
  check<StateError>(!requires_grad || data.dtype() == Dtype::f32, "requires_grad needs a float32 tensor, got {}",
                    to_string(data.dtype()));
  node_->data = std::move(data);
  node_->requires_grad = requires_grad;
}

Variable::Variable(Tensor data, std::vector<Variable> inputs, BackwardFn backward)
    : node_(std::make_shared<detail::Node>()) {
  detail::record_op_result(inputs, data);
  node_->data = std::move(data);
  bool any = false;
  for (const auto& in : inputs) any = any || (in.defined() && in.requires_grad());
  if (any && grad_enabled()) {
    node_->requires_grad = true;
    node_->inputs = std::move(inputs);
    node_->backward = std::move(backward);
  }
}

const Tensor& Variable::data() const {
  check<StateError>(defined(), "variable is undefined");
  return node_->data;
}
Tensor& Variable::data() {
  check<StateError>(defined(), "variable is undefined");
  return node_->data;
}

bool Variable::requires_grad() const { return node_ && node_->requires_grad; }
bool Variable::is_leaf() const { return !node_->backward && !node_->freed; }

void Variable::set_requires_grad(bool requires_grad) {
  check<StateError>(is_leaf(), "set_requires_grad: only leaf variables can change requires_grad");
  check<StateError>(!requires_grad || dtype() == Dtype::f32, "requires_grad needs a float32 tensor");
  node_->requires_grad = requires_grad;
}

const Tensor& Variable::grad() const { return node_->grad; }
bool Variable::has_grad() const { return node_ && node_->grad.defined(); }
void Variable::zero_grad() { node_->grad = Tensor(); }

void Variable::add_grad(const Tensor& g) {
  check<ShapeError>(g.shape() == shape(), "add_grad: gradient of shape {} for a variable of shape {}",
                    ShapeArg{g.shape()}, ShapeArg{shape()});
  if (!node_->grad.defined()) {
    node_->grad = g.clone();
  } else {
    detail::axpy(1.0f, g.data<float>(), node_->grad.data<float>(), g.numel());
  }
}

void Variable::add_grad(Tensor&& g) {
  if (!node_->grad.defined() && g.owns_storage() && g.shape() == shape()) {
    node_->grad = std::move(g);
    return;
  }
  add_grad(static_cast<const Tensor&>(g));
}

void Variable::set_grad(const Tensor& g) {
  check<ShapeError>(g.shape() == shape(), "set_grad: gradient of shape {} for a variable of shape {}",
                    ShapeArg{g.shape()}, ShapeArg{shape()});
  node_->grad = g;
}

void Variable::backward() {
  check<ShapeError>(numel() == 1, "backward: the result has shape {}; give a gradient for a non-scalar result",
                    ShapeArg{shape()});
  backward(Tensor::ones(shape()));
}

void Variable::backward(const Tensor& grad_output) {
  check<StateError>(requires_grad(), "backward: the result does not require a gradient (no input requires one)");
  check<StateError>(!node_->freed, "backward: the graph was already freed by an earlier backward pass");
  check<ShapeError>(grad_output.shape() == shape(), "backward: gradient of shape {} for a result of shape {}",
                    ShapeArg{grad_output.shape()}, ShapeArg{shape()});

  // Reverse topological order by an iterative depth-first search.
  // `order` owns its nodes: freeing one node's inputs must not destroy a node
  // that is still to be visited.
  std::vector<std::shared_ptr<detail::Node>> order;
  std::unordered_map<detail::Node*, bool> visited;
  std::vector<std::pair<std::shared_ptr<detail::Node>, size_t>> stack{{node_, 0}};
  visited[node_.get()] = true;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const std::shared_ptr<detail::Node>& child = node->inputs[next++].node_;
      if (child != nullptr && child->requires_grad && !child->inputs.empty() && !visited[child.get()]) {
        visited[child.get()] = true;
        stack.emplace_back(child, 0);
      }
    } else {
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }

  add_grad(grad_output);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    detail::Node* node = it->get();
    if (!node->grad.defined()) continue;  // no path carried a gradient here
    Tensor grad = std::move(node->grad);
    node->grad = Tensor();
    node->backward(grad, node->inputs);
    // Free the graph behind this node: its inputs and the tensors its closure holds.
    node->backward = nullptr;
    node->inputs.clear();
    node->freed = true;
  }
}

Variable Variable::detach() const { return Variable(data(), false); }

}  // namespace neurite::autograd
