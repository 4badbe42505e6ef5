// engine::compile and Engine::run against the reference executor: every zoo
// model dense and 90 % pruned, PyTorch's ONNX exports, batch 1 and 7, both
// modes, every weight form; tile edge cases on hand-built convolution chains.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "engine/kernels.h"
#include "engine/passes.h"
#include "neurite/error.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/reference.h"
#include "neurite/engine/trace.h"
#include "neurite/layers/models.h"
#include "neurite/pruning/pruning.h"
#include "support/expect_error.h"
#include "support/golden.h"
#include "tests/engine/runtimes.h"

namespace neurite::engine {
namespace {

namespace models = layers::models;
using neurite::testing::expect_close;
using neurite::testing::expect_error;
constexpr double kTolerance = 1e-4;

models::ModelOptions options_for(const std::string& model) {
  if (model == "transformer") return {.vocab_size = 300, .seq_len = 16};
  if (model.rfind("resnet", 0) == 0) return {.in_channels = 3, .image_size = 32};
  return {};
}

Tensor random_input(const ValueInfo& in, int64_t batch, uint64_t seed, int64_t bound = 100) {
  Shape s = in.shape;
  if (!s.empty() && s[0] < 0) s[0] = batch;
  return in.type == DataType::float32 ? Tensor::randn(s, seed) : Tensor::randint(s, seed, 0, bound);
}

// Runs `g` compiled with `o` and the reference executor on the same input.
void expect_engine_matches_reference(const Graph& g, const CompileOptions& o, uint64_t seed, int64_t bound = 100) {
  std::map<std::string, Tensor> inputs;
  for (const ValueInfo& in : g.inputs) inputs[in.name] = random_input(in, o.batch, seed, bound);
  const auto want = run_reference(g, inputs);
  Engine e = compile(g, o);
  for (int repeat = 0; repeat < 2; ++repeat) {  // a second run reuses every buffer
    const auto got = e.run(inputs);
    for (const auto& [name, t] : want) {
      SCOPED_TRACE(name + " (run " + std::to_string(repeat) + ")");
      expect_close(got.at(name), t, kTolerance);
    }
  }
}

struct ZooCase {
  std::string model;
  double sparsity;
  std::string mask = "unstructured";
};
void PrintTo(const ZooCase& c, std::ostream* out) { *out << c.model << " " << c.sparsity << " " << c.mask; }

Graph zoo_graph(const ZooCase& c) {
  const models::ModelOptions o = options_for(c.model);
  auto model = models::make_model(c.model, o);
  uint64_t seed = 100;
  for (auto& [name, t] : model->named_buffers())  // trained-looking batch-norm statistics
    if (t.dtype() == autograd::Dtype::f32) t.copy_from_(Tensor::rand(t.shape(), ++seed, 0.5f, 1.5f));
  if (c.sparsity > 0) {
    const auto names = pruning::select(*model, {"__ALL_PRUNABLE__"});
    pruning::prune(*model, names, c.sparsity, pruning::MaskType::parse(c.mask), false);
  }
  model->eval();
  const Tensor example = models::takes_tokens(c.model) ? Tensor::randint({1, o.seq_len}, 1, 0, o.vocab_size)
                                                        : Tensor::randn({1, o.in_channels, o.image_size, o.image_size}, 1);
  return trace(*model, example);
}

class EngineZoo : public ::testing::TestWithParam<ZooCase> {};

TEST_P(EngineZoo, EqualsTheReferenceExecutorAtBatch1And7InBothModes) {
  const Graph g = zoo_graph(GetParam());
  for (int64_t batch : {1, 7})
    for (Mode mode : {Mode::columns, Mode::layers}) {
      SCOPED_TRACE("batch " + std::to_string(batch) + ", " + to_string(mode));
      expect_engine_matches_reference(g, {.batch = batch, .threads = 2, .mode = mode}, 3, 300);
    }
}

// One compiled engine (its tiles on 2 threads) run from 4 threads at once,
// 200 calls each on inputs of their own: each call has its own buffers, and
// every output is the one a lone call gives.
TEST_P(EngineZoo, OneEngineRunsFromFourThreadsAtOnce) {
  const ZooCase& c = GetParam();
  const Graph g = zoo_graph(c);
  Engine engine = compile(g, {.batch = 2, .threads = 2});
  const ValueInfo& input = engine.inputs()[0];
  std::vector<Tensor> inputs, alone;
  for (uint64_t k = 0; k < 4; ++k) {
    inputs.push_back(input.type == DataType::int64 ? Tensor::randint(input.shape, 10 + k, 0, 50)
                                                   : Tensor::randn(input.shape, 10 + k));
    alone.push_back(engine.run({{input.name, inputs.back()}}).at(g.outputs[0].name));
  }
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int call = 0; call < 200; ++call) {
        const Tensor y = engine.run({{input.name, inputs[k]}}).at(g.outputs[0].name);
        wrong[k] += std::memcmp(y.bytes(), alone[k].bytes(), y.nbytes()) != 0;
      }
    });
  for (auto& t : threads) t.join();
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(wrong[k], 0) << "thread " << k;
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, EngineZoo,
    ::testing::Values(ZooCase{"mlp", 0}, ZooCase{"mlp", 0.9}, ZooCase{"cnn", 0}, ZooCase{"cnn", 0.9},
                      ZooCase{"resnet20", 0}, ZooCase{"resnet20", 0.9}, ZooCase{"resnet20", 0.9, "4x1"},
                      ZooCase{"mobilenet", 0}, ZooCase{"mobilenet", 0.9}, ZooCase{"vit-tiny", 0},
                      ZooCase{"vit-tiny", 0.9}, ZooCase{"transformer", 0}, ZooCase{"transformer", 0.9},
                      ZooCase{"transformer", 0.9, "4x1"}),
    [](const auto& info) {
      std::string name = info.param.model + (info.param.sparsity > 0 ? "_pruned_" + info.param.mask : "_dense");
      for (char& c : name)
        if (c == '-' || c == 'x') c = '_';
      return name;
    });

