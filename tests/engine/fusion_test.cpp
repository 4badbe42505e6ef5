// Pattern fusion and the elementwise kernels on what PyTorch 1.13's exporter
// writes (tests/golden/make_onnx_golden.py): the compiled engine must give the
// unfused reference executor's outputs, run every hot op on a kernel of its
// own, and fuse the patterns each file holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "neurite/engine/engine.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/reference.h"
#include "neurite/kernels/elementwise.h"
#include "tests/engine/runtimes.h"

namespace neurite::engine {
namespace {

const std::string kDir = NEURITE_SOURCE_DIR "/tests/golden/onnx/";

int count_kernels(const std::vector<StepInfo>& steps, const std::string& part) {
  return static_cast<int>(
      std::count_if(steps.begin(), steps.end(), [&](const StepInfo& s) { return s.kernel.find(part) != std::string::npos; }));
}

struct Expected {
  std::string file;
  int layer_norms, gelus, relu6, attentions;  // fused steps the file must give
};

class FusedExport : public ::testing::TestWithParam<Expected> {};

TEST_P(FusedExport, RunsAsTheUnfusedReferenceWithEveryPatternFused) {
  const Expected& want = GetParam();
  const Graph g = load_onnx(kDir + want.file + ".onnx");
  const std::string model = want.file.substr(0, want.file.find('_'));
  const Tensor stored = autograd::load_npy(kDir + model + "_input.npy");
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    for (int64_t batch : {1, 5}) {
      SCOPED_TRACE(fmt::format("{} batch {}", to_string(mode), batch));
      std::vector<Tensor> rows;
      for (int64_t i = 0; i < batch; ++i) rows.push_back(stored.slice(0, i % stored.size(0), i % stored.size(0) + 1));
      const Tensor x = Tensor::concat(rows, 0);
      Engine e = compile(g, {.batch = batch, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
      testing::expect_close(e.run({{"input", x}}).at("output"), run_reference(g, {{"input", x}}).at("output"), 1e-4);
      const auto steps = e.steps();
      EXPECT_EQ(count_kernels(steps, "layer_norm rows"), want.layer_norms);
      EXPECT_EQ(count_kernels(steps, "elementwise gelu"), want.gelus);
      EXPECT_EQ(count_kernels(steps, "+relu6"), want.relu6);
      EXPECT_EQ(count_kernels(steps, "attention"), want.attentions);
      for (const char* hot : {"node Pow", "node Sqrt", "node Erf", "node Tanh", "node Div", "node Mul", "node Add",
                              "node Sub", "node Relu", "node Clip", "node Sigmoid", "node Transpose", "node MatMul", "node Softmax",
                              "node ReduceMean", "node Gather", "node Where", "node Equal", "node Not",
                              "node Cast", "node Expand", "node QuantizeLinear", "node DequantizeLinear",
                              "node BatchNormalization"})
        EXPECT_EQ(count_kernels(steps, hot), 0) << hot << " runs on the reference executor";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, FusedExport,
                         ::testing::Values(Expected{"encoder_opset13", 4, 2, 0, 2}, Expected{"encoder_opset17", 4, 2, 0, 2},
                                           Expected{"fusions_opset13", 3, 2, 2, 1}, Expected{"fusions_opset17", 3, 2, 2, 1},
                                           Expected{"resnet_opset13", 0, 0, 0, 0}, Expected{"mlp_opset13", 0, 0, 0, 0},
                                           Expected{"qat_opset13", 0, 0, 0, 0}, Expected{"qat_opset17", 0, 0, 0, 0}),
                         [](const auto& info) { return info.param.file; });

// The elementwise kernels against std:: on random values around every
// polynomial's range switch, at lengths around the vector width.
TEST(ElementwiseKernels, MatchTheStandardLibrary) {
  using kernels::Unary;
  using kernels::UnaryOp;
  for (int64_t n : {1, 7, 16, 33, 1000}) {
    const Tensor t = Tensor::randn({n}, static_cast<uint64_t>(n), 0, 3);
    const float* x = t.data<float>();
    std::vector<float> y(static_cast<size_t>(n));
    auto expect = [&](Unary f, auto exact, double tolerance) {
      kernels::unary(f, x, y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double e = exact(static_cast<double>(x[i]));
        EXPECT_NEAR(y[static_cast<size_t>(i)], e, tolerance * std::max(1.0, std::abs(e)))
            << kernels::to_string(f.op) << " at x = " << x[i];
      }
    };
    expect({.op = UnaryOp::exp}, [](double v) { return std::exp(v); }, 1e-6);
    expect({.op = UnaryOp::sigmoid}, [](double v) { return 1 / (1 + std::exp(-v)); }, 1e-6);
    expect({.op = UnaryOp::tanh}, [](double v) { return std::tanh(v); }, 1e-6);
    expect({.op = UnaryOp::erf}, [](double v) { return std::erf(v); }, 1e-6);
    expect({.op = UnaryOp::gelu}, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, 1e-6);
    expect({.op = UnaryOp::gelu_tanh},
           [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); }, 1e-6);
    expect({.op = UnaryOp::clip, .lo = -1, .hi = 2}, [](double v) { return std::clamp(v, -1.0, 2.0); }, 0);
    expect({.op = UnaryOp::power, .exponent = 2}, [](double v) { return v * v; }, 1e-7);
    expect({.op = UnaryOp::power, .exponent = 3}, [](double v) { return v * v * v; }, 1e-6);
    expect({.op = UnaryOp::power, .exponent = 4}, [](double v) { return std::pow(v, 4.0); }, 1e-6);
    // A small argument, where tanh's closed form would cancel.
    const float tiny[] = {1e-4f, -3e-3f, 0.2f, -0.26f};
    float out[4];
    kernels::unary({.op = UnaryOp::tanh}, tiny, out, 4);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], std::tanh(double(tiny[i])), 3e-7 * std::abs(tiny[i])) << tiny[i];
  }
}

// Elementwise steps over numpy broadcasts the collapsing of dimensions must
// keep apart: a per-channel scale, a per-row one, a broadcast on either side
// of a middle dimension, and unary maps after them; in both modes.
TEST(ElementwiseSteps, BroadcastAsTheReferenceDoes) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 3, 4, 5}});
  g.initializers["c"] = Tensor::randn({3, 1, 1}, 1);
  g.initializers["r"] = Tensor::randn({1, 4, 1}, 2);
  g.initializers["w"] = Tensor::randn({5}, 3);
  g.initializers["m"] = Tensor::rand({3, 1, 5}, 4, 0.5f, 1.5f);
  g.initializers["two"] = Tensor::scalar(2.0f);
  auto node = [&](OpKind op, std::vector<std::string> in, const std::string& out) {
    g.nodes.push_back({.op = op, .name = out, .inputs = std::move(in), .outputs = {out}, .attributes = {}});
  };
  node(OpKind::mul, {"x", "c"}, "a");      // per channel
  node(OpKind::add, {"r", "a"}, "b");      // per row, on the left
  node(OpKind::sub, {"b", "w"}, "d");      // per column
  node(OpKind::div, {"d", "m"}, "e");      // channel and column, rows repeated
  node(OpKind::pow, {"e", "two"}, "f");
  node(OpKind::tanh, {"f"}, "t");
  node(OpKind::erf, {"e"}, "u");
  node(OpKind::add, {"t", "u"}, "y");
  g.outputs.push_back({"y"});
  const Tensor x = Tensor::randn({2, 3, 4, 5}, 5);
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    Engine e = compile(g, {.batch = 2, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
    testing::expect_close(e.run({{"x", x}}).at("y"), run_reference(g, {{"x", x}}).at("y"), 1e-5);
    EXPECT_EQ(count_kernels(e.steps(), "elementwise"), 8);
  }
}

