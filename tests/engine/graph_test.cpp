// The graph IR: the op table, validation errors, topological order and shape
// inference against shapes worked out by hand (ONNX's rules).
#include <gtest/gtest.h>

#include "neurite/error.h"
#include "neurite/engine/graph.h"
#include "support/expect_error.h"
#include "tests/engine/sample_graphs.h"

namespace neurite::engine {
namespace {

using testing::expect_error;

TEST(OpTable, IsInOpKindOrderAndMapsOnnxNames) {
  const auto& ops = all_ops();
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(ops[i].op), i) << ops[i].name;
    EXPECT_EQ(op_from_onnx(ops[i].onnx), ops[i].op) << ops[i].onnx;
    EXPECT_LE(ops[i].min_inputs, ops[i].max_inputs) << ops[i].name;
  }
  EXPECT_EQ(op_from_onnx("LSTM"), std::nullopt);
  EXPECT_EQ(op_info(OpKind::layer_norm).onnx, "LayerNormalization");
}

TEST(Graph, SortsNodesAfterTheirProducers) {
  const Graph g = small_cnn();
  const auto order = g.topological_order();
  ASSERT_EQ(order.size(), g.nodes.size());
  std::map<std::string, size_t> position;
  for (size_t k = 0; k < order.size(); ++k)
    for (const auto& out : g.nodes[order[k]].outputs) position[out] = k;
  for (size_t k = 0; k < order.size(); ++k)
    for (const auto& in : g.nodes[order[k]].inputs)
      if (position.count(in)) EXPECT_LT(position[in], k) << g.nodes[order[k]].name << " reads " << in;
}

TEST(Graph, InfersShapesThroughAConvNet) {
  Graph g = small_cnn();
  g.infer_shapes();
  EXPECT_EQ(g.values.at("c").shape, (Shape{-1, 16, 16, 16}));
  EXPECT_EQ(g.values.at("d").shape, (Shape{-1, 16, 16, 16}));
  EXPECT_EQ(g.values.at("p").shape, (Shape{-1, 16, 1, 1}));
  EXPECT_EQ(g.values.at("flat").shape, (Shape{-1, 16}));
  EXPECT_EQ(g.outputs[0].shape, (Shape{-1, 10}));
  EXPECT_EQ(g.outputs[0].type, DataType::float32);
}

TEST(Graph, InfersShapeArithmeticFromConstants) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {2, 8, 6}});
  g.initializers.emplace("shape", ints({0, -1, 3}));
  g.initializers.emplace("starts", ints({1}));
  g.initializers.emplace("ends", ints({100}));
  g.initializers.emplace("axes", ints({1}));
  g.initializers.emplace("steps", ints({2}));
  g.initializers.emplace("index", ints({0, 2}));
  g.nodes.push_back({.op = OpKind::reshape, .name = "reshape", .inputs = {"x", "shape"}, .outputs = {"r"}});
  g.nodes.push_back({.op = OpKind::transpose, .name = "t", .inputs = {"r"}, .outputs = {"t"},
                     .attributes = {{"perm", std::vector<int64_t>{0, 2, 1}}}});
  g.nodes.push_back({.op = OpKind::slice, .name = "slice", .inputs = {"x", "starts", "ends", "axes", "steps"},
                     .outputs = {"s"}});
  g.nodes.push_back({.op = OpKind::gather, .name = "gather", .inputs = {"x", "index"}, .outputs = {"g"},
                     .attributes = {{"axis", int64_t{2}}}});
  g.nodes.push_back({.op = OpKind::unsqueeze, .name = "unsqueeze", .inputs = {"s", "axes"}, .outputs = {"u"}});
  g.nodes.push_back({.op = OpKind::reduce_mean, .name = "mean", .inputs = {"x"}, .outputs = {"m"},
                     .attributes = {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{0}}}});
  g.nodes.push_back({.op = OpKind::matmul, .name = "mm", .inputs = {"r", "t"}, .outputs = {"mm"}});
  g.nodes.push_back({.op = OpKind::shape, .name = "shape_of", .inputs = {"x"}, .outputs = {"sh"}});
  g.nodes.push_back({.op = OpKind::concat, .name = "cat", .inputs = {"x", "x"}, .outputs = {"cat"},
                     .attributes = {{"axis", int64_t{-1}}}});
  g.nodes.push_back({.op = OpKind::equal, .name = "eq", .inputs = {"x", "m"}, .outputs = {"eq"}});
  g.outputs = {{"mm"}, {"g"}, {"u"}, {"sh"}, {"cat"}};
  EXPECT_THROW(g.infer_shapes(), ShapeError);  // (2,8,6) == (2,8): trailing dims 6 and 8 do not broadcast
  g.nodes.back().inputs = {"m", "m"};
  g.infer_shapes();
  EXPECT_EQ(g.values.at("r").shape, (Shape{2, 16, 3}));
  EXPECT_EQ(g.values.at("t").shape, (Shape{2, 3, 16}));
  EXPECT_EQ(g.values.at("s").shape, (Shape{2, 4, 6}));  // rows 1, 3, 5, 7
  EXPECT_EQ(g.values.at("g").shape, (Shape{2, 8, 2}));
  EXPECT_EQ(g.values.at("u").shape, (Shape{2, 1, 4, 6}));
  EXPECT_EQ(g.values.at("m").shape, (Shape{2, 8}));
  EXPECT_EQ(g.values.at("mm").shape, (Shape{2, 16, 16}));
  EXPECT_EQ(g.values.at("sh").shape, (Shape{3}));
  EXPECT_EQ(g.values.at("sh").type, DataType::int64);
  EXPECT_EQ(g.values.at("cat").shape, (Shape{2, 8, 12}));
  EXPECT_EQ(g.values.at("eq").type, DataType::boolean);
}