TEST(EngineFormats, EveryWeightFormEqualsTheReference) {
  for (const char* model : {"mlp", "resnet20", "transformer"}) {
    const Graph g = zoo_graph({model, 0.9});
    for (WeightFormat f : {WeightFormat::dense, WeightFormat::csr, WeightFormat::rows4, WeightFormat::cols4})
      for (Mode mode : {Mode::columns, Mode::layers}) {
        SCOPED_TRACE(std::string(model) + " " + to_string(f) + " " + to_string(mode));
        expect_engine_matches_reference(g, {.batch = 3, .threads = 2, .mode = mode, .format = f, .kernels = {.autotune = false}}, 5, 300);
      }
  }
}

TEST(EngineImport, PyTorchExportsEqualTheReference) {
  const std::filesystem::path dir = std::filesystem::path(NEURITE_SOURCE_DIR) / "tests/golden/onnx";
  for (const char* name : {"resnet", "encoder", "mlp"})
    for (const char* opset : {"13", "17"}) {
      const Graph g = load_onnx((dir / (std::string(name) + "_opset" + opset + ".onnx")).string());
      for (int64_t batch : {1, 7})
        for (Mode mode : {Mode::columns, Mode::layers}) {
          SCOPED_TRACE(std::string(name) + " opset " + opset + " batch " + std::to_string(batch) + " " +
                       to_string(mode));
          expect_engine_matches_reference(g, {.batch = batch, .threads = 2, .mode = mode}, 11, 50);
        }
    }
}

// ---- tile edge cases -----------------------------------------------------------

struct ConvSpec {
  int64_t filters, k, stride, pad_top, pad_left, pad_bottom, pad_right;
  bool relu = true;
};

