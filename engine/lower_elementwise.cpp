// Lowering of elementwise ops into ElementwiseSteps, with numpy broadcasting:
// over float tensors Add, Sub, Mul, Div, Pow, activations and math functions;
// over masks and indices Where, Equal, Not, Cast and Expand.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "engine/lowering.h"
#include "engine/steps.h"

namespace neurite::engine::detail {

namespace {

using kernels::BinaryOp;
using kernels::UnaryOp;

std::optional<BinaryOp> binary_op(OpKind op) {
  switch (op) {
    case OpKind::add: return BinaryOp::add;
    case OpKind::sub: return BinaryOp::sub;
    case OpKind::mul: return BinaryOp::mul;
    case OpKind::div: return BinaryOp::div;
    case OpKind::pow: return BinaryOp::pow;
    default: return std::nullopt;
  }
}

// The unary map of node n; nullopt for a Clip with bounds not known at compile time.
std::optional<kernels::Unary> unary_op(const Lowering& l, const Node& n) {
  switch (n.op) {
    case OpKind::relu: return kernels::Unary{.op = UnaryOp::relu};
    case OpKind::sigmoid: return kernels::Unary{.op = UnaryOp::sigmoid};
    case OpKind::tanh: return kernels::Unary{.op = UnaryOp::tanh};
    case OpKind::sqrt: return kernels::Unary{.op = UnaryOp::sqrt};
    case OpKind::erf: return kernels::Unary{.op = UnaryOp::erf};
    case OpKind::exp: return kernels::Unary{.op = UnaryOp::exp};
    case OpKind::neg: return kernels::Unary{.op = UnaryOp::neg};
    case OpKind::reciprocal: return kernels::Unary{.op = UnaryOp::reciprocal};
    case OpKind::gelu: {
      const auto* a = n.has("approximate") ? std::get_if<std::string>(&n.attributes.at("approximate")) : nullptr;
      if (a != nullptr && *a != "none" && *a != "tanh") return std::nullopt;
      return kernels::Unary{.op = a != nullptr && *a == "tanh" ? UnaryOp::gelu_tanh : UnaryOp::gelu};
    }
    case OpKind::clip: {
      kernels::Unary f{.op = UnaryOp::clip, .lo = -std::numeric_limits<float>::infinity(),
                       .hi = std::numeric_limits<float>::infinity()};
      for (size_t k = 1; k < 3 && k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        const Tensor* t = l.g.constant(n.inputs[k]);
        if (t == nullptr || t->numel() != 1 || t->dtype() != autograd::Dtype::f32) return std::nullopt;
        (k == 1 ? f.lo : f.hi) = t->data<float>()[0];
      }
      return f;
    }
    default: return std::nullopt;
  }
}

// The typed op of node n and its operand count; nullopt for types it does not take.
std::optional<std::pair<TypedOp, size_t>> typed_op(const Graph& g, const Node& n, bool& to_bool) {
  auto type = [&](size_t k) { return g.values.at(n.inputs[k]).type; };
  auto is_float = [&](size_t k) { return type(k) == DataType::float32; };
  switch (n.op) {
    case OpKind::where:
      if (is_float(0) || type(1) != type(2)) return std::nullopt;
      return std::pair{TypedOp::where, size_t{3}};
    case OpKind::equal:
      if (type(0) != type(1)) return std::nullopt;
      return std::pair{TypedOp::equal, size_t{2}};
    case OpKind::logical_not:
      if (is_float(0)) return std::nullopt;
      return std::pair{TypedOp::logical_not, size_t{1}};
    case OpKind::cast: {
      const int64_t to = n.integer("to", 1);  // FLOAT, INT64, BOOL; others: the reference names the error
      if (to != 1 && to != 7 && to != 9) return std::nullopt;
      to_bool = to == 9;
      return std::pair{TypedOp::cast, size_t{1}};
    }
    case OpKind::expand: return std::pair{TypedOp::expand, size_t{1}};
    default: return std::nullopt;
  }
}

}  // namespace

std::unique_ptr<Step> lower_elementwise(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const ValueInfo& out = g.values.at(n.outputs[0]);
  if (out.shape.empty()) return nullptr;
  auto step = std::make_unique<ElementwiseStep>();
  size_t operands = 1;
  if (auto op = binary_op(n.op)) {
    step->kind = ElementwiseStep::Kind::binary;
    step->binary = *op;
    operands = 2;
  } else if (auto f = unary_op(l, n)) {
    step->unary = *f;
  } else if (auto typed = typed_op(g, n, step->to_bool)) {
    step->kind = ElementwiseStep::Kind::typed;
    std::tie(step->typed, operands) = *typed;
  } else {
    return nullptr;
  }
  for (size_t k = 0; k < operands; ++k) {
    const DataType t = g.values.at(n.inputs[k]).type;
    if (step->kind != ElementwiseStep::Kind::typed && t != DataType::float32) return nullptr;
    if (t == DataType::int8 || t == DataType::uint8) return nullptr;  // typed steps read float and int64
    step->types.push_back(storage_of(t));
  }
  if (step->kind != ElementwiseStep::Kind::typed && out.type != DataType::float32) return nullptr;
  if (out.type == DataType::int8 || out.type == DataType::uint8) return nullptr;
  step->types.push_back(storage_of(out.type));

  // Per input and output dimension: whether it broadcasts there (numpy: shapes aligned at the right).
  const Shape& os = out.shape;
  const size_t rank = os.size();
  std::vector<std::vector<bool>> broadcast(operands, std::vector<bool>(rank, false));
  for (size_t k = 0; k < operands; ++k) {
    const Shape& s = g.values.at(n.inputs[k]).shape;
    for (size_t d = 0; d < rank; ++d) {
      const size_t from_right = rank - d;
      broadcast[k][d] = from_right > s.size() || (s[s.size() - from_right] == 1 && os[d] != 1);
    }
  }
  // Collapse: drop size-1 dimensions after the first, merge neighbours that broadcast alike.
  std::vector<int64_t> dims{os[0]};
  std::vector<std::vector<bool>> kinds(operands, std::vector<bool>{broadcast[0][0]});
  for (size_t k = 0; k < operands; ++k) kinds[k][0] = broadcast[k][0];
  for (size_t d = 1; d < rank; ++d) {
    if (os[d] == 1) continue;
    bool alike = dims.size() > 1;
    for (size_t k = 0; alike && k < operands; ++k) alike = kinds[k].back() == broadcast[k][d];
    if (alike) {
      dims.back() *= os[d];
    } else {
      dims.push_back(os[d]);
      for (size_t k = 0; k < operands; ++k) kinds[k].push_back(broadcast[k][d]);
    }
  }
  if (dims.size() == 1) {  // a rank-1 output: one row
    dims.insert(dims.begin(), 1);
    for (auto& kind : kinds) kind.insert(kind.begin(), true);
  }
  step->dims = dims;
  step->strides.assign(operands, std::vector<int64_t>(dims.size(), 0));
  for (size_t k = 0; k < operands; ++k) {
    int64_t stride = 1;
    for (size_t d = dims.size(); d-- > 0;) {
      if (kinds[k][d]) continue;
      step->strides[k][d] = stride;
      stride *= dims[d];
    }
  }
  const int64_t inner = dims.back(), rows = autograd::numel(os) / std::max<int64_t>(inner, 1);
  step->chunks_per_row = std::max<int64_t>(1, (inner + ElementwiseStep::kChunk - 1) / ElementwiseStep::kChunk);
  step->units = rows * step->chunks_per_row;
  const int64_t batch = l.plan.batch;
  step->sliceable = os[0] == batch && dims[0] == batch && rank > 1;
  step->units_per_item = step->sliceable ? step->units / batch : step->units;
  for (size_t k = 0; k < operands; ++k) step->inputs.push_back(l.id(n.inputs[k]));
  step->outputs = {l.id(n.outputs[0])};
  std::string_view what;
  switch (step->kind) {
    case ElementwiseStep::Kind::unary: what = kernels::to_string(step->unary.op); break;
    case ElementwiseStep::Kind::binary: what = kernels::to_string(step->binary); break;
    case ElementwiseStep::Kind::typed: what = op_info(n.op).name; break;
  }
  step->info = {.name = n.name, .kernel = fmt::format("elementwise {}", what)};
  return step;
}

std::unique_ptr<Step> lower_fake_quantize(Lowering& l, const Node& q) {
  const Graph& g = l.g;
  // PyTorch's exporter narrows a range with a Clip of the 8-bit values between the two.
  const Node* clip = l.sole_consumer(q.outputs[0], OpKind::clip);
  int32_t lo = -128, hi = 255;
  if (clip != nullptr) {
    for (size_t k = 1; k < clip->inputs.size(); ++k) {
      if (clip->inputs[k].empty()) continue;
      const Tensor* bound = g.constant(clip->inputs[k]);
      if (bound == nullptr || bound->numel() != 1) return nullptr;
      (k == 1 ? lo : hi) = static_cast<int32_t>(bound->item());
    }
  }
  const std::string& quantized = clip != nullptr ? clip->outputs[0] : q.outputs[0];
  const Node* dq = l.sole_consumer(quantized, OpKind::dequantize_linear);
  if (dq == nullptr || dq->inputs[0] != quantized) return nullptr;
  auto grids_of = [&](const Node& n) -> std::optional<QdqGrids> {
    const Tensor* scale = g.constant(n.inputs[1]);
    const Tensor* zero_point = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.constant(n.inputs[2]) : nullptr;
    if (scale == nullptr || (n.inputs.size() > 2 && !n.inputs[2].empty() && zero_point == nullptr)) return std::nullopt;
    const ValueInfo& in = g.values.at(n.inputs[0]);
    return qdq_grids(n, *scale, zero_point != nullptr ? *zero_point : Tensor(), in.shape,
                     n.op == OpKind::dequantize_linear ? storage_of(in.type) : autograd::Dtype::u8);
  };
  const auto quantize = grids_of(q), dequantize = grids_of(*dq);
  const Shape& shape = g.values.at(q.inputs[0]).shape;
  if (!quantize || !dequantize || !same_grids(*quantize, *dequantize) || shape.empty() || quantize->axis == 0)
    return nullptr;
  QdqGrids grids = *quantize;
  for (kernels::QuantGrid& grid : grids.grids) {
    grid.qmin = std::max(grid.qmin, lo);
    grid.qmax = std::min(grid.qmax, hi);
  }
  // A product with an int8 weight takes the pair in: quantised once, into its INT8 kernel.
  const auto product = l.index.sole_consumer(dq->outputs[0]);
  if (product && grids.axis < 0) {
    const Node& p = g.nodes[*product];
    std::unique_ptr<Step> step;
    if (p.inputs[0] == dq->outputs[0] && !l.done[*product]) {
      if (p.op == OpKind::gemm || p.op == OpKind::matmul) step = lower_int8_linear(l, p, q.inputs[0], grids.grids[0]);
      if (p.op == OpKind::conv) step = lower_int8_conv(l, p, q.inputs[0], grids.grids[0]);
    }
    if (step) {
      if (clip != nullptr) l.consume(clip);
      l.consume(dq);
      return step;
    }
  }
  auto step = std::make_unique<FakeQuantizeStep>();
  step->grids = std::move(grids);
  if (step->grids.axis > 0) --step->grids.axis;
  step->item.assign(shape.begin() + 1, shape.end());
  step->units = shape[0];
  step->sliceable = shape[0] == l.plan.batch;
  step->units_per_item = step->sliceable ? 1 : step->units;
  step->inputs = {l.id(q.inputs[0])};
  step->outputs = {l.id(dq->outputs[0])};
  if (clip != nullptr) l.consume(clip);
  l.consume(dq);
  step->info = {.name = q.name,
                .kernel = fmt::format("fake quantize {} {}", autograd::to_string(step->grids.type),
                                      step->grids.axis < 0 ? "per tensor" : "per axis")};
  return step;
}

}  // namespace neurite::engine::detail