TEST(Graph, ValidationNamesTheNodeAndValueAtFault) {
  Graph unread = small_cnn();
  unread.nodes[1].inputs[1] = "conv.wieght";
  expect_error<FormatError>([&] { unread.validate(); }, {"node 'conv' (Conv)", "conv.wieght"});
  Graph twice = small_cnn();
  twice.nodes[3].outputs = {"c"};
  expect_error<FormatError>([&] { twice.validate(); }, {"'c'", "produced twice"});
  Graph arity = small_cnn();
  arity.nodes[3].inputs.push_back("b");
  expect_error<FormatError>([&] { arity.validate(); }, {"node 'relu' (Relu)", "2 inputs", "expected 1"});
  Graph cycle = small_cnn();
  cycle.nodes[2].inputs[0] = "r";  // bn reads relu, which reads bn
  expect_error<FormatError>([&] { cycle.validate(); }, {"cycle", "bn", "relu"});
  Graph dangling = small_cnn();
  dangling.outputs.push_back({"probabilities"});
  expect_error<FormatError>([&] { dangling.validate(); }, {"output 'probabilities'"});
  Graph shapes = small_cnn();
  shapes.initializers.at("fc.weight") = Tensor::zeros({10, 32});
  expect_error<ShapeError>([&] { shapes.infer_shapes(); }, {"node 'fc' (Gemm)", "[-1,16]", "[10,32]"});
}

// x (N, 4) through QuantizeLinear and DequantizeLinear on `scale` and
// `zero_point`, per axis `axis` when the scale is a vector.
Graph qdq(Tensor scale, Tensor zero_point, int64_t axis = 1) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 4}});
  g.outputs.push_back({"y"});
  g.initializers.emplace("s", std::move(scale));
  g.initializers.emplace("z", std::move(zero_point));
  g.nodes.push_back({.op = OpKind::quantize_linear, .name = "q", .inputs = {"x", "s", "z"}, .outputs = {"xq"},
                     .attributes = {{"axis", axis}}});
  g.nodes.push_back({.op = OpKind::dequantize_linear, .name = "dq", .inputs = {"xq", "s", "z"}, .outputs = {"y"},
                     .attributes = {{"axis", axis}}});
  return g;
}

Tensor bytes(std::vector<int> values, autograd::Dtype type = autograd::Dtype::u8) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, type);
  for (size_t i = 0; i < values.size(); ++i)
    if (type == autograd::Dtype::u8) t.data<uint8_t>()[i] = static_cast<uint8_t>(values[i]);
    else t.data<int8_t>()[i] = static_cast<int8_t>(values[i]);
  return t;
}

// Bad QDQ graphs: each error names the node at fault.
TEST(Graph, QuantizeLinearChecksItsGridsAndNamesTheNode) {
  EXPECT_NO_THROW(qdq(Tensor::full({4}, 0.1f), bytes({1, 2, 3, 4})).infer_shapes());
  expect_error<ValueError>([] { qdq(Tensor::scalar(0.0f), bytes({7}).reshape({})).infer_shapes(); },
                           {"node 'q' (QuantizeLinear)", "scale 0", "not a positive finite number"});
  expect_error<ValueError>([] { qdq(Tensor::full({4}, -1.0f), bytes({0, 0, 0, 0})).infer_shapes(); },
                           {"node 'q'", "scale -1"});
  expect_error<ShapeError>([] { qdq(Tensor::full({4}, 0.1f), bytes({0, 0, 0})).infer_shapes(); },
                           {"node 'q'", "zero point is [3]", "scale [4]"});
  expect_error<ShapeError>([] { qdq(Tensor::full({3}, 0.1f), bytes({0, 0, 0})).infer_shapes(); },
                           {"node 'q'", "3 scales for axis 1", "[-1,4]"});
  expect_error<ValueError>([] { qdq(Tensor::full({4}, 0.1f), bytes({0, 0, 0, 0}), 2).infer_shapes(); },
                           {"node 'q'", "axis 2 is out of range"});
  expect_error<DtypeError>([] { qdq(Tensor::full({4}, 0.1f), ints({0, 0, 0, 0})).infer_shapes(); },
                           {"node 'q'", "zero point is int64, expected int8 or uint8"});
  // DequantizeLinear without a zero point: 0 of its input's type (int8 here).
  Graph no_zero_point = qdq(Tensor::scalar(0.1f), bytes({3}, autograd::Dtype::i8).reshape({}));
  no_zero_point.nodes[1].inputs.pop_back();
  EXPECT_NO_THROW(no_zero_point.infer_shapes());
  EXPECT_EQ(no_zero_point.values.at("y").type, DataType::float32);
  // 8-bit values go only into DequantizeLinear, Clip and Identity.
  Graph add = qdq(Tensor::scalar(0.1f), bytes({0}).reshape({}));
  add.nodes[1] = {.op = OpKind::add, .name = "sum", .inputs = {"xq", "xq"}, .outputs = {"y"}, .attributes = {}};
  expect_error<FormatError>([&] { add.validate(); }, {"node 'sum' (Add)", "8-bit value 'xq'"});
}

}  // namespace
}  // namespace neurite::engine
