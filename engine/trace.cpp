// trace(Module): the records of a forward pass (autograd/trace.h) turned into
// graph nodes, one translation per autograd op.
#include "neurite/engine/trace.h"
#include "engine/qdq.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/trace.h"

namespace neurite::engine {

namespace {

using autograd::Dtype;
using autograd::OpRecord;
using autograd::TraceRecorder;
using autograd::Variable;
using autograd::to_string;
using engine::to_string;

// A recorded tensor is one value: its storage and its shape (reshape shares storage).
using ValueKey = std::tuple<const std::byte*, Shape, Dtype>;
ValueKey key_of(const Tensor& t) { return {t.bytes(), t.shape(), t.dtype()}; }

int64_t int_arg(const OpRecord& r, const char* name) { return std::get<int64_t>(r.args.at(name)); }
double real_arg(const OpRecord& r, const char* name) { return std::get<double>(r.args.at(name)); }
std::vector<int64_t> ints_arg(const OpRecord& r, const char* name) {
  return std::get<std::vector<int64_t>>(r.args.at(name));
}

Tensor int_tensor(const std::vector<int64_t>& values) {
  return Tensor::from_data({static_cast<int64_t>(values.size())}, values);
}

// One forward pass, run under a recorder.
struct Pass {
  TraceRecorder recorder;
  Tensor output;
  int64_t batch = 0;
};

Pass run_pass(layers::UnaryModule& module, const Tensor& input) {
  Pass pass;
  pass.batch = input.size(0);
  autograd::TraceGuard guard(pass.recorder);
  pass.output = module.forward(Variable(input)).data();
  return pass;
}

// Builds the graph from pass `a`; pass `b` (one more sample, when the batch
// is dynamic) tells which sizes follow the batch.
class GraphBuilder {
 public:
  GraphBuilder(Graph& g, const Pass& a, const Pass* b, std::string input_name)
      : g_(g), a_(a), b_(b), input_name_(std::move(input_name)) {}

  void name_value(const Tensor& t, const std::string& name) { names_[key_of(t)] = name; }
  void add_parameter(const Tensor& t, const std::string& name) { parameters_[key_of(t)] = {name, t}; }

  void emit(size_t index) {
    const OpRecord& r = a_.recorder.records[index];
    rb_ = b_ != nullptr ? &b_->recorder.records[index] : nullptr;
    r_ = &r;
    base_ = base_name(r);
    emitted_ = 0;
    names_[key_of(r.output)] = translate(r);
  }

  // The name of the forward pass's result, made an Identity when it is no op's output.
  std::string output_value(const Tensor& t) {
    auto it = names_.find(key_of(t));
    check<ValueError>(it != names_.end(), "trace: the forward pass returned a tensor no traced op made");
    return it->second;
  }

 private:
  // The module path of the record's first parameter input ("layer1.0.conv1"), else the op's name.
  std::string base_name(const OpRecord& r) {
    std::string base = r.op;
    for (const Tensor& t : r.inputs)
      if (auto it = parameters_.find(key_of(t)); t.defined() && it != parameters_.end()) {
        const std::string& p = it->second.first;
        base = p.substr(0, p.rfind('.') == std::string::npos ? p.size() : p.rfind('.'));
        break;
      }
    const int count = used_[base]++;
    return count == 0 ? base : fmt::format("{}_{}", base, count);
  }

  std::string where() const { return fmt::format("trace: op {} ({})", r_->op, base_); }

  // The value an input tensor is: a traced op's output, the graph input, a
  // parameter or buffer (made an initializer), or else a constant.
  std::string input(size_t k) {
    const Tensor& t = r_->inputs.at(k);
    if (auto it = names_.find(key_of(t)); it != names_.end()) return it->second;
    if (auto it = parameters_.find(key_of(t)); it != parameters_.end()) {
      g_.initializers.emplace(it->second.first, it->second.second);
      names_[key_of(t)] = it->second.first;
      return it->second.first;
    }
    if (rb_ != nullptr)
      check<ValueError>(rb_->inputs.at(k).shape() == t.shape(),
                        "{}: input {} is a tensor no op made whose shape follows the batch ({} at batch {}, {} at {}); "
                        "make it from a parameter with expand() so it can be traced",
                        where(), k, to_string(t.shape()), a_.batch, to_string(rb_->inputs.at(k).shape()), b_->batch);
    return constant(t.clone(), "constant");
  }

