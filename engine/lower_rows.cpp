// Lowering of the ops with kernels of their own and no weights: row kernels
// (softmax, layer norm, trailing means), batched products of activations,
// pooling, and copies (Transpose, Slice).
#include <fmt/format.h>

#include <algorithm>

#include "engine/lowering.h"
#include "engine/steps.h"

namespace neurite::engine::detail {

std::unique_ptr<Step> lower_rows(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const ValueInfo& x = g.values.at(n.inputs[0]);
  if (x.type != DataType::float32 || x.shape.empty()) return nullptr;
  const int64_t rank = static_cast<int64_t>(x.shape.size()), axis = n.integer("axis", -1);
  auto step = std::make_unique<RowStep>();
  step->n = x.shape.back();
  if (n.op == OpKind::reduce_mean || n.op == OpKind::global_average_pool) {
    // A mean over trailing axes: rows of their product.
    std::vector<int64_t> axes;
    if (n.op == OpKind::global_average_pool) {
      for (int64_t a = 2; a < rank; ++a) axes.push_back(a);
    } else {
      axes = n.integers("axes");
      if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
        const Tensor* t = g.constant(n.inputs[1]);
        if (t == nullptr) return nullptr;
        axes.assign(t->data<int64_t>(), t->data<int64_t>() + t->numel());
      }
    }
    if (axes.empty()) return nullptr;
    for (int64_t& a : axes) a = a < 0 ? a + rank : a;
    std::sort(axes.begin(), axes.end());
    const int64_t first = rank - static_cast<int64_t>(axes.size());
    step->n = 1;
    for (size_t i = 0; i < axes.size(); ++i) {
      if (axes[i] != first + static_cast<int64_t>(i)) return nullptr;
      step->n *= x.shape[static_cast<size_t>(axes[i])];
    }
    if (first == 0 || step->n == 0) return nullptr;
    step->kind = RowStep::Kind::mean;
  } else if (axis != -1 && axis != rank - 1) {
    return nullptr;
  }
  if (n.op == OpKind::softmax) step->kind = RowStep::Kind::softmax;
  if (n.op == OpKind::layer_norm) {
    step->kind = RowStep::Kind::layer_norm;
    for (size_t k = 1; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && l.index.readers(n.outputs[k]) > 0) return nullptr;  // Mean / InvStdDev read
    const Tensor* scale = g.constant(n.inputs[1]);
    const Tensor* bias = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.constant(n.inputs[2]) : nullptr;
    if (scale == nullptr || scale->numel() != step->n || (n.inputs.size() > 2 && !n.inputs[2].empty() && !bias))
      return nullptr;
    step->scale.assign(scale->data<float>(), scale->data<float>() + step->n);
    step->bias = bias ? std::vector<float>(bias->data<float>(), bias->data<float>() + step->n)
                      : std::vector<float>(static_cast<size_t>(step->n), 0.0f);
    step->epsilon = static_cast<float>(n.real("epsilon", 1e-5));
  }
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(n.outputs[0])};
  const int64_t rows = autograd::numel(x.shape) / step->n;
  step->sliceable = x.shape[0] == l.plan.batch && rank >= 2;
  step->units = rows;
  step->units_per_item = rows / l.plan.batch;
  const char* names[] = {"softmax rows", "layer_norm rows", "mean rows"};
  step->info = {.name = n.name, .kernel = names[static_cast<int>(step->kind)]};
  return step;
}

std::unique_ptr<Step> lower_batched_matmul(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  Engine::Plan& plan = l.plan;
  const ValueInfo &a = g.values.at(n.inputs[0]), &b = g.values.at(n.inputs[1]);
  const size_t rank = a.shape.size();
  if (a.type != DataType::float32 || b.type != DataType::float32 || rank < 3 || b.shape.size() != rank ||
      l.constants.count(n.inputs[1]))
    return nullptr;
  for (size_t d = 0; d + 2 < rank; ++d)
    if (a.shape[d] != b.shape[d]) return nullptr;  // broadcasting batches: the reference's case
  auto step = std::make_unique<BatchedMatMulStep>();
  step->m = a.shape[rank - 2], step->k = a.shape[rank - 1], step->n = b.shape[rank - 1];
  step->units = autograd::numel(a.shape) / (step->m * step->k);
  step->units_per_item = step->units / plan.batch;
  std::string b_name = n.inputs[1];
  // B = Transpose(X, perm swapping the last two axes), read by this alone: read X with transB.
  const auto from = l.index.producer(b_name);
  if (from && l.index.readers(b_name) == 1 && g.nodes[*from].op == OpKind::transpose) {
    const Node& t = g.nodes[*from];
    std::vector<int64_t> swap(rank);
    for (size_t d = 0; d < rank; ++d) swap[d] = static_cast<int64_t>(d);
    std::swap(swap[rank - 1], swap[rank - 2]);
    // The Transpose came first in topological order and became a step; now it is folded away.
    const Step* made = l.producer_step.count(b_name) ? l.producer_step.at(b_name) : nullptr;
    const auto it = std::find_if(plan.steps.begin(), plan.steps.end(), [&](const auto& s) { return s.get() == made; });
    if (t.integers("perm") == swap && made != nullptr && it != plan.steps.end() && (*it)->outputs.size() == 1) {
      plan.steps.erase(it);
      step->trans_b = true;
      b_name = t.inputs[0];
    }
  }
  step->inputs = {l.id(n.inputs[0]), l.id(b_name)};
  step->outputs = {l.id(n.outputs[0])};
  step->sliceable = a.shape[0] == plan.batch && step->units % plan.batch == 0;
  step->info = {.name = n.name, .kernel = fmt::format("batched matmul {}x{}x{}{}", step->m, step->k, step->n,
                                                       step->trans_b ? " (B transposed)" : "")};
  return step;
}