// input (N, C, H, W) -> convs in a chain; `residual_from` adds the output of
// an earlier conv (same shape) to a later one, as ResNet's blocks do.
Graph conv_chain(int64_t c, int64_t h, int64_t w, const std::vector<ConvSpec>& specs, double sparsity,
                 std::pair<int, int> residual = {-1, -1}) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, c, h, w}});
  std::string prev = "x";
  std::vector<std::string> outs;
  uint64_t seed = 40;
  for (size_t i = 0; i < specs.size(); ++i) {
    const ConvSpec& s = specs[i];
    const std::string n = "conv" + std::to_string(i);
    Tensor wt = Tensor::randn({s.filters, c, s.k, s.k}, ++seed, 0, 0.3f);
    const Tensor keep = Tensor::rand(wt.shape(), ++seed);
    for (int64_t j = 0; j < wt.numel(); ++j)
      if (keep.data<float>()[j] < sparsity) wt.data<float>()[j] = 0;
    g.initializers.emplace(n + ".weight", wt);
    g.initializers.emplace(n + ".bias", Tensor::randn({s.filters}, ++seed));
    g.nodes.push_back({.op = OpKind::conv, .name = n, .inputs = {prev, n + ".weight", n + ".bias"},
                       .outputs = {n + ":0"},
                       .attributes = {{"kernel_shape", std::vector<int64_t>{s.k, s.k}},
                                      {"strides", std::vector<int64_t>{s.stride, s.stride}},
                                      {"pads", std::vector<int64_t>{s.pad_top, s.pad_left, s.pad_bottom, s.pad_right}}}});
    prev = n + ":0";
    if (static_cast<int>(i) == residual.second) {
      g.nodes.push_back({.op = OpKind::add, .name = n + ".add", .inputs = {prev, outs.at(residual.first)},
                         .outputs = {n + ".add:0"}});
      prev = n + ".add:0";
    }
    if (s.relu) {
      g.nodes.push_back({.op = OpKind::relu, .name = n + ".relu", .inputs = {prev}, .outputs = {n + ".relu:0"}});
      prev = n + ".relu:0";
    }
    outs.push_back(prev);
    c = s.filters;
  }
  g.outputs.push_back({prev});
  return g;
}

TEST(EngineTiles, BandsWithHalosEqualTheReference) {
  struct Case {
    const char* what;
    int64_t c, h, w;
    std::vector<ConvSpec> specs;
    std::pair<int, int> residual{-1, -1};
  };
  const std::vector<Case> cases{
      {"odd sizes, 3x3 pad 1", 3, 13, 11, {{8, 3, 1, 1, 1, 1, 1}, {8, 3, 1, 1, 1, 1, 1}, {5, 3, 1, 1, 1, 1, 1}}},
      {"stride 2 and 1x1", 4, 17, 15, {{8, 3, 2, 1, 1, 1, 1}, {12, 1, 1, 0, 0, 0, 0}, {6, 3, 2, 1, 1, 1, 1}}},
      {"asymmetric padding, 5x5", 2, 12, 9, {{4, 5, 1, 2, 1, 0, 2}, {4, 3, 1, 0, 0, 1, 1, false}}},
      {"a group of one layer", 3, 10, 10, {{4, 3, 1, 1, 1, 1, 1}}},
      {"a residual branch", 4, 15, 13, {{8, 3, 1, 1, 1, 1, 1}, {8, 3, 1, 1, 1, 1, 1}, {8, 3, 1, 1, 1, 1, 1}}, {0, 2}},
  };
  for (const Case& c : cases)
    for (double sparsity : {0.0, 0.9})
      for (WeightFormat f : {WeightFormat::dense, WeightFormat::csr, WeightFormat::rows4, WeightFormat::cols4})
        for (int64_t tile : {int64_t{2} << 10, int64_t{0}})  // 2 KiB forces bands of a row or two
          for (int64_t batch : {1, 3}) {
            SCOPED_TRACE(fmt::format("{}, sparsity {}, {}, tile {}, batch {}", c.what, sparsity, to_string(f), tile,
                                     batch));
            const Graph g = conv_chain(c.c, c.h, c.w, c.specs, sparsity, c.residual);
            expect_engine_matches_reference(g, {.batch = batch, .threads = 2, .mode = Mode::columns, .format = f,
                                                .tile_bytes = tile, .kernels = {.autotune = false}}, 9);
          }
}

TEST(EngineTiles, SmallTilesStreamBandsThroughTheChain) {
  const Graph g = conv_chain(3, 16, 16, {{8, 3, 1, 1, 1, 1, 1}, {8, 3, 1, 1, 1, 1, 1}}, 0.5);
  Engine e = compile(g, {.batch = 2, .mode = Mode::columns, .format = WeightFormat::csr, .tile_bytes = 4 << 10,
                         .kernels = {.autotune = false}});
  const auto steps = e.steps();
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].group, 0);
  EXPECT_EQ(steps[1].group, 0);
  EXPECT_NE(steps[0].kernel.find("+bias+relu"), std::string::npos) << steps[0].kernel;
  e.set_profiling(true);
  e.run({{"x", Tensor::randn({2, 3, 16, 16}, 1)}});
  const auto profile = e.profile();
  ASSERT_EQ(profile.size(), 1u);
  EXPECT_NE(profile[0].name.find("bands of"), std::string::npos) << profile[0].name;
}

