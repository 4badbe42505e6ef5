#include "neurite/autograd/variable.h"

#include <chrono>
#include <unordered_map>

#include "autograd/elementwise_kernels.h"
#include "neurite/autograd/profile.h"
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
  const char* op = nullptr;  // the op that made it, for profiles (detail::name_op)

  static Node* of(const Variable& v) { return v.node_.get(); }

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

// The profile this thread adds to, the time of its last mark, and the last
// result's forward time, held until the op that made it has named it.
using Clock = std::chrono::steady_clock;
thread_local OpProfile* g_profile = nullptr;
thread_local Clock::time_point g_mark;
thread_local std::shared_ptr<detail::Node> g_pending;
thread_local double g_pending_ms = 0;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
std::string op_name(const detail::Node& n) { return n.op != nullptr ? n.op : "other"; }

void flush_pending() {
  if (g_profile == nullptr || g_pending == nullptr) return;
  OpTime& t = g_profile->ops[op_name(*g_pending)];
  t.forward_ms += g_pending_ms;
  ++t.calls;
  g_pending = nullptr;
}

// A new op result: the time since the last mark is its forward time.
void profile_result(const std::shared_ptr<detail::Node>& node) {
  if (g_profile == nullptr) return;
  flush_pending();
  g_pending = node;
  g_pending_ms = ms_since(g_mark);
  g_mark = Clock::now();
}
}  // namespace

ProfileGuard::ProfileGuard(OpProfile& profile) {
  check<StateError>(g_profile == nullptr, "ProfileGuard: this thread is profiling already");
  g_profile = &profile;
  g_mark = Clock::now();
}

ProfileGuard::~ProfileGuard() {
  flush_pending();
  g_profile = nullptr;
}

void detail::name_op(const Variable& y, const char* op) {
  if (Node* n = Node::of(y); n != nullptr && n->op == nullptr) n->op = op;
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
  profile_result(node_);
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

void Variable::backward(const Tensor& grad_output) { backward(grad_output, nullptr); }

void Variable::backward(const Tensor& grad_output, const std::function<void(const Variable& leaf)>& leaf_ready) {
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

  // Uses of each leaf still to pass their gradient back, when someone waits for leaves.
  std::unordered_map<const detail::Node*, int> uses;
  auto is_waited_leaf = [](const Variable& v) { return v.node_ != nullptr && v.node_->requires_grad && v.node_->inputs.empty(); };
  if (leaf_ready)
    for (const auto& node : order)
      for (const Variable& in : node->inputs)
        if (is_waited_leaf(in)) ++uses[in.node_.get()];
  auto passed = [&](detail::Node* node) {
    if (!leaf_ready) return;
    for (const Variable& in : node->inputs)
      if (is_waited_leaf(in) && --uses[in.node_.get()] == 0) leaf_ready(in);
  };

  flush_pending();
  add_grad(grad_output);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    detail::Node* node = it->get();
    if (!node->grad.defined()) {  // no path carried a gradient here
      passed(node);
      continue;
    }
    Tensor grad = std::move(node->grad);
    node->grad = Tensor();
    if (g_profile != nullptr) {
      const auto t0 = Clock::now();
      node->backward(grad, node->inputs);
      g_profile->ops[op_name(*node)].backward_ms += ms_since(t0);
    } else {
      node->backward(grad, node->inputs);
    }
    passed(node);
    // Free the graph behind this node: its inputs and the tensors its closure holds.
    node->backward = nullptr;
    node->inputs.clear();
    node->freed = true;
  }
}

Variable Variable::detach() const { return Variable(data(), false); }

}  // namespace neurite::autograd
