// ONNX export and import of the graph IR (neurite/engine/onnx.h), on the
// protobuf classes of Debian's libonnx-dev.
#include "neurite/engine/onnx.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <sstream>

#include "neurite/error.h"
#include "neurite/files.h"
#include "neurite/engine/reference.h"
#include "neurite/version.h"

namespace neurite::engine {

namespace {

constexpr int64_t kIrVersion = 8;  // ONNX 1.12's IR, which opsets 13-17 use
constexpr const char* kDynamic = "batch";

int element_type(DataType type) {
  switch (type) {
    case DataType::float32: return onnx::TensorProto::FLOAT;
    case DataType::int64: return onnx::TensorProto::INT64;
    case DataType::boolean: return onnx::TensorProto::BOOL;
    case DataType::int8: return onnx::TensorProto::INT8;
    case DataType::uint8: return onnx::TensorProto::UINT8;
  }
  return onnx::TensorProto::UNDEFINED;
}

void write_tensor(const std::string& name, const Tensor& t, onnx::TensorProto* out) {
  out->set_name(name);
  for (int64_t d : t.shape()) out->add_dims(d);
  out->set_data_type(element_type(data_type_of(t.dtype())));
  out->set_raw_data(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
}

void write_value(const ValueInfo& v, onnx::ValueInfoProto* out) {
  out->set_name(v.name);
  auto* tensor = out->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(element_type(v.type));
  auto* shape = tensor->mutable_shape();
  for (int64_t d : v.shape) {
    auto* dim = shape->add_dim();
    if (d < 0) dim->set_dim_param(kDynamic);
    else dim->set_dim_value(d);
  }
}

void write_attribute(const std::string& name, const Attribute& a, onnx::AttributeProto* out) {
  out->set_name(name);
  if (const auto* i = std::get_if<int64_t>(&a)) {
    out->set_type(onnx::AttributeProto::INT);
    out->set_i(*i);
  } else if (const auto* f = std::get_if<double>(&a)) {
    out->set_type(onnx::AttributeProto::FLOAT);
    out->set_f(static_cast<float>(*f));
  } else if (const auto* s = std::get_if<std::string>(&a)) {
    out->set_type(onnx::AttributeProto::STRING);
    out->set_s(*s);
  } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a)) {
    out->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : *is) out->add_ints(v);
  } else if (const auto* fs = std::get_if<std::vector<double>>(&a)) {
    out->set_type(onnx::AttributeProto::FLOATS);
    for (double v : *fs) out->add_floats(static_cast<float>(v));
  } else if (const auto* t = std::get_if<Tensor>(&a)) {
    out->set_type(onnx::AttributeProto::TENSOR);
    write_tensor("", *t, out->mutable_t());
  }
}