TEST(EngineColumns, TheOpTableSplitsColumnsAtOpsThatMixTheBatch) {
  // fc0 -> relu -> softmax over the batch axis -> fc1 -> fc2: the softmax
  // cannot run on a slice of the batch, so only fc1 and fc2 form a column.
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 8}});
  std::string prev = "x";
  auto fc = [&](const std::string& name) {
    g.initializers[name + ".weight"] = Tensor::randn({8, 8}, g.initializers.size() + 1);
    g.nodes.push_back({.op = OpKind::gemm, .name = name, .inputs = {prev, name + ".weight"}, .outputs = {name + ":0"},
                       .attributes = {{"transB", int64_t{1}}}});
    prev = name + ":0";
  };
  fc("fc0");
  g.nodes.push_back({.op = OpKind::relu, .name = "relu", .inputs = {prev}, .outputs = {"relu:0"}});
  g.nodes.push_back({.op = OpKind::softmax, .name = "mix", .inputs = {"relu:0"}, .outputs = {"mix:0"},
                     .attributes = {{"axis", int64_t{0}}}});
  prev = "mix:0";
  fc("fc1");
  fc("fc2");
  g.outputs.push_back({prev});
  for (Mode mode : {Mode::columns, Mode::layers}) {
    Engine e = compile(g, {.batch = 4, .mode = mode, .format = WeightFormat::dense, .kernels = {.autotune = false}});
    std::vector<int> groups;
    for (const StepInfo& s : e.steps()) groups.push_back(s.group);
    EXPECT_EQ(groups, mode == Mode::columns ? (std::vector<int>{-1, -1, 0, 0}) : (std::vector<int>{-1, -1, -1, -1}));
    const Tensor x = Tensor::randn({4, 8}, 9);
    expect_close(e.run({{"x", x}}).begin()->second, run_reference(g, {{"x", x}}).begin()->second, kTolerance);
  }
}

TEST(EngineLinear, GemmAlphaBetaAndTransposesEqualTheReference) {
  for (int64_t trans_b : {0, 1})
    for (WeightFormat f : {WeightFormat::dense, WeightFormat::csr, WeightFormat::rows4}) {
      Graph g;
      g.inputs.push_back({"x", DataType::float32, {-1, 12}});
      g.initializers["w"] = Tensor::randn(trans_b ? Shape{8, 12} : Shape{12, 8}, 3);
      g.initializers["c"] = Tensor::randn({8}, 4);
      g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"x", "w", "c"}, .outputs = {"y"},
                         .attributes = {{"alpha", 0.5}, {"beta", 2.0}, {"transB", trans_b}}});
      g.outputs.push_back({"y"});
      const Tensor x = Tensor::randn({5, 12}, 5);
      SCOPED_TRACE(fmt::format("transB {}, {}", trans_b, to_string(f)));
      Engine e = compile(g, {.batch = 5, .format = f, .kernels = {.autotune = false}});
      expect_close(e.run({{"x", x}}).at("y"), run_reference(g, {{"x", x}}).at("y"), kTolerance);
    }
}

// A batch of up to four rows runs as dot products per output feature
// (LinearKernel::sparse_rows), with every block form, a residual and ReLU6,
// and chained sparse layers; more rows take the feature-major product.
TEST(EngineLinear, FewRowsEqualTheReferenceInEveryForm) {
  for (WeightFormat f : {WeightFormat::csr, WeightFormat::rows4, WeightFormat::cols4, WeightFormat::dense})
    for (int64_t batch : {1, 2, 3, 4, 6}) {
      Graph g;
      g.inputs.push_back({"x", DataType::float32, {-1, 37}});
      Tensor w1 = Tensor::randn({37, 29}, 3), w2 = Tensor::randn({29, 37}, 4);
      for (Tensor* w : {&w1, &w2})
        for (int64_t i = 0; i < w->numel(); ++i)
          if (i % 3 != 0) w->data<float>()[i] = 0.0f;  // two in three pruned
      g.initializers["w1"] = w1;
      g.initializers["w2"] = w2;
      g.initializers["b1"] = Tensor::randn({29}, 5);
      g.initializers["lo"] = Tensor::scalar(0.0f);
      g.initializers["hi"] = Tensor::scalar(6.0f);
      g.nodes.push_back({.op = OpKind::matmul, .name = "fc1", .inputs = {"x", "w1"}, .outputs = {"h"}, .attributes = {}});
      g.nodes.push_back({.op = OpKind::add, .name = "bias", .inputs = {"b1", "h"}, .outputs = {"hb"}, .attributes = {}});
      g.nodes.push_back({.op = OpKind::clip, .name = "relu6", .inputs = {"hb", "lo", "hi"}, .outputs = {"a"}, .attributes = {}});
      g.nodes.push_back({.op = OpKind::matmul, .name = "fc2", .inputs = {"a", "w2"}, .outputs = {"z"}, .attributes = {}});
      g.nodes.push_back({.op = OpKind::add, .name = "residual", .inputs = {"z", "x"}, .outputs = {"y"}, .attributes = {}});
      g.outputs.push_back({"y"});
      const Tensor x = Tensor::randn({batch, 37}, 6, 0, 4);
      SCOPED_TRACE(fmt::format("{}, batch {}", to_string(f), batch));
      Engine e = compile(g, {.batch = batch, .threads = 2, .mode = Mode::layers, .format = f, .kernels = {.autotune = false}});
      expect_close(e.run({{"x", x}}).at("y"), run_reference(g, {{"x", x}}).at("y"), kTolerance);
      const auto steps = e.steps();
      ASSERT_EQ(steps.size(), 2u);
      EXPECT_NE(steps[0].kernel.find("+relu6"), std::string::npos) << steps[0].kernel;
      EXPECT_NE(steps[1].kernel.find("+add"), std::string::npos) << steps[1].kernel;
    }
}