  std::string constant(Tensor t, const std::string& what) {
    std::string name = fmt::format("{}.{}", base_, what);
    for (int k = 1; g_.initializers.count(name) != 0; ++k) name = fmt::format("{}.{}_{}", base_, what, k);
    g_.initializers.emplace(name, std::move(t));
    return name;
  }

  std::string node(OpKind op, std::vector<std::string> inputs, std::map<std::string, Attribute> attributes = {}) {
    std::string name = emitted_++ == 0 ? base_ : fmt::format("{}/{}_{}", base_, op_info(op).onnx, emitted_ - 1);
    std::string out = name + ":0";
    g_.nodes.push_back({.op = op, .name = name, .inputs = std::move(inputs), .outputs = {out},
                        .attributes = std::move(attributes)});
    return out;
  }

  // A 1-D int64 shape whose entries equal to the batch (in both passes) come
  // from the input's shape at run time.
  std::string shape_value(const std::vector<int64_t>& a, const std::vector<int64_t>* b, const std::string& what) {
    if (b == nullptr || *b == a) return constant(int_tensor(a), what);
    std::vector<std::string> pieces;
    std::vector<int64_t> run;
    auto flush = [&] {
      if (!run.empty()) pieces.push_back(constant(int_tensor(run), what));
      run.clear();
    };
    for (size_t k = 0; k < a.size(); ++k) {
      if (a[k] == (*b)[k]) {
        run.push_back(a[k]);
        continue;
      }
      check<ValueError>(a[k] == a_.batch && (*b)[k] == b_->batch,
                        "{}: size {} of shape {} follows the batch but is not the batch size; trace with a fixed batch",
                        where(), k, to_string(a));
      flush();
      pieces.push_back(batch_size());
    }
    flush();
    return node(OpKind::concat, pieces, {{"axis", int64_t{0}}});
  }

  // [N] as a 1-D int64 value, from the graph input's shape (made once).
  std::string batch_size() {
    if (batch_size_.empty()) {
      const std::string saved = base_;
      const int saved_count = emitted_;
      base_ = "batch_size", emitted_ = 0;
      const std::string shape = node(OpKind::shape, {input_name_});
      batch_size_ = node(OpKind::slice, {shape, constant(int_tensor({0}), "starts"), constant(int_tensor({1}), "ends")});
      base_ = saved, emitted_ = saved_count;
    }
    return batch_size_;
  }

  // QuantizeLinear then DequantizeLinear on the grids the record was given:
  // one per tensor (a scalar scale) or per index of its axis; 8-bit only.
  std::string fake_quantize(const OpRecord& r) {
    const int64_t axis = int_arg(r, "axis");
    const auto [scale, zp] = detail::onnx_grids(r.inputs.at(1), r.inputs.at(2), int_arg(r, "quant_min"),
                                                int_arg(r, "quant_max"), axis >= 0, where());
    const std::string s = constant(scale, "scale"), z = constant(zp, "zero_point");
    std::map<std::string, Attribute> attributes;
    if (axis >= 0) attributes["axis"] = axis;
    return node(OpKind::dequantize_linear, {node(OpKind::quantize_linear, {input(0), s, z}, attributes), s, z}, attributes);
  }

  std::string scalar(double value, const std::string& what) {
    return constant(Tensor::scalar(static_cast<float>(value)), what);
  }