// The typed steps of masks and indices (Equal, Not, Cast to bool, int64 and
// float, Expand, Where over floats and over int64) broadcast as the reference
// does, batch-shaped and constant operands mixed; in both modes.
TEST(ElementwiseSteps, MasksAndIndicesAsTheReferenceDoes) {
  Graph g;
  g.inputs.push_back({"ids", DataType::int64, {-1, 1, 6}});
  g.inputs.push_back({"x", DataType::float32, {-1, 4, 6}});
  g.initializers["zero"] = Tensor::from_data({1}, std::vector<int64_t>{0});
  g.initializers["shape"] = Tensor::from_data({3}, std::vector<int64_t>{1, 4, 1});
  g.initializers["minus"] = Tensor::scalar(-1e4f);
  g.initializers["seven"] = Tensor::from_data({4, 1}, std::vector<int64_t>{7, 8, 9, 10});
  auto node = [&](OpKind op, std::vector<std::string> in, const std::string& out, std::map<std::string, Attribute> a = {}) {
    g.nodes.push_back({.op = op, .name = out, .inputs = std::move(in), .outputs = {out}, .attributes = std::move(a)});
  };
  node(OpKind::equal, {"ids", "zero"}, "pad");                         // (N, 1, 6) bool
  node(OpKind::logical_not, {"pad"}, "keep");
  node(OpKind::expand, {"keep", "shape"}, "keep4");                    // (N, 4, 6)
  node(OpKind::where, {"keep4", "x", "minus"}, "masked");              // float values, a scalar on one side
  node(OpKind::cast, {"x"}, "xi", {{"to", int64_t{7}}});               // float to int64, truncating
  node(OpKind::where, {"pad", "seven", "xi"}, "picked");               // int64 values, a constant column
  node(OpKind::cast, {"picked"}, "pf", {{"to", int64_t{1}}});          // int64 to float
  node(OpKind::cast, {"masked"}, "nonzero", {{"to", int64_t{9}}});     // float to bool
  node(OpKind::cast, {"nonzero"}, "nf", {{"to", int64_t{1}}});
  node(OpKind::add, {"masked", "pf"}, "s");
  node(OpKind::add, {"s", "nf"}, "y");
  g.outputs.push_back({"y"});
  Tensor ids = Tensor::from_data({3, 1, 6}, std::vector<int64_t>{5, 0, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2});
  Tensor x = Tensor::randn({3, 4, 6}, 7, 0, 4);
  x.data<float>()[5] = 0;  // a zero for the cast to bool
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    Engine e = compile(g, {.batch = 3, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
    const std::map<std::string, Tensor> in{{"ids", ids}, {"x", x}};
    testing::expect_close(e.run(in).at("y"), run_reference(g, in).at("y"), 1e-6);
    EXPECT_EQ(count_kernels(e.steps(), "elementwise"), 11);
  }
}

// Attention with a full mask (one per query row and key, as a causal mask
// is), scaled scores and transposed keys: one step, as the reference computes.
TEST(AttentionStep, FullMasksAndScaledScoresEqualTheReference) {
  Graph g;
  g.inputs.push_back({"q", DataType::float32, {-1, 4, 8}});
  g.inputs.push_back({"kt", DataType::float32, {-1, 8, 6}});
  g.inputs.push_back({"v", DataType::float32, {-1, 6, 5}});
  g.inputs.push_back({"mask", DataType::float32, {-1, 4, 6}});
  g.initializers["half"] = Tensor::scalar(0.5f);
  g.nodes.push_back({.op = OpKind::matmul, .name = "scores", .inputs = {"q", "kt"}, .outputs = {"s"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::mul, .name = "scale", .inputs = {"s", "half"}, .outputs = {"s2"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::add, .name = "masked", .inputs = {"s2", "mask"}, .outputs = {"s3"}, .attributes = {}});
  g.nodes.push_back({.op = OpKind::softmax, .name = "p", .inputs = {"s3"}, .outputs = {"p"}, .attributes = {{"axis", int64_t{-1}}}});
  g.nodes.push_back({.op = OpKind::matmul, .name = "out", .inputs = {"p", "v"}, .outputs = {"y"}, .attributes = {}});
  g.outputs.push_back({"y"});
  const std::map<std::string, Tensor> in{{"q", Tensor::randn({3, 4, 8}, 1)}, {"kt", Tensor::randn({3, 8, 6}, 2)},
                                         {"v", Tensor::randn({3, 6, 5}, 3)}, {"mask", Tensor::randn({3, 4, 6}, 4, 0, 3)}};
  Engine e = compile(g, {.batch = 3, .threads = 2, .mode = Mode::layers, .kernels = {.autotune = false}});
  testing::expect_close(e.run(in).at("y"), run_reference(g, in).at("y"), 1e-5);
  const auto steps = e.steps();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_NE(steps[0].kernel.find("attention 4x8x6x5 +mask"), std::string::npos) << steps[0].kernel;
}

// Transposes of every kind run as copies, the last axis moved or kept, the batch axis moved or kept.
TEST(CopySteps, TransposeAnyPermutationAsTheReference) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 3, 4, 5}});
  const std::vector<std::vector<int64_t>> perms{{0, 3, 1, 2}, {0, 2, 3, 1}, {0, 1, 3, 2}, {1, 0, 2, 3}, {3, 2, 1, 0}};
  for (size_t i = 0; i < perms.size(); ++i) {
    const std::string out = fmt::format("y{}", i);
    g.nodes.push_back({.op = OpKind::transpose, .name = out, .inputs = {"x"}, .outputs = {out},
                       .attributes = {{"perm", perms[i]}}});
    g.outputs.push_back({out});
  }
  const Tensor x = Tensor::randn({2, 3, 4, 5}, 7);
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    Engine e = compile(g, {.batch = 2, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
    const auto got = e.run({{"x", x}}), want = run_reference(g, {{"x", x}});
    for (size_t i = 0; i < perms.size(); ++i) testing::expect_close(got.at(fmt::format("y{}", i)), want.at(fmt::format("y{}", i)), 0);
    EXPECT_EQ(count_kernels(e.steps(), "copy transpose"), static_cast<int>(perms.size()));
  }
}