// ---- passes and errors -----------------------------------------------------------

TEST(EnginePasses, BatchNormFoldsIntoTheConvolutionBeforeIt) {
  Graph g = zoo_graph({"resnet20", 0});
  const std::map<std::string, Tensor> in{{"input", Tensor::randn({2, 3, 32, 32}, 3)}};
  const auto want = run_reference(g, in);
  detail::specialize(g, 2);
  detail::fold_batch_norm(g);
  for (const Node& n : g.nodes) EXPECT_NE(n.op, OpKind::batch_norm) << n.name;
  expect_close(run_reference(g, in).begin()->second, want.begin()->second, kTolerance);
}

// conv (N,3,5,5) -> (N,4,5,5), or gemm (N,6) -> (N,4), then batch norm with
// running variances 1e-8, 0, 2.5 and 1e-6, so that eps is most of var + eps.
Graph conv_or_gemm_then_batch_norm(bool conv, bool trans_b, std::optional<double> epsilon) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, conv ? Shape{-1, 3, 5, 5} : Shape{-1, 6}});
  g.initializers.emplace("w", conv ? Tensor::randn({4, 3, 3, 3}, 1) : Tensor::randn(trans_b ? Shape{4, 6} : Shape{6, 4}, 1));
  g.initializers.emplace("b", Tensor::randn({4}, 2));
  g.initializers.emplace("bn.weight", Tensor::rand({4}, 3, 0.5f, 1.5f));
  g.initializers.emplace("bn.bias", Tensor::randn({4}, 4));
  // Means away from the pre-activations (|y| < 16): y - mean never cancels, which
  // would magnify the kernels' rounding by 1 / sqrt(eps) where var is tiny.
  g.initializers.emplace("bn.running_mean", Tensor::from_data({4}, std::vector<float>{20.5f, -19.25f, 18.0f, -22.75f}));
  g.initializers.emplace("bn.running_var", Tensor::from_data({4}, std::vector<float>{1e-8f, 0.0f, 2.5f, 1e-6f}));
  if (conv)
    g.nodes.push_back({.op = OpKind::conv, .name = "conv", .inputs = {"x", "w", "b"}, .outputs = {"y"},
                       .attributes = {{"kernel_shape", std::vector<int64_t>{3, 3}},
                                      {"pads", std::vector<int64_t>{1, 1, 1, 1}}}});
  else  // alpha and beta too: folding must take them into the weight and bias
    g.nodes.push_back({.op = OpKind::gemm, .name = "gemm", .inputs = {"x", "w", "b"}, .outputs = {"y"},
                       .attributes = {{"transB", int64_t{trans_b ? 1 : 0}}, {"alpha", 0.5}, {"beta", 2.0}}});
  Node bn{.op = OpKind::batch_norm, .name = "bn",
          .inputs = {"y", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}, .outputs = {"z"}};
  if (epsilon) bn.attributes["epsilon"] = *epsilon;
  g.nodes.push_back(bn);
  g.outputs.push_back({"z"});
  return g;
}