  std::string translate(const OpRecord& r) {
    const std::string& op = r.op;
    auto unary = [&](OpKind kind) { return node(kind, {input(0)}); };
    auto binary = [&](OpKind kind) { return node(kind, {input(0), input(1)}); };
    if (op == "add") return binary(OpKind::add);
    if (op == "sub") return binary(OpKind::sub);
    if (op == "mul") return binary(OpKind::mul);
    if (op == "div") return binary(OpKind::div);
    if (op == "matmul") return binary(OpKind::matmul);
    if (op == "add_scalar") return node(OpKind::add, {input(0), scalar(real_arg(r, "value"), "value")});
    if (op == "mul_scalar") return node(OpKind::mul, {input(0), scalar(real_arg(r, "value"), "value")});
    if (op == "pow") return node(OpKind::pow, {input(0), scalar(real_arg(r, "exponent"), "exponent")});
    if (op == "sqrt") return unary(OpKind::sqrt);
    if (op == "relu") return unary(OpKind::relu);
    if (op == "sigmoid") return unary(OpKind::sigmoid);
    if (op == "tanh") return unary(OpKind::tanh);
    if (op == "gelu") return gelu(int_arg(r, "tanh") != 0);
    if (op == "softmax") return node(OpKind::softmax, {input(0)}, {{"axis", int_arg(r, "dim")}});
    if (op == "mean") {
      std::map<std::string, Attribute> attributes{{"keepdims", int64_t{0}}};
      if (r.args.count("dims") != 0) {
        std::vector<int64_t> axes = ints_arg(r, "dims");
        for (int64_t& a : axes) a = autograd::normalize_dim(a, r.inputs[0].dim(), "mean");
        attributes = {{"axes", axes}, {"keepdims", int_arg(r, "keepdim")}};
      }
      return node(OpKind::reduce_mean, {input(0)}, attributes);
    }
    if (op == "linear") {
      std::vector<std::string> in{input(0), input(1)};
      if (r.inputs.size() > 2) in.push_back(input(2));
      if (r.inputs[0].dim() == 2) return node(OpKind::gemm, in, {{"transB", int64_t{1}}});
      std::string y = node(OpKind::matmul, {in[0], node(OpKind::transpose, {in[1]}, {{"perm", Shape{1, 0}}})});
      return in.size() > 2 ? node(OpKind::add, {y, in[2]}) : y;
    }
    if (op == "conv2d") {
      std::vector<std::string> in{input(0), input(1)};
      if (r.inputs.size() > 2 && r.inputs[2].defined()) in.push_back(input(2));
      const Shape& w = r.inputs[1].shape();
      return node(OpKind::conv, in,
                  {{"kernel_shape", Shape{w[2], w[3]}},
                   {"strides", Shape{int_arg(r, "stride_h"), int_arg(r, "stride_w")}},
                   {"pads", Shape{int_arg(r, "pad_h"), int_arg(r, "pad_w"), int_arg(r, "pad_h"), int_arg(r, "pad_w")}},
                   {"dilations", Shape{int_arg(r, "dilation_h"), int_arg(r, "dilation_w")}},
                   {"group", int_arg(r, "groups")}});
    }
    if (op == "max_pool2d" || op == "avg_pool2d") {
      std::map<std::string, Attribute> attributes{
          {"kernel_shape", Shape{int_arg(r, "kernel_h"), int_arg(r, "kernel_w")}},
          {"strides", Shape{int_arg(r, "stride_h"), int_arg(r, "stride_w")}},
          {"pads", Shape{int_arg(r, "pad_h"), int_arg(r, "pad_w"), int_arg(r, "pad_h"), int_arg(r, "pad_w")}}};
      if (op == "max_pool2d") return node(OpKind::max_pool, {input(0)}, attributes);
      attributes["count_include_pad"] = int_arg(r, "count_include_pad");
      return node(OpKind::average_pool, {input(0)}, attributes);
    }
    if (op == "adaptive_avg_pool2d") {
      const int64_t h = r.inputs[0].size(2), w = r.inputs[0].size(3), oh = int_arg(r, "out_h"), ow = int_arg(r, "out_w");
      if (oh == 1 && ow == 1) return node(OpKind::global_average_pool, {input(0)});
      check<ValueError>(h % oh == 0 && w % ow == 0,
                        "{}: adaptive pooling of {}x{} to {}x{} has uneven bins, which ONNX cannot express", where(), h,
                        w, oh, ow);
      return node(OpKind::average_pool, {input(0)},
                  {{"kernel_shape", Shape{h / oh, w / ow}}, {"strides", Shape{h / oh, w / ow}}});
    }
    if (op == "batch_norm") {
      check<ValueError>(int_arg(r, "training") == 0, "{}: batch norm in training mode cannot be traced", where());
      const int64_t channels = r.inputs[0].size(1);
      const std::string scale = r.inputs[1].defined() ? input(1) : constant(Tensor::ones({channels}), "scale");
      const std::string bias = r.inputs[2].defined() ? input(2) : constant(Tensor::zeros({channels}), "bias");
      return node(OpKind::batch_norm, {input(0), scale, bias, input(3), input(4)}, {{"epsilon", real_arg(r, "eps")}});
    }
    if (op == "layer_norm") {
      const int64_t dims = int_arg(r, "dims");
      const Shape normalized(r.inputs[0].shape().end() - dims, r.inputs[0].shape().end());
      const std::string scale = r.inputs[1].defined() ? input(1) : constant(Tensor::ones(normalized), "scale");
      std::vector<std::string> in{input(0), scale};
      if (r.inputs[2].defined()) in.push_back(input(2));
      return node(OpKind::layer_norm, in, {{"axis", -dims}, {"epsilon", real_arg(r, "eps")}});
    }
    if (op == "embedding") return node(OpKind::gather, {input(0), input(1)}, {{"axis", int64_t{0}}});
    if (op == "fake_quantize") return fake_quantize(r);
    if (op == "index_select") return node(OpKind::gather, {input(0), input(1)}, {{"axis", int_arg(r, "dim")}});
    if (op == "concat") {
      std::vector<std::string> in;
      for (size_t k = 0; k < r.inputs.size(); ++k) in.push_back(input(k));
      return node(OpKind::concat, in, {{"axis", int_arg(r, "dim")}});
    }
    if (op == "permute") {
      std::vector<int64_t> perm = ints_arg(r, "order");
      for (int64_t& p : perm) p = autograd::normalize_dim(p, r.inputs[0].dim(), "permute");
      return node(OpKind::transpose, {input(0)}, {{"perm", perm}});
    }
    if (op == "reshape") return reshape();
    if (op == "slice") return slice();
    if (op == "expand") {
      const std::vector<int64_t> b = rb_ != nullptr ? ints_arg(*rb_, "shape") : std::vector<int64_t>{};
      return node(OpKind::expand, {input(0), shape_value(ints_arg(r, "shape"), rb_ != nullptr ? &b : nullptr, "shape")});
    }
    if (op.empty())
      throw ValueError(fmt::format("trace: an op with no graph form made a {} tensor from {} inputs (a loss, a sparse "
                                   "kernel or training-mode dropout?)",
                                   to_string(r.output.shape()), r.inputs.size()));
    throw ValueError(fmt::format("{}: the graph IR has no form of '{}' yet", where(), op));
  }

