#include "engine/views.h"

#include <algorithm>

#include "engine/lowering.h"

namespace neurite::engine::detail {

int64_t StridedView::size(size_t d) const {
  int64_t n = 1;
  for (const Axis& a : dims[d]) n *= a.size;
  return n;
}

std::optional<int64_t> StridedView::stride(size_t d) const {
  if (dims[d].empty()) return 1;  // size 1: any stride
  if (dims[d].size() > 1) return std::nullopt;
  return dims[d][0].stride;
}

namespace {

// Merges neighbouring axes of each dimension that are contiguous with each other.
void merge_axes(StridedView& v) {
  for (auto& axes : v.dims) {
    std::vector<Axis> merged;
    for (const Axis& a : axes) {
      if (!merged.empty() && merged.back().stride == a.size * a.stride) {
        merged.back() = {merged.back().size * a.size, a.stride};
      } else {
        merged.push_back(a);
      }
    }
    axes = std::move(merged);
  }
}

// The same elements with shape `to`: the axes, outer first, regrouped into
// the new dimensions, an axis split where a dimension ends inside it. false
// when a dimension would end between the steps of no axis.
bool reshape(StridedView& v, const Shape& to) {
  Shape from;
  for (size_t d = 0; d < v.dims.size(); ++d) from.push_back(v.size(d));
  if (autograd::numel(to) != autograd::numel(from) || autograd::numel(to) == 0) return false;
  std::vector<Axis> axes;
  for (const auto& dim : v.dims)
    for (const Axis& a : dim)
      if (a.size != 1) axes.push_back(a);
  std::vector<std::vector<Axis>> dims(to.size());
  size_t next = 0;
  for (size_t d = 0; d < to.size(); ++d) {
    int64_t need = to[d];
    while (need > 1) {
      if (next >= axes.size()) return false;
      Axis& a = axes[next];
      if (need % a.size == 0) {  // the whole axis
        dims[d].push_back(a);
        need /= a.size;
        ++next;
      } else if (a.size % need == 0) {  // its outer part; the inner part stays for the next dimension
        dims[d].push_back({need, a.stride * (a.size / need)});
        a.size /= need;
        need = 1;
      } else {
        return false;
      }
    }
  }
  v.dims = std::move(dims);
  merge_axes(v);
  return true;
}

// Applies node n (a link of a chain) to the view; false when the result is no view.
bool apply(const Lowering& l, const Node& n, StridedView& v) {
  const Graph& g = l.g;
  const Shape& out = g.values.at(n.outputs[0]).shape;
  switch (n.op) {
    case OpKind::transpose: {
      std::vector<int64_t> perm = n.integers("perm");
      if (perm.empty())
        for (size_t d = v.dims.size(); d-- > 0;) perm.push_back(static_cast<int64_t>(d));
      if (perm.size() != v.dims.size()) return false;
      std::vector<std::vector<Axis>> dims;
      for (int64_t p : perm) dims.push_back(v.dims[static_cast<size_t>(p)]);
      v.dims = std::move(dims);
      return true;
    }
    case OpKind::slice: {
      Shape in;
      for (size_t d = 0; d < v.dims.size(); ++d) in.push_back(v.size(d));
      const auto sliced = constant_slice(g, n, in);
      if (!sliced || out.size() != v.dims.size()) return false;
      for (const SlicedAxis& s : *sliced) {
        const auto stride = v.stride(s.axis);
        if (!stride) return false;
        v.offset += s.start * *stride;
        v.dims[s.axis] = {{out[s.axis], *stride * s.step}};
      }
      for (size_t d = 0; d < out.size(); ++d)
        if (v.size(d) != out[d]) return false;
      return true;
    }
    case OpKind::reshape:
    case OpKind::squeeze:
    case OpKind::unsqueeze:
    case OpKind::flatten:
    case OpKind::identity: return reshape(v, out);
    case OpKind::mul:
    case OpKind::div: {
      const Tensor* c = g.constant(n.inputs[n.op == OpKind::mul && g.constant(n.inputs[1]) == nullptr ? 0 : 1]);
      if (c == nullptr || c->numel() != 1 || c->dtype() != autograd::Dtype::f32 || out.size() != v.dims.size()) return false;
      v.scale = n.op == OpKind::mul ? v.scale * c->data<float>()[0] : v.scale / c->data<float>()[0];
      return true;
    }
    default: return false;
  }
}

// The input of node n that a chain runs through, or "" when n is no link.
std::string data_input(const Lowering& l, const Node& n) {
  switch (n.op) {
    case OpKind::transpose:
    case OpKind::slice:
    case OpKind::reshape:
    case OpKind::squeeze:
    case OpKind::unsqueeze:
    case OpKind::flatten:
    case OpKind::identity: return n.inputs[0];
    case OpKind::mul:  // by a constant on either side
      if (l.constants.count(n.inputs[1]) != 0) return n.inputs[0];
      return l.constants.count(n.inputs[0]) != 0 ? n.inputs[1] : "";
    case OpKind::div: return l.constants.count(n.inputs[1]) != 0 ? n.inputs[0] : "";
    default: return "";
  }
}

}  // namespace

std::optional<std::vector<SlicedAxis>> constant_slice(const Graph& g, const Node& n, const Shape& in) {
  const bool has_axes = n.inputs.size() > 3 && !n.inputs[3].empty(), has_steps = n.inputs.size() > 4 && !n.inputs[4].empty();
  const Tensor* starts = g.constant(n.inputs[1]);
  const Tensor* axes = has_axes ? g.constant(n.inputs[3]) : nullptr;
  const Tensor* steps = has_steps ? g.constant(n.inputs[4]) : nullptr;
  if (starts == nullptr || (has_axes && axes == nullptr) || (has_steps && steps == nullptr)) return std::nullopt;
  const auto rank = static_cast<int64_t>(in.size());
  std::vector<SlicedAxis> out;
  for (int64_t i = 0; i < starts->numel(); ++i) {
    int64_t a = axes != nullptr ? axes->data<int64_t>()[i] : i;
    a = a < 0 ? a + rank : a;
    const int64_t step = steps != nullptr ? steps->data<int64_t>()[i] : 1;
    if (a < 0 || a >= rank || step < 1) return std::nullopt;
    const int64_t size = in[static_cast<size_t>(a)], start = starts->data<int64_t>()[i];
    out.push_back({static_cast<size_t>(a), std::clamp<int64_t>(start < 0 ? start + size : start, 0, size), step});
  }
  return out;
}

StridedView read_view_of_itself(const Lowering& l, const std::string& value) {
  const Shape& shape = l.g.values.at(value).shape;
  StridedView v{.base = value, .offset = 0, .dims = std::vector<std::vector<Axis>>(shape.size()), .scale = 1, .nodes = {}};
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1) v.dims[d] = {{shape[d], stride}};
    stride *= shape[d];
  }
  return v;
}