// Slices of one axis, of several with steps, and from the end, as copies.
TEST(CopySteps, SliceAnyAxesAndStepsAsTheReference) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 6, 7, 8}});
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    g.initializers[name] = Tensor::from_data({static_cast<int64_t>(v.size())}, v);
    return name;
  };
  struct Case { std::vector<int64_t> starts, ends, axes, steps; };
  const std::vector<Case> cases{{{1}, {4}, {2}, {1}}, {{0, 1, 2}, {6, 7, 8}, {1, 2, 3}, {2, 3, 2}},
                                {{-5, 0}, {100, 5}, {-1, 1}, {1, 2}}, {{1}, {3}, {3}, {1}}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string k = std::to_string(i);
    g.nodes.push_back({.op = OpKind::slice, .name = "s" + k,
                       .inputs = {"x", ints("b" + k, cases[i].starts), ints("e" + k, cases[i].ends),
                                  ints("a" + k, cases[i].axes), ints("t" + k, cases[i].steps)},
                       .outputs = {"y" + k}, .attributes = {}});
    g.outputs.push_back({"y" + k});
  }
  const Tensor x = Tensor::randn({2, 6, 7, 8}, 9);
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    Engine e = compile(g, {.batch = 2, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
    const auto got = e.run({{"x", x}}), want = run_reference(g, {{"x", x}});
    for (size_t i = 0; i < cases.size(); ++i)
      testing::expect_close(got.at("y" + std::to_string(i)), want.at("y" + std::to_string(i)), 0);
    EXPECT_EQ(count_kernels(e.steps(), "copy slice"), static_cast<int>(cases.size()));
  }
}

