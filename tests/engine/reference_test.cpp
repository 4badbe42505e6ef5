// The reference executor against the same computation written with the
// autograd ops directly.
#include <gtest/gtest.h>

#include <cmath>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/reference.h"
#include "support/expect_error.h"
#include "tests/engine/sample_graphs.h"

namespace neurite::engine {
namespace {

using autograd::Variable;

TEST(ReferenceExecutor, RunsAConvNetAsTheAutogradOpsDo) {
  Graph g = small_cnn();
  uint64_t seed = 1;
  for (auto& [name, t] : g.initializers) t = Tensor::rand(t.shape(), ++seed, 0.5f, 1.5f);
  const Tensor x = Tensor::randn({2, 3, 32, 32}, 99);
  const Tensor y = run_reference(g, {{"x", x}}).at("logits");

  autograd::NoGradGuard no_grad;
  auto p = [&](const char* name) { return Variable(g.initializers.at(name)); };
  Tensor mean = g.initializers.at("bn.running_mean"), var = g.initializers.at("bn.running_var");
  Variable c = conv2d(Variable(x), p("conv.weight"), {}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  Variable b = batch_norm(c, p("bn.weight"), p("bn.bias"), mean, var, {.training = false});
  Variable d = conv2d(Variable(x), p("down.weight"), {}, {.stride_h = 2, .stride_w = 2});
  Variable s = add(relu(b), d);
  Variable want = linear(flatten(adaptive_avg_pool2d(s, 1, 1), 1), p("fc.weight"), p("fc.bias"));
  ASSERT_EQ(y.shape(), want.shape());
  for (int64_t i = 0; i < y.numel(); ++i)
    EXPECT_NEAR(y.data<float>()[i], want.data().data<float>()[i], 1e-4 * (1 + std::abs(want.data().data<float>()[i])));
}

TEST(ReferenceExecutor, RejectsInputsThatDoNotFit) {
  const Graph g = small_cnn();
  testing::expect_error<ShapeError>([&] { run_reference(g, {}); }, {"input 'x' is not given"});
  testing::expect_error<ShapeError>([&] { run_reference(g, {{"x", Tensor::zeros({2, 4, 32, 32})}}); },
                                    {"'x' is [2,4,32,32]", "[-1,3,32,32]"});
}

// ceil_mode pooling: the windows it adds count neither the padding past the
// input nor, without count_include_pad, the pads. Values from PyTorch 1.13
// (F.max_pool2d / F.avg_pool2d, kernel 3, stride 2, padding 1, ceil_mode=True).
TEST(ReferenceExecutor, CeilModePoolingGivesPyTorchsValues) {
  Tensor x = Tensor::zeros({1, 1, 6, 6});
  for (int64_t i = 0; i < 36; ++i) x.data<float>()[i] = 0.5f * static_cast<float>(i) - 3.0f;
  struct Case {
    OpKind op;
    int64_t include_pad;
    std::vector<float> want;
  };
  const std::vector<Case> cases = {
      {OpKind::max_pool, 0, {0.5, 1.5, 2.5, 2.5, 6.5, 7.5, 8.5, 8.5, 12.5, 13.5, 14.5, 14.5, 12.5, 13.5, 14.5, 14.5}},
      {OpKind::average_pool, 1, {-0.5555556, -0.3333333, 0.3333333, 0.3333333, 2.1666667, 4.0, 5.0, 2.75, 6.1666665,
                                 10.0, 11.0, 5.75, 4.0833335, 6.5, 7.0, 3.625}},
      {OpKind::average_pool, 0, {-1.25, -0.5, 0.5, 1.0, 3.25, 4.0, 5.0, 5.5, 9.25, 10.0, 11.0, 11.5, 12.25, 13.0, 14.0,
                                 14.5}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("{} count_include_pad {}", op_info(c.op).onnx, c.include_pad));
    Graph g;
    g.inputs.push_back({"x", DataType::float32, {1, 1, 6, 6}});
    g.nodes.push_back({.op = c.op, .name = "pool", .inputs = {"x"}, .outputs = {"y"},
                       .attributes = {{"kernel_shape", std::vector<int64_t>{3, 3}},
                                      {"strides", std::vector<int64_t>{2, 2}},
                                      {"pads", std::vector<int64_t>{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}},
                                      {"count_include_pad", c.include_pad}}});
    g.outputs.push_back({"y"});
    const Tensor ref = run_reference(g, {{"x", x}}).at("y");
    Engine e = compile(g, {.batch = 1});
    const Tensor ran = e.run({{"x", x}}).at("y");
    ASSERT_EQ(ref.shape(), (Shape{1, 1, 4, 4}));
    ASSERT_EQ(ran.shape(), ref.shape());
    for (int64_t i = 0; i < 16; ++i) {
      EXPECT_NEAR(ref.data<float>()[i], c.want[i], 1e-5) << i;
      EXPECT_NEAR(ran.data<float>()[i], c.want[i], 1e-5) << i;
    }
  }
}

// ONNX's node tests of And, Or and Xor are at opset 7, outside the opsets the
// importer reads: their truth tables here, broadcast (2, 2) against (2, 1).
TEST(ReferenceExecutor, LogicalOpsBroadcastTheirTruthTables) {
  Tensor a = Tensor::zeros({2, 2}, autograd::Dtype::i64), b = Tensor::zeros({2, 1}, autograd::Dtype::i64);
  const int64_t av[] = {0, 1, 0, 1}, bv[] = {0, 1};
  std::copy(av, av + 4, a.data<int64_t>());
  std::copy(bv, bv + 2, b.data<int64_t>());
  const std::map<OpKind, std::vector<int64_t>> want = {{OpKind::logical_and, {0, 0, 0, 1}},
                                                        {OpKind::logical_or, {0, 1, 1, 1}},
                                                        {OpKind::logical_xor, {0, 1, 1, 0}}};
  for (const auto& [op, values] : want) {
    Graph g;
    g.inputs = {{"a", DataType::boolean, {2, 2}}, {"b", DataType::boolean, {2, 1}}};
    g.nodes.push_back({.op = op, .name = "logic", .inputs = {"a", "b"}, .outputs = {"y"}, .attributes = {}});
    g.outputs.push_back({"y"});
    const Tensor y = run_reference(g, {{"a", a}, {"b", b}}).at("y");
    ASSERT_EQ(y.shape(), (Shape{2, 2}));
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(y.data<int64_t>()[i], values[i]) << op_info(op).onnx << " " << i;
  }
}

}  // namespace
}  // namespace neurite::engine