std::unique_ptr<Step> lower_pool(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const ValueInfo& x = g.values.at(n.inputs[0]);
  const Shape& ys = g.values.at(n.outputs[0]).shape;
  if (x.type != DataType::float32 || x.shape.size() != 4 || n.outputs.size() != 1) return nullptr;
  if (n.integer("ceil_mode", 0) != 0 || n.integers("dilations", {1, 1}) != std::vector<int64_t>{1, 1}) return nullptr;
  if (n.has("auto_pad") && std::get<std::string>(n.attributes.at("auto_pad")) != "NOTSET") return nullptr;
  const auto kernel = n.integers("kernel_shape"), strides = n.integers("strides", {1, 1});
  const auto pads = n.integers("pads", {0, 0, 0, 0});
  if (kernel.size() != 2 || strides.size() != 2 || pads.size() != 4) return nullptr;
  auto step = std::make_unique<PoolStep>();
  step->geo = {.batch = x.shape[0], .channels = x.shape[1], .height = x.shape[2], .width = x.shape[3],
               .filters = x.shape[1], .kh = kernel[0], .kw = kernel[1], .sh = strides[0], .sw = strides[1],
               .dh = 1, .dw = 1, .pad_top = pads[0], .pad_left = pads[1], .pad_bottom = pads[2],
               .pad_right = pads[3], .out_h = ys[2], .out_w = ys[3]};
  step->units = x.shape[0];
  step->is_max = n.op == OpKind::max_pool;
  step->include_pad = n.integer("count_include_pad", 0) != 0;
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(n.outputs[0])};
  step->sliceable = x.shape[0] == l.plan.batch;
  step->info = {.name = n.name, .kernel = fmt::format("{} {}x{}/{}", step->is_max ? "max pool" : "average pool",
                                                       kernel[0], kernel[1], strides[0])};
  return step;
}

std::unique_ptr<Step> lower_copy(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const ValueInfo& x = g.values.at(n.inputs[0]);
  const Shape& ys = g.values.at(n.outputs[0]).shape;
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (x.type != DataType::float32 || rank < 2) return nullptr;
  auto step = std::make_unique<CopyStep>();
  step->in_shape = x.shape;
  step->out_shape = ys;
  step->units = ys[0];
  if (n.op == OpKind::transpose) {
    step->perm = n.integers("perm");
    if (static_cast<int64_t>(step->perm.size()) != rank || step->perm.back() != rank - 1) return nullptr;
  } else {  // Slice: one constant axis, step 1
    if (n.inputs.size() < 4) return nullptr;
    const Tensor *starts = g.constant(n.inputs[1]), *axes = g.constant(n.inputs[3]);
    const Tensor* steps = n.inputs.size() > 4 && !n.inputs[4].empty() ? g.constant(n.inputs[4]) : nullptr;
    if (!starts || !axes || starts->numel() != 1 || axes->numel() != 1 || (n.inputs.size() > 4 && !n.inputs[4].empty() && !steps))
      return nullptr;
    if (steps && steps->data<int64_t>()[0] != 1) return nullptr;
    int64_t a = axes->data<int64_t>()[0];
    a = a < 0 ? a + rank : a;
    if (a < 0 || a >= rank) return nullptr;
    const int64_t size = x.shape[static_cast<size_t>(a)];
    int64_t b = starts->data<int64_t>()[0];
    b = std::clamp<int64_t>(b < 0 ? b + size : b, 0, size);
    step->axis = a, step->start = b;
  }
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(n.outputs[0])};
  step->sliceable = x.shape[0] == l.plan.batch && ys[0] == l.plan.batch &&
                    (n.op == OpKind::transpose ? step->perm[0] == 0 : step->axis != 0);
  step->info = {.name = n.name, .kernel = n.op == OpKind::transpose ? "copy transpose" : "copy slice"};
  return step;
}

}  // namespace neurite::engine::detail