Tensor read_tensor(const onnx::TensorProto& t, const std::string& where) {
  autograd::Shape shape(t.dims().begin(), t.dims().end());
  const bool is_bool = t.data_type() == onnx::TensorProto::BOOL;  // held as int64 0/1
  const bool i64 = t.data_type() == onnx::TensorProto::INT64 || is_bool;
  const bool byte = t.data_type() == onnx::TensorProto::INT8 || t.data_type() == onnx::TensorProto::UINT8;
  check<FormatError>(i64 || byte || t.data_type() == onnx::TensorProto::FLOAT,
                     "{}: tensor '{}' has ONNX type {}, expected float (1), uint8 (2), int8 (3), int64 (7) or bool (9)",
                     where, t.name(), t.data_type());
  check<FormatError>(t.data_location() != onnx::TensorProto::EXTERNAL,
                     "{}: tensor '{}' keeps its data in an external file, which is not supported", where, t.name());
  // The values the proto holds (raw bytes, or a typed list), against which
  // the claimed shape is checked before anything is allocated.
  const int64_t raw_item = byte || is_bool ? 1 : i64 ? 8 : 4;
  const bool raw = !t.raw_data().empty();
  const int64_t held = raw                ? static_cast<int64_t>(t.raw_data().size()) / raw_item
                       : byte || is_bool ? t.int32_data_size()
                       : i64             ? t.int64_data_size()
                                         : t.float_data_size();
  const std::string what = fmt::format("{}: tensor '{}'", where, t.name());
  autograd::checked_bytes(shape, static_cast<size_t>(raw_item), held * raw_item, what);
  check<FormatError>(autograd::numel(shape) == held && (!raw || static_cast<int64_t>(t.raw_data().size()) == held * raw_item),
                     "{} {} holds {} values", what, autograd::to_string(shape), held);
  if (byte) {  // raw bytes, or one int32 per value
    Tensor out = Tensor::empty(shape, t.data_type() == onnx::TensorProto::INT8 ? autograd::Dtype::i8 : autograd::Dtype::u8);
    if (raw) {
      std::memcpy(out.bytes(), t.raw_data().data(), out.nbytes());
      return out;
    }
    const bool is_signed = out.dtype() == autograd::Dtype::i8;
    for (int64_t i = 0; i < out.numel(); ++i) {
      const int32_t v = t.int32_data(static_cast<int>(i));
      check<FormatError>(is_signed ? v >= -128 && v <= 127 : v >= 0 && v <= 255,
                         "{} holds {} at {}, outside its 8-bit type", what, v, i);
      if (is_signed) out.data<int8_t>()[i] = static_cast<int8_t>(v);
      else out.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
    return out;
  }
  Tensor out = Tensor::empty(shape, i64 ? autograd::Dtype::i64 : autograd::Dtype::f32);
  if (is_bool) {
    for (int64_t i = 0; i < held; ++i)
      out.data<int64_t>()[i] = raw ? t.raw_data()[static_cast<size_t>(i)] != 0 : t.int32_data(static_cast<int>(i)) != 0;
  } else if (raw) {
    std::memcpy(out.bytes(), t.raw_data().data(), out.nbytes());
  } else if (i64) {
    std::copy(t.int64_data().begin(), t.int64_data().end(), out.data<int64_t>());
  } else {
    std::copy(t.float_data().begin(), t.float_data().end(), out.data<float>());
  }
  return out;
}

ValueInfo read_value(const onnx::ValueInfoProto& v, const std::string& where) {
  ValueInfo out{v.name(), DataType::float32, {}};
  if (!v.has_type() || !v.type().has_tensor_type()) return out;
  const auto& tensor = v.type().tensor_type();
  switch (tensor.elem_type()) {
    case onnx::TensorProto::FLOAT: out.type = DataType::float32; break;
    case onnx::TensorProto::INT64: out.type = DataType::int64; break;
    case onnx::TensorProto::BOOL: out.type = DataType::boolean; break;
    case onnx::TensorProto::INT8: out.type = DataType::int8; break;
    case onnx::TensorProto::UINT8: out.type = DataType::uint8; break;
    default:
      throw FormatError(fmt::format("{}: value '{}' has ONNX element type {}, expected float, int64, bool, int8 or uint8", where,
                                    v.name(), tensor.elem_type()));
  }
  for (const auto& dim : tensor.shape().dim()) out.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  return out;
}

Attribute read_attribute(const onnx::AttributeProto& a, const std::string& where) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return a.i();
    case onnx::AttributeProto::FLOAT: return static_cast<double>(a.f());
    case onnx::AttributeProto::STRING: return a.s();
    case onnx::AttributeProto::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case onnx::AttributeProto::FLOATS: return std::vector<double>(a.floats().begin(), a.floats().end());
    case onnx::AttributeProto::TENSOR: return read_tensor(a.t(), where);
    default:
      throw FormatError(fmt::format("{}: attribute '{}' has ONNX type {}, which is not supported", where, a.name(),
                                    static_cast<int>(a.type())));
  }
}