// Folding is exact algebra, so the folded graph and the compiled engine match
// the unfolded reference to 1e-5 relative even where var + eps is nearly all eps
// (a misplaced or ignored eps then changes the scale by a factor, not 1e-6).
TEST(EnginePasses, BatchNormFoldsExactlyWithTinyVarianceAndLargeEpsilon) {
  for (const auto& [conv, trans_b] : {std::pair{true, false}, {false, true}, {false, false}})
    for (const std::optional<double> epsilon : {std::optional<double>{}, {1e-3}, {0.5}}) {
      SCOPED_TRACE(fmt::format("{} epsilon {}", conv ? "conv" : trans_b ? "gemm transB" : "gemm",
                               epsilon ? std::to_string(*epsilon) : "default"));
      const Graph g = conv_or_gemm_then_batch_norm(conv, trans_b, epsilon);
      const std::map<std::string, Tensor> in{{"x", Tensor::randn(conv ? Shape{2, 3, 5, 5} : Shape{2, 6}, 6)}};
      const Tensor want = run_reference(g, in).at("z");
      Graph folded = g;
      detail::specialize(folded, 2);
      detail::fold_batch_norm(folded);
      ASSERT_EQ(folded.nodes.size(), 1u);
      EXPECT_NE(folded.nodes[0].op, OpKind::batch_norm);
      neurite::testing::expect_close(run_reference(folded, in).at("z"), want, "folded graph", 1e-5, 1e-5);
      for (const Mode mode : {Mode::layers, Mode::columns}) {
        Engine e = compile(g, {.batch = 2, .mode = mode, .kernels = {.autotune = false}});
        neurite::testing::expect_close(e.run(in).at("z"), want, mode == Mode::layers ? "engine, layers" : "engine, columns",
                                       1e-5, 1e-5);
      }
    }
}

TEST(EnginePasses, DeadNodesAndTheirWeightsGo) {
  Graph g = conv_chain(2, 6, 6, {{3, 3, 1, 1, 1, 1, 1}, {3, 3, 1, 1, 1, 1, 1}}, 0);
  g.outputs = {{"conv0.relu:0"}};
  detail::drop_dead_nodes(g);
  EXPECT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.initializers.count("conv1.weight"), 0u);
}

TEST(EngineShapes, DynamicDimensionsBeyondTheBatchTakeTheGivenShape) {
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, -1, 4}});  // (batch, sequence, features)
  g.nodes.push_back({.op = OpKind::relu, .name = "relu", .inputs = {"x"}, .outputs = {"y"}});
  g.outputs.push_back({"y"});
  const Tensor x = Tensor::randn({2, 3, 4}, 1);
  Engine e = compile(g, {.batch = 2, .input_shapes = {{"x", {2, 3, 4}}}});
  EXPECT_EQ(e.inputs().at(0).shape, (Shape{2, 3, 4}));
  expect_close(e.run({{"x", x}}).at("y"), run_reference(g, {{"x", x}}).at("y"), 0);
  expect_error<ShapeError>([&] { compile(g, {.batch = 2}); }, {"input 'x'", "dynamic dimension 1", "input_shapes"});
  expect_error<ShapeError>([&] { compile(g, {.input_shapes = {{"x", {2, 3, 5}}}}); },
                           {"input 'x' is [2,3,5], the graph expects [-1,-1,4]"});
  expect_error<ShapeError>([&] { compile(g, {.input_shapes = {{"z", {2}}}}); }, {"'z'", "not an input"});
}

TEST(EngineErrors, BadInputsNameTheInput) {
  const Graph g = conv_chain(2, 6, 6, {{3, 3, 1, 1, 1, 1, 1}}, 0);
  Engine e = compile(g, {.batch = 2});
  expect_error<ShapeError>([&] { e.run({{"x", Tensor::randn({3, 2, 6, 6}, 1)}}); }, {"input 'x' is [3,2,6,6]", "compiled for [2,2,6,6]"});
  expect_error<ShapeError>([&] { e.run({}); }, {"input 'x' is not given"});
  Graph dynamic = g;
  dynamic.inputs[0].shape = {-1, 2, -1, 6};
  expect_error<ShapeError>([&] { compile(dynamic, {.batch = 2}); }, {"dynamic dimension 2"});
  expect_error<ValueError>([] { parse_mode("tiles"); }, {"expected columns or layers"});
}

}  // namespace
}  // namespace neurite::engine