// Concat along a middle axis, the last one and the batch axis, with a constant among the inputs.
TEST(CopySteps, ConcatAlongAnyAxisAsTheReference) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 3, 4}});
  g.inputs.push_back({"z", DataType::float32, {-1, 2, 4}});
  g.initializers["c"] = Tensor::randn({2, 1, 4}, 1);
  g.nodes.push_back({.op = OpKind::concat, .name = "mid", .inputs = {"x", "c", "z"}, .outputs = {"a"},
                     .attributes = {{"axis", int64_t{1}}}});
  g.nodes.push_back({.op = OpKind::concat, .name = "last", .inputs = {"a", "a"}, .outputs = {"b"},
                     .attributes = {{"axis", int64_t{-1}}}});
  g.nodes.push_back({.op = OpKind::concat, .name = "batch", .inputs = {"b", "b"}, .outputs = {"y"},
                     .attributes = {{"axis", int64_t{0}}}});
  g.outputs.push_back({"y"});
  const std::map<std::string, Tensor> in{{"x", Tensor::randn({2, 3, 4}, 2)}, {"z", Tensor::randn({2, 2, 4}, 3)}};
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    Engine e = compile(g, {.batch = 2, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
    testing::expect_close(e.run(in).at("y"), run_reference(g, in).at("y"), 0);
    EXPECT_EQ(count_kernels(e.steps(), "copy concat"), 3);
  }
}

TEST(ElementwiseKernels, BinaryOpsBroadcastAScalarOnEitherSide) {
  const float a[] = {1, -2, 3.5f, 4}, b[] = {2, 0.5f, -1, 8};
  float y[4];
  kernels::binary(kernels::BinaryOp::sub, a, false, b, false, y, 4);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{-1, -2.5f, 4.5f, -4}));
  kernels::binary(kernels::BinaryOp::div, a, true, b, false, y, 4);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{0.5f, 2, -1, 0.125f}));
  kernels::binary(kernels::BinaryOp::pow, a, false, b, true, y, 4);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{1, 4, 12.25f, 16}));
  kernels::binary(kernels::BinaryOp::max, a, false, b, true, y, 4);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{2, 2, 3.5f, 4}));
}

}  // namespace
}  // namespace neurite::engine
