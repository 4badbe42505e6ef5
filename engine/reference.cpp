#include "neurite/engine/reference.h"

#include <fmt/format.h>

#include "neurite/autograd/error.h"
#include "neurite/autograd/ops.h"

namespace neurite::engine {

namespace {

using autograd::Variable;

// ONNX pads [h_begin, w_begin, h_end, w_end]: our kernels pad both sides alike.
std::pair<int64_t, int64_t> symmetric_pads(const Node& n) {
  const auto pads = n.integers("pads", {0, 0, 0, 0});
  check(pads.size() == 4 && pads[0] == pads[2] && pads[1] == pads[3],
        "reference executor: node '{}' has pads {}, only symmetric 2-D padding is supported", n.name,
        autograd::to_string(pads));
  return {pads[0], pads[1]};
}

autograd::Pool2dOptions pool_options(const Node& n) {
  const auto kernel = n.integers("kernel_shape"), strides = n.integers("strides", kernel);
  check(kernel.size() == 2 && n.integer("ceil_mode", 0) == 0,
        "reference executor: node '{}' pools over {} dimensions with ceil_mode {}, only 2-D floor mode is supported",
        n.name, kernel.size(), n.integer("ceil_mode", 0));
  const auto [ph, pw] = symmetric_pads(n);
  return {.kernel_h = kernel[0], .kernel_w = kernel[1], .stride_h = strides[0], .stride_w = strides[1], .pad_h = ph,
          .pad_w = pw, .count_include_pad = n.integer("count_include_pad", 0) != 0};
}

// The node's axis attribute, counted from the front.
int64_t axis_of(const Node& n, const std::string& name, int64_t fallback, size_t rank) {
  const int64_t axis = n.integer(name, fallback);
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

// Reshape's target: 0 copies the input's dimension, -1 takes what is left.
Shape reshape_target(const Shape& in, Shape target) {
  for (size_t k = 0; k < target.size(); ++k)
    if (target[k] == 0 && k < in.size()) target[k] = in[k];
  return target;
}

Variable run_node(const Graph& g, const Node& n, const std::vector<Variable>& in) {
  auto arg = [&](size_t i) { return i < in.size() ? in[i] : Variable(); };
  switch (n.op) {
    case OpKind::add: return add(in[0], in[1]);
    case OpKind::sub: return sub(in[0], in[1]);
    case OpKind::mul: return mul(in[0], in[1]);
    case OpKind::div: return div(in[0], in[1]);
    case OpKind::relu: return relu(in[0]);
    case OpKind::sigmoid: return sigmoid(in[0]);
    case OpKind::tanh: return tanh(in[0]);
    case OpKind::sqrt: return sqrt(in[0]);
    case OpKind::identity:
    case OpKind::dropout: return in[0];
    case OpKind::softmax: return softmax(in[0], n.integer("axis", -1));
    case OpKind::matmul: return matmul(in[0], in[1]);
    case OpKind::gemm: {
      Variable a = n.integer("transA", 0) != 0 ? transpose(in[0], 0, 1) : in[0];
      Variable b = n.integer("transB", 0) != 0 ? transpose(in[1], 0, 1) : in[1];
      Variable y = matmul(a, b);
      if (const double alpha = n.real("alpha", 1.0); alpha != 1.0) y = mul(y, static_cast<float>(alpha));
      if (arg(2).defined()) y = add(y, mul(in[2], static_cast<float>(n.real("beta", 1.0))));
      return y;
    }
    case OpKind::conv: {
      const auto strides = n.integers("strides", {1, 1}), dilations = n.integers("dilations", {1, 1});
      const auto [ph, pw] = symmetric_pads(n);
      return conv2d(in[0], in[1], arg(2),
                    {.stride_h = strides[0], .stride_w = strides[1], .pad_h = ph, .pad_w = pw,
                     .dilation_h = dilations[0], .dilation_w = dilations[1], .groups = n.integer("group", 1)});
    }
    case OpKind::batch_norm: {
      Tensor mean = in[3].data(), var = in[4].data();
      return batch_norm(in[0], in[1], in[2], mean, var,
                        {.training = false, .eps = static_cast<float>(n.real("epsilon", 1e-5))});
    }
    case OpKind::layer_norm: {
      const Shape& x = in[0].shape();
      return layer_norm(in[0], Shape(x.begin() + axis_of(n, "axis", -1, x.size()), x.end()), in[1], arg(2),
                        static_cast<float>(n.real("epsilon", 1e-5)));
    }
    case OpKind::max_pool: return max_pool2d(in[0], pool_options(n));
    case OpKind::average_pool: return avg_pool2d(in[0], pool_options(n));
    case OpKind::global_average_pool: return adaptive_avg_pool2d(in[0], 1, 1);
    case OpKind::flatten: {  // (prod of dims before axis, prod of the rest)
      const Shape& x = in[0].shape();
      int64_t outer = 1;
      for (int64_t k = 0; k < axis_of(n, "axis", 1, x.size()); ++k) outer *= x[k];
      return reshape(in[0], {outer, outer > 0 ? in[0].numel() / outer : 0});
    }
    case OpKind::reshape: {
      const Tensor* target = g.constant(n.inputs[1]);
      check(target != nullptr, "reference executor: node '{}' reshapes to a computed shape", n.name);
      return reshape(in[0], reshape_target(in[0].shape(), Shape(target->data<int64_t>(),
                                                                target->data<int64_t>() + target->numel())));
    }
    case OpKind::transpose: {
      Shape perm = n.integers("perm");
      if (perm.empty())
        for (int64_t k = in[0].dim() - 1; k >= 0; --k) perm.push_back(k);
      return permute(in[0], perm);
    }
    case OpKind::concat: return concat(in, n.integer("axis", 0));
    case OpKind::reduce_mean: return mean(in[0], n.integers("axes"), n.integer("keepdims", 1) != 0);
    default:
      throw ValueError(fmt::format("reference executor: node '{}' ({}) is not implemented yet", n.name,
                                   op_info(n.op).onnx));
  }
}

}  // namespace

std::map<std::string, Tensor> run_reference(const Graph& graph, const std::map<std::string, Tensor>& inputs) {
  graph.validate();
  autograd::NoGradGuard no_grad;
  std::map<std::string, Variable> values;
  for (const auto& [name, t] : graph.initializers) values[name] = Variable(t);
  for (const ValueInfo& v : graph.inputs) {
    auto it = inputs.find(v.name);
    check<ShapeError>(it != inputs.end(), "reference executor: graph input '{}' is not given", v.name);
    const Shape& s = it->second.shape();
    bool fits = s.size() == v.shape.size();
    for (size_t k = 0; fits && k < s.size(); ++k) fits = v.shape[k] < 0 || v.shape[k] == s[k];
    check<ShapeError>(fits, "reference executor: input '{}' is {}, the graph expects {}", v.name,
                      autograd::to_string(s), autograd::to_string(v.shape));
    values[v.name] = Variable(it->second);
  }
  for (size_t i : graph.topological_order()) {
    const Node& n = graph.nodes[i];
    std::vector<Variable> in;
    for (const auto& name : n.inputs) in.push_back(name.empty() ? Variable() : values.at(name));
    values[n.outputs.at(0)] = run_node(graph, n, in);
  }
  std::map<std::string, Tensor> out;
  for (const ValueInfo& v : graph.outputs) out.emplace(v.name, values.at(v.name).data());
  return out;
}

}  // namespace neurite::engine