// LayerNormalization came with opset 17: below it, the same from primitives
// (mean and variance over the trailing axes, then scale and shift).
Graph lower_layer_norm(const Graph& graph) {
  Graph g = graph;
  std::vector<Node> nodes;
  for (const Node& n : graph.nodes) {
    if (n.op != OpKind::layer_norm) {
      nodes.push_back(n);
      continue;
    }
    check<ValueError>(n.outputs.size() == 1 || (n.outputs[1].empty() && (n.outputs.size() < 3 || n.outputs[2].empty())),
                      "to_onnx: node '{}' uses LayerNormalization's mean or variance outputs, which need opset 17",
                      n.name);
    int64_t axis = n.integer("axis", -1);
    if (axis >= 0) {
      auto it = graph.values.find(n.inputs[0]);
      check<ValueError>(it != graph.values.end(), "to_onnx: node '{}': the rank of '{}' is unknown", n.name,
                        n.inputs[0]);
      axis -= static_cast<int64_t>(it->second.shape.size());
    }
    std::vector<int64_t> axes;
    for (int64_t a = axis; a < 0; ++a) axes.push_back(a);
    const std::string p = n.name + "/";
    const std::string eps = p + "epsilon";
    g.initializers.emplace(eps, Tensor::scalar(static_cast<float>(n.real("epsilon", 1e-5))));
    auto add = [&](OpKind op, std::vector<std::string> in, const std::string& out,
                   std::map<std::string, Attribute> attributes = {}) {
      nodes.push_back({.op = op, .name = p + out, .inputs = std::move(in), .outputs = {p + out},
                       .attributes = std::move(attributes)});
      return p + out;
    };
    const std::map<std::string, Attribute> reduce{{"axes", axes}, {"keepdims", int64_t{1}}};
    const std::string mean = add(OpKind::reduce_mean, {n.inputs[0]}, "mean", reduce);
    const std::string centred = add(OpKind::sub, {n.inputs[0], mean}, "centred");
    const std::string var = add(OpKind::reduce_mean, {add(OpKind::mul, {centred, centred}, "square")}, "var", reduce);
    const std::string deviation = add(OpKind::sqrt, {add(OpKind::add, {var, eps}, "var_eps")}, "std");
    std::string y = add(OpKind::mul, {add(OpKind::div, {centred, deviation}, "normed"), n.inputs[1]}, "scaled");
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) y = add(OpKind::add, {y, n.inputs[2]}, "shifted");
    nodes.push_back({.op = OpKind::identity, .name = n.name, .inputs = {y}, .outputs = {n.outputs[0]}, .attributes = {}});
  }
  g.nodes = std::move(nodes);
  return g;
}

}  // namespace

std::string to_onnx(const Graph& input_graph, const OnnxExportOptions& options) {
  check<ValueError>(options.opset >= 13 && options.opset <= 17, "to_onnx: opset {} is not supported (13 to 17)",
                    options.opset);
  const Graph graph = options.opset < 17 ? lower_layer_norm(input_graph) : input_graph;
  graph.validate();
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("neurite");
  model.set_producer_version(kVersion);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  for (const auto& [key, value] : graph.metadata) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(options.graph_name);
  for (const ValueInfo& v : graph.inputs) write_value(v, g->add_input());
  for (const ValueInfo& v : graph.outputs) {
    auto it = graph.values.find(v.name);
    write_value(it != graph.values.end() ? it->second : v, g->add_output());
  }
  for (const auto& [name, t] : graph.initializers) write_tensor(name, t, g->add_initializer());
  for (size_t i : graph.topological_order()) {
    const Node& n = graph.nodes[i];
    onnx::NodeProto* node = g->add_node();
    node->set_op_type(std::string(op_info(n.op).onnx));
    node->set_name(n.name);
    for (const auto& in : n.inputs) node->add_input(in);
    for (const auto& out : n.outputs) node->add_output(out);
    for (const auto& [name, a] : n.attributes) write_attribute(name, a, node->add_attribute());
  }
  std::string bytes;
  check<StateError>(model.SerializeToString(&bytes), "to_onnx: protobuf could not serialise the model");
  return bytes;
}

void save_onnx(const Graph& graph, const std::string& path, const OnnxExportOptions& options) {
  write_file_atomically(path, to_onnx(graph, options));
}