  // 0.5 x (1 + erf(x / sqrt 2)), or with tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  std::string gelu(bool tanh_form) {
    const std::string x = input(0);
    std::string inner;
    if (!tanh_form) {
      inner = node(OpKind::erf, {node(OpKind::mul, {x, scalar(0.70710678118654752, "inv_sqrt2")})});
    } else {
      const std::string cube = node(OpKind::pow, {x, scalar(3.0, "three")});
      const std::string sum = node(OpKind::add, {x, node(OpKind::mul, {cube, scalar(0.044715, "cubic")})});
      inner = node(OpKind::tanh, {node(OpKind::mul, {sum, scalar(0.79788456080286536, "sqrt_2_over_pi")})});
    }
    const std::string half_x = node(OpKind::mul, {x, scalar(0.5, "half")});
    return node(OpKind::mul, {half_x, node(OpKind::add, {inner, scalar(1.0, "one")})});
  }

  // The target shape, with -1 for the one size that follows the batch.
  std::string reshape() {
    std::vector<int64_t> target = r_->output.shape();
    if (rb_ != nullptr) {
      const Shape& other = rb_->output.shape();
      int varying = 0;
      for (size_t k = 0; k < target.size(); ++k)
        if (target[k] != other[k]) target[k] = -1, ++varying;
      check<ValueError>(varying <= 1, "{}: {} sizes of shape {} follow the batch; a reshape can leave only one open",
                        where(), varying, to_string(r_->output.shape()));
    }
    const std::string x = input(0);
    return node(OpKind::reshape, {x, constant(int_tensor(target), "shape")});
  }

  std::string slice() {
    const OpRecord& r = *r_;
    const int64_t dim = int_arg(r, "dim"), start = int_arg(r, "start"), step = int_arg(r, "step");
    auto end_of = [&](const OpRecord& rec) {
      const int64_t end = start + rec.output.size(dim) * step, size = rec.inputs[0].size(dim);
      if (step > 0 && end >= size) return std::numeric_limits<int64_t>::max();
      if (step < 0 && end < 0) return std::numeric_limits<int64_t>::min();
      return end;
    };
    const int64_t end = end_of(r);
    if (rb_ != nullptr)
      check<ValueError>(end_of(*rb_) == end, "{}: the slice's end follows the batch; trace with a fixed batch", where());
    const std::string x = input(0);
    return node(OpKind::slice, {x, constant(int_tensor({start}), "starts"), constant(int_tensor({end}), "ends"),
                                constant(int_tensor({dim}), "axes"), constant(int_tensor({step}), "steps")});
  }