StridedView read_view(const Lowering& l, const std::string& value) {
  // The chain, from `value` back.
  std::vector<size_t> chain;
  std::string at = value;
  while (true) {
    const auto p = l.index.producer(at);
    if (!p || l.done[*p] || l.index.readers(at) != 1 || l.g.values.at(at).type != DataType::float32) break;
    const std::string from = data_input(l, l.g.nodes[*p]);
    if (from.empty()) break;
    chain.push_back(*p);
    at = from;
  }
  std::reverse(chain.begin(), chain.end());
  // The longest tail of the chain that is a view of its start.
  for (size_t first = 0; first < chain.size(); ++first) {
    StridedView v = read_view_of_itself(l, l.g.nodes[chain[first]].inputs[0]);
    bool ok = true;
    for (size_t k = first; ok && k < chain.size(); ++k) ok = apply(l, l.g.nodes[chain[k]], v);
    if (ok) {
      v.nodes.assign(chain.begin() + static_cast<std::ptrdiff_t>(first), chain.end());
      return v;
    }
  }
  return read_view_of_itself(l, value);
}

std::optional<StridedView> write_view(const Lowering& l, const std::string& value) {
  const auto c = l.index.sole_consumer(value);
  if (!c || l.done[*c] || l.g.nodes[*c].op != OpKind::transpose) return std::nullopt;
  const Node& t = l.g.nodes[*c];
  const Shape& dims = l.g.values.at(value).shape;
  const std::vector<int64_t> perm = t.integers("perm");
  if (perm.size() != dims.size() || perm.back() != static_cast<int64_t>(dims.size()) - 1) return std::nullopt;
  StridedView v = read_view_of_itself(l, t.outputs[0]);
  std::vector<std::vector<Axis>> axes(dims.size());
  for (size_t d = 0; d < perm.size(); ++d) axes[static_cast<size_t>(perm[d])] = v.dims[d];
  v.dims = std::move(axes);
  v.nodes = {*c};
  return v;
}

}  // namespace neurite::engine::detail
