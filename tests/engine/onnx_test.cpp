// ONNX export and import of the graph IR: a round trip keeps every node,
// attribute and initializer; onnx.checker (Debian's python3-onnx) accepts what
// we write; bad files fail with the file and the fault named.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "neurite/error.h"
#include "neurite/engine/onnx.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "tests/engine/sample_graphs.h"

namespace neurite::engine {
namespace {

using testing::expect_error;

Graph with_weights() {
  Graph g = small_cnn();
  for (auto& [name, t] : g.initializers) t = Tensor::randn(t.shape(), std::hash<std::string>{}(name));
  g.metadata["sparsity.fc.weight"] = "0.9";
  return g;
}

TEST(Onnx, RoundTripKeepsNodesAttributesAndInitializers) {
  Graph g = with_weights();
  g.infer_shapes();  // import infers shapes too, so the outputs' shapes are in both files
  const Graph back = from_onnx(to_onnx(g), "memory");
  ASSERT_EQ(back.nodes.size(), g.nodes.size());
  const auto order = g.topological_order();  // export writes nodes in this order
  for (size_t k = 0; k < order.size(); ++k) {
    const Node &a = g.nodes[order[k]], &b = back.nodes[k];
    EXPECT_EQ(a.op, b.op);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.inputs, b.inputs);
    EXPECT_EQ(a.outputs, b.outputs);
    EXPECT_EQ(a.attributes.size(), b.attributes.size()) << a.name;
    for (const auto& [name, value] : a.attributes) {
      ASSERT_TRUE(b.has(name)) << a.name << "." << name;
      if (const auto* ints = std::get_if<std::vector<int64_t>>(&value))
        EXPECT_EQ(*ints, std::get<std::vector<int64_t>>(b.attributes.at(name)));
      if (const auto* i = std::get_if<int64_t>(&value)) EXPECT_EQ(*i, std::get<int64_t>(b.attributes.at(name)));
    }
  }
  ASSERT_EQ(back.initializers.size(), g.initializers.size());
  for (const auto& [name, t] : g.initializers) {
    const Tensor& u = back.initializers.at(name);
    ASSERT_EQ(u.shape(), t.shape()) << name;
    EXPECT_EQ(std::memcmp(u.bytes(), t.bytes(), t.nbytes()), 0) << name;
  }
  ASSERT_EQ(back.inputs.size(), 1u);
  EXPECT_EQ(back.inputs[0].shape, (Shape{-1, 3, 32, 32}));
  EXPECT_EQ(back.metadata, g.metadata);
  EXPECT_EQ(to_onnx(back), to_onnx(g));  // export -> import -> export is the same file
}

TEST(Onnx, OnnxCheckerAcceptsTheExport) {
  const auto dir = testing::temp_dir("onnx_checker");
  Graph g = with_weights();
  g.infer_shapes();
  const std::string path = (dir / "small_cnn.onnx").string();
  save_onnx(g, path);
  const std::string command =
      "/usr/bin/python3 -c \"import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)\" " +
      path;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

TEST(Onnx, BadFilesNameTheFileAndTheFault) {
  const std::string bytes = to_onnx(with_weights());
  expect_error<FormatError>([&] { from_onnx("not a model at all", "junk.onnx"); }, {"junk.onnx", "not an ONNX model"});
  expect_error<FormatError>([&] { from_onnx(bytes.substr(0, bytes.size() / 2), "half.onnx"); }, {"half.onnx"});
  std::string renamed = bytes;  // same length, so still valid protobuf
  for (size_t at = renamed.find("Relu"); at != std::string::npos; at = renamed.find("Relu", at)) renamed[at + 3] = 'x';
  expect_error<FormatError>([&] { from_onnx(renamed, "odd.onnx"); }, {"odd.onnx", "1 of 8 nodes", "Relx (relu)"});
  expect_error<IoError>([&] { load_onnx("/nonexistent/model.onnx"); }, {"/nonexistent/model.onnx"});
}

}  // namespace
}  // namespace neurite::engine
