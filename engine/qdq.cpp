#include "engine/qdq.h"

#include <fmt/format.h>

#include <cmath>

#include "neurite/error.h"

namespace neurite::engine::detail {

using autograd::Dtype;

QdqGrids qdq_grids(const Node& n, const Tensor& scale, const Tensor& zero_point, const Shape& shape, autograd::Dtype type) {
  const std::string where = fmt::format("node '{}' ({})", n.name, op_info(n.op).onnx);
  check<DtypeError>(scale.dtype() == Dtype::f32, "{}: the scale is {}, expected float32", where,
                    autograd::to_string(scale.dtype()));
  check<ShapeError>(scale.dim() <= 1, "{}: the scale is {}, expected a scalar or 1-D", where,
                    autograd::to_string(scale.shape()));
  QdqGrids g;
  check<DtypeError>(type == Dtype::i8 || type == Dtype::u8, "{}: the quantised values are {}, expected int8 or uint8",
                    where, autograd::to_string(type));
  g.type = type;
  if (zero_point.defined()) {
    check<DtypeError>(zero_point.dtype() == Dtype::i8 || zero_point.dtype() == Dtype::u8,
                      "{}: the zero point is {}, expected int8 or uint8", where, autograd::to_string(zero_point.dtype()));
    check<ShapeError>(zero_point.shape() == scale.shape(), "{}: the zero point is {} and the scale {}: they must match",
                      where, autograd::to_string(zero_point.shape()), autograd::to_string(scale.shape()));
    g.type = zero_point.dtype();
  }
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (scale.dim() == 1 && scale.numel() != 1) {  // one value in 1-D: per tensor, as ONNX Runtime reads it
    int64_t axis = n.integer("axis", 1);
    check<ValueError>(axis >= -rank && axis < rank, "{}: axis {} is out of range for an input of rank {}", where, axis,
                      rank);
    g.axis = axis < 0 ? axis + rank : axis;
    check<ShapeError>(shape[g.axis] < 0 || shape[g.axis] == scale.numel(),
                      "{}: {} scales for axis {} of an input {}", where, scale.numel(), g.axis, autograd::to_string(shape));
  }
  const bool is_signed = g.type == Dtype::i8;
  for (int64_t c = 0; c < scale.numel(); ++c) {
    const float s = scale.data<float>()[c];
    check<ValueError>(s > 0 && std::isfinite(s), "{}: scale {} at {} is not a positive finite number", where, s, c);
    const int32_t zp = !zero_point.defined() ? 0
                       : is_signed           ? zero_point.data<int8_t>()[c]
                                             : zero_point.data<uint8_t>()[c];
    g.grids.push_back({.scale = s, .zero_point = zp, .qmin = is_signed ? -128 : 0, .qmax = is_signed ? 127 : 255});
  }
  return g;
}

Tensor quantize_linear(const QdqGrids& g, const Tensor& x) {
  Tensor q = Tensor::empty(x.shape(), g.type);
  kernels::for_each_channel_run(x.shape(), g.axis, [&](int64_t c, int64_t at, int64_t n) {
    if (g.type == Dtype::i8) kernels::quantize(g.grids[c], x.data<float>() + at, q.data<int8_t>() + at, n);
    else kernels::quantize(g.grids[c], x.data<float>() + at, q.data<uint8_t>() + at, n);
  });
  return q;
}

Tensor dequantize_linear(const QdqGrids& g, const Tensor& q) {
  check<DtypeError>(q.dtype() == g.type, "DequantizeLinear: the input is {}, its zero point {}",
                    autograd::to_string(q.dtype()), autograd::to_string(g.type));
  Tensor y = Tensor::empty(q.shape());
  kernels::for_each_channel_run(q.shape(), g.axis, [&](int64_t c, int64_t at, int64_t n) {
    if (g.type == Dtype::i8) kernels::dequantize(g.grids[c], q.data<int8_t>() + at, y.data<float>() + at, n);
    else kernels::dequantize(g.grids[c], q.data<uint8_t>() + at, y.data<float>() + at, n);
  });
  return y;
}

void fake_quantize(const QdqGrids& g, const float* x, float* y, const Shape& shape) {
  kernels::for_each_channel_run(shape, g.axis,
                                [&](int64_t c, int64_t at, int64_t n) { kernels::fake_quantize(g.grids[c], x + at, y + at, n); });
}

bool same_grids(const QdqGrids& a, const QdqGrids& b) {
  if (a.axis != b.axis || a.type != b.type || a.grids.size() != b.grids.size()) return false;
  for (size_t c = 0; c < a.grids.size(); ++c)
    if (a.grids[c].scale != b.grids[c].scale || a.grids[c].zero_point != b.grids[c].zero_point) return false;
  return true;
}

std::map<std::string, QuantizedWeight> quantized_weights(const Graph& g) {
  std::map<std::string, const Node*> producer;
  for (const Node& n : g.nodes)
    for (const auto& out : n.outputs) producer[out] = &n;
  auto constant = [&](const Node& n, size_t k) -> const Tensor* {
    return k < n.inputs.size() && !n.inputs[k].empty() ? g.constant(n.inputs[k]) : nullptr;
  };
  std::map<std::string, QuantizedWeight> out;
  for (const Node& dq : g.nodes) {
    if (dq.op != OpKind::dequantize_linear) continue;
    const Tensor* scale = constant(dq, 1);
    const Tensor* zero_point = constant(dq, 2);
    if (scale == nullptr || (dq.inputs.size() > 2 && !dq.inputs[2].empty() && zero_point == nullptr)) continue;
    Tensor q;
    if (const Tensor* c = constant(dq, 0)) {
      q = *c;
    } else if (auto it = producer.find(dq.inputs[0]); it != producer.end() && it->second->op == OpKind::quantize_linear) {
      const Node& qn = *it->second;
      const Tensor* w = constant(qn, 0);
      const Tensor* qs = constant(qn, 1);
      const Tensor* qz = constant(qn, 2);
      if (w == nullptr || qs == nullptr || w->dtype() != autograd::Dtype::f32) continue;
      q = quantize_linear(qdq_grids(qn, *qs, qz != nullptr ? *qz : Tensor(), w->shape()), *w);
    } else {
      continue;
    }
    if (q.dtype() != autograd::Dtype::i8) continue;
    QdqGrids grids = qdq_grids(dq, *scale, zero_point != nullptr ? *zero_point : Tensor(), q.shape(), q.dtype());
    Tensor floats = dequantize_linear(grids, q);
    out.emplace(dq.outputs[0], QuantizedWeight{std::move(q), std::move(grids), std::move(floats)});
  }
  // Transposed matrices too (a traced MatMul reads Wᵀ): the grids' axis moves.
  for (size_t i : g.topological_order()) {
    const Node& t = g.nodes[i];
    auto it = t.op == OpKind::transpose ? out.find(t.inputs[0]) : out.end();
    if (it == out.end() || it->second.q.dim() != 2 || t.integers("perm", {1, 0}) != std::vector<int64_t>{1, 0}) continue;
    QuantizedWeight w{it->second.q.transpose(0, 1), it->second.grids, it->second.dequantized.transpose(0, 1)};
    if (w.grids.axis >= 0) w.grids.axis = 1 - w.grids.axis;
    out.emplace(t.outputs[0], std::move(w));
  }
  return out;
}

std::pair<Tensor, Tensor> onnx_grids(const Tensor& scale, const Tensor& zero_point, int64_t qmin, int64_t qmax,
                                     bool per_axis, const std::string& where) {
  check<ValueError>((qmin == -128 && qmax == 127) || (qmin == 0 && qmax == 255),
                    "{}: grids of [{}, {}] have no QuantizeLinear; ONNX quantises to int8 [-128, 127] or uint8 [0, 255]",
                    where, qmin, qmax);
  const autograd::Shape shape = per_axis ? scale.shape() : autograd::Shape{};
  Tensor zp = Tensor::empty(shape, qmin < 0 ? Dtype::i8 : Dtype::u8);
  for (int64_t c = 0; c < zp.numel(); ++c) {
    const int64_t v = zero_point.data<int64_t>()[c];
    if (qmin < 0) zp.data<int8_t>()[c] = static_cast<int8_t>(v);
    else zp.data<uint8_t>()[c] = static_cast<uint8_t>(v);
  }
  return {scale.reshape(shape).clone(), zp};
}

}  // namespace neurite::engine::detail