namespace {

onnx::ModelProto parse_model(const std::string& bytes, const std::string& source) {
  onnx::ModelProto model;
  check<FormatError>(model.ParseFromString(bytes), "{}: not an ONNX model (protobuf parse failed, {} bytes)", source,
                     bytes.size());
  check<FormatError>(model.has_graph(), "{}: the model has no graph", source);
  return model;
}

int64_t default_opset(const onnx::ModelProto& model) {
  for (const auto& opset : model.opset_import())
    if (opset.domain().empty() || opset.domain() == "ai.onnx") return opset.version();
  return 0;
}

std::vector<std::string> unsupported_nodes(const onnx::GraphProto& g) {
  std::vector<std::string> out;
  for (const auto& node : g.node())
    if ((!node.domain().empty() && node.domain() != "ai.onnx") || !op_from_onnx(node.op_type()))
      out.push_back(fmt::format("{} ({})", node.op_type(), node.name()));
  return out;
}

// Initializers, and the graph's inputs (those without an initializer) and outputs.
template <typename Out>
void read_interface(const onnx::GraphProto& g, const std::string& source, Out& out) {
  for (const auto& t : g.initializer()) out.initializers.emplace(t.name(), read_tensor(t, source));
  for (const auto& v : g.input())
    if (out.initializers.count(v.name()) == 0) out.inputs.push_back(read_value(v, source));
  for (const auto& v : g.output()) out.outputs.push_back(read_value(v, source));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check<IoError>(static_cast<bool>(in), "{}: cannot open", path);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

Graph from_onnx(const std::string& bytes, const std::string& source) {
  const onnx::ModelProto model = parse_model(bytes, source);
  const int64_t opset = default_opset(model);
  check<FormatError>(opset >= 13 && opset <= 17, "{}: opset {} is not supported (13 to 17)", source, opset);
  const onnx::GraphProto& g = model.graph();
  const std::vector<std::string> unsupported = unsupported_nodes(g);
  check<FormatError>(unsupported.empty(), "{}: {} of {} nodes use ops Neurite does not support: {}", source,
                     unsupported.size(), g.node_size(), fmt::join(unsupported, ", "));
  Graph out;
  for (const auto& prop : model.metadata_props()) out.metadata[prop.key()] = prop.value();
  read_interface(g, source, out);
  for (const auto& node : g.node()) {
    Node n{.op = *op_from_onnx(node.op_type()), .name = node.name(), .inputs = {}, .outputs = {}, .attributes = {}};
    n.inputs.assign(node.input().begin(), node.input().end());
    n.outputs.assign(node.output().begin(), node.output().end());
    const std::string where = fmt::format("{}: node '{}' ({})", source, node.name(), node.op_type());
    for (const auto& a : node.attribute()) n.attributes.emplace(a.name(), read_attribute(a, where));
    out.nodes.push_back(std::move(n));
  }
  fold_constants(out);
  return out;
}

Graph load_onnx(const std::string& path) { return from_onnx(read_file(path), path); }

Tensor load_onnx_tensor(const std::string& path) {
  onnx::TensorProto t;
  check<FormatError>(t.ParseFromString(read_file(path)), "{}: not an ONNX TensorProto", path);
  return read_tensor(t, path);
}

OnnxSummary summarize_onnx(const std::string& path) {
  const onnx::ModelProto model = parse_model(read_file(path), path);
  const onnx::GraphProto& g = model.graph();
  OnnxSummary out;
  out.opset = default_opset(model);
  out.nodes = g.node_size();
  out.unsupported = unsupported_nodes(g);
  out.supported_nodes = out.nodes - static_cast<int64_t>(out.unsupported.size());
  read_interface(g, path, out);
  for (const auto& n : g.node()) {
    const bool weighted = n.op_type() == "Conv" || n.op_type() == "Gemm" || n.op_type() == "MatMul";
    for (int k = 0; weighted && k < std::min(n.input_size(), 2); ++k) {
      if (k == 0 && n.op_type() != "MatMul") continue;  // Conv and Gemm: the weight is input 1
      const auto it = out.initializers.find(n.input(k));
      if (it != out.initializers.end() && it->second.dtype() == autograd::Dtype::f32 && it->second.dim() >= 2)
        out.weights.insert(n.input(k));
    }
  }
  return out;
}

}  // namespace neurite::engine