  Graph& g_;
  const Pass& a_;
  const Pass* b_;
  std::string input_name_, base_, batch_size_;
  const OpRecord* r_ = nullptr;
  const OpRecord* rb_ = nullptr;
  int emitted_ = 0;
  std::map<ValueKey, std::string> names_;
  std::map<ValueKey, std::pair<std::string, Tensor>> parameters_;
  std::map<std::string, int> used_;
};

// The records of both passes must be the same ops in the same order.
void check_same_path(const Pass& a, const Pass& b) {
  const auto& ra = a.recorder.records;
  const auto& rb = b.recorder.records;
  bool same = ra.size() == rb.size();
  for (size_t i = 0; same && i < ra.size(); ++i) same = ra[i].op == rb[i].op && ra[i].inputs.size() == rb[i].inputs.size();
  check<ValueError>(same,
                    "trace: the forward pass runs different ops at batch {} and {} ({} and {} ops); trace with a fixed "
                    "batch",
                    a.batch, b.batch, ra.size(), rb.size());
}

double zero_fraction(const Tensor& t) {
  if (t.dtype() != Dtype::f32 || t.numel() == 0) return 0.0;
  const float* p = t.data<float>();
  return static_cast<double>(std::count(p, p + t.numel(), 0.0f)) / static_cast<double>(t.numel());
}

// Puts the module in eval mode with dense kernels (the sparse ops record no
// graph node), and back as it was: mode and kernel policy (whose timings the
// layers make afresh).
class InferenceMode {
 public:
  explicit InferenceMode(layers::Module& m) : module_(m), training_(m.is_training()), kernels_(m.kernel_policy()) {
    module_.eval();
    module_.set_kernel_policy({.sparse = kernels::SparseKernels::never});
  }
  ~InferenceMode() {
    module_.train(training_);
    module_.set_kernel_policy(kernels_);
  }
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;

 private:
  layers::Module& module_;
  bool training_;
  kernels::KernelPolicy kernels_;
  autograd::NoGradGuard no_grad_;
};

}  // namespace

Graph trace(layers::UnaryModule& module, const Tensor& example, const TraceOptions& options) {
  check<ShapeError>(example.defined() && example.dim() >= 1 && example.size(0) >= 1,
                    "trace: the example input must have a batch dimension, got {}",
                    example.defined() ? to_string(example.shape()) : "an undefined tensor");
  InferenceMode mode(module);
  const Pass a = run_pass(module, example);
  std::optional<Pass> b;
  if (options.dynamic_batch) {  // one more sample: every size that follows the batch changes
    b = run_pass(module, Tensor::concat({example, example.slice(0, 0, 1)}, 0));
    check_same_path(a, *b);
  }
  Graph g;
  Shape input_shape = example.shape();
  if (options.dynamic_batch) input_shape[0] = -1;
  g.inputs.push_back({options.input_name, example.dtype() == Dtype::i64 ? DataType::int64 : DataType::float32,
                      input_shape});
  GraphBuilder builder(g, a, b ? &*b : nullptr, options.input_name);
  builder.name_value(example, options.input_name);
  // Parameters after the pass: it made every weight dense.
  for (const auto& [name, p] : module.named_parameters()) builder.add_parameter(p->value().data(), name);
  for (const auto& [name, t] : module.named_buffers()) builder.add_parameter(t, name);
  for (size_t i = 0; i < a.recorder.records.size(); ++i) builder.emit(i);

  const std::string result = builder.output_value(a.output);
  bool renamed = false;
  for (Node& n : g.nodes)
    for (std::string& out : n.outputs)
      if (out == result) out = options.output_name, renamed = true;
  for (Node& n : g.nodes)
    for (std::string& in : n.inputs)
      if (in == result) in = options.output_name;
  if (!renamed)  // the pass returned its input or a parameter
    g.nodes.push_back({.op = OpKind::identity, .name = "output", .inputs = {result}, .outputs = {options.output_name},
                       .attributes = {}});
  g.outputs.push_back({options.output_name, DataType::float32, {}});
  for (const auto& [name, p] : module.named_parameters())
    if (g.initializers.count(name) != 0 && p->shape().size() >= 2)
      g.metadata["sparsity:" + name] = fmt::format("{:.6f}", zero_fraction(g.initializers.at(name)));
  g.infer_shapes();
  return g;
}

}  // namespace neurite::engine
