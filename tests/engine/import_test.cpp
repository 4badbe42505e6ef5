// ONNX files exported by PyTorch 1.13 (tests/golden/make_onnx_golden.py: a
// ResNet-style CNN, a transformer encoder with a padding mask made from the
// tokens, an MLP; opsets 13 and 17, dynamic batch) run in the reference
// executor with PyTorch's outputs and with ONNX Runtime's, at the stored batch
// and at other batch sizes.
#include <gtest/gtest.h>

#include <filesystem>

#include "neurite/engine/onnx.h"
#include "neurite/engine/reference.h"
#include "support/temp_dir.h"
#include "tests/engine/runtimes.h"

namespace neurite::engine {
namespace {

const std::string kDir = NEURITE_SOURCE_DIR "/tests/golden/onnx/";

class PyTorchExport : public ::testing::TestWithParam<std::string> {};

TEST_P(PyTorchExport, RunsAsPyTorchAndOnnxRuntimeDo) {
  const std::string name = GetParam();  // e.g. "encoder_opset13"
  const std::string model = name.substr(0, name.find('_'));
  const Tensor x = autograd::load_npy(kDir + model + "_input.npy");
  const Tensor want = autograd::load_npy(kDir + model + "_output.npy");
  const Graph g = load_onnx(kDir + name + ".onnx");
  testing::expect_close(run_reference(g, {{"input", x}}).at("output"), want, 1e-4);

  const auto dir = testing::temp_dir("import_" + name);
  for (int64_t batch : {1, 2, 6}) {  // other batch sizes: rows of the stored batch, repeated
    SCOPED_TRACE(fmt::format("batch {}", batch));
    std::vector<Tensor> rows;
    for (int64_t i = 0; i < batch; ++i) rows.push_back(x.slice(0, i % x.size(0), i % x.size(0) + 1));
    const Tensor xb = Tensor::concat(rows, 0);
    testing::expect_close(run_reference(g, {{"input", xb}}).at("output"),
                          testing::run_onnxruntime(kDir + name + ".onnx", xb, dir), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, PyTorchExport,
                         ::testing::Values("resnet_opset13", "resnet_opset17", "encoder_opset13", "encoder_opset17",
                                           "mlp_opset13", "mlp_opset17", "qat_opset13", "qat_opset17"));

TEST(PyTorchExport, ImportThenExportKeepsTheGraph) {
  for (const char* name : {"resnet_opset17", "encoder_opset17"}) {
    const Graph g = load_onnx(kDir + name + ".onnx");
    EXPECT_EQ(to_onnx(from_onnx(to_onnx(g), name)), to_onnx(g)) << name;
  }
}

TEST(PyTorchExport, ImportTurnsConstantNodesIntoInitializers) {
  const Graph g = load_onnx(kDir + "encoder_opset17.onnx");
  for (const Node& n : g.nodes) EXPECT_NE(n.op, OpKind::constant) << n.name;
  EXPECT_EQ(g.initializers.count("embed.weight"), 1u) << "weights keep their names";
}

// x (-1, 12, 32) reshaped to (-1, 12 * 32) through the shape arithmetic PyTorch
// writes: the static size is picked from Shape(x) and folds, the batch does not.
TEST(FoldConstants, FoldsShapeArithmeticButTheDynamicBatch) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 12, 32}});
  auto ints = [](std::vector<int64_t> v) { return Tensor::from_data({static_cast<int64_t>(v.size())}, v); };
  g.nodes.push_back({.op = OpKind::shape, .name = "shape", .inputs = {"x"}, .outputs = {"s"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::constant, .name = "one", .inputs = {}, .outputs = {"one"},
                     .attributes = {{"value", Tensor::from_data({}, std::vector<int64_t>{1})}}});
  g.nodes.push_back({.op = OpKind::gather, .name = "len", .inputs = {"s", "one"}, .outputs = {"len"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::gather, .name = "batch", .inputs = {"s", "zero"}, .outputs = {"n"}, .attributes = {}});
  g.initializers.emplace("zero", Tensor::from_data({1}, std::vector<int64_t>{0}));
  g.initializers.emplace("axes", ints({0}));
  g.initializers.emplace("width", ints({32}));
  g.nodes.push_back({.op = OpKind::unsqueeze, .name = "len1", .inputs = {"len", "axes"}, .outputs = {"len1"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::mul, .name = "flat", .inputs = {"len1", "width"}, .outputs = {"flat"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::concat, .name = "target", .inputs = {"n", "flat"}, .outputs = {"target"},
                     .attributes = {{"axis", int64_t{0}}}});
  g.nodes.push_back({.op = OpKind::reshape, .name = "reshape", .inputs = {"x", "target"}, .outputs = {"y"}, .attributes = {}});
  g.outputs.push_back({"y", DataType::float32, {}});
  const Tensor x = Tensor::randn({3, 12, 32}, 5);
  const Tensor want = run_reference(g, {{"x", x}}).at("y");
  fold_constants(g);
  std::vector<std::string> left;
  for (const Node& n : g.nodes) left.push_back(n.name);
  EXPECT_EQ(left, (std::vector<std::string>{"shape", "batch", "target", "reshape"}));
  ASSERT_EQ(g.initializers.count("flat"), 1u);
  EXPECT_EQ(g.initializers.at("flat").data<int64_t>()[0], 384);
  EXPECT_EQ(g.initializers.count("width"), 0u) << "nothing reads it any more";
  testing::expect_close(run_reference(g, {{"x", x}}).at("y"), want, 0);
}

}  // namespace
}  // namespace neurite::engine
