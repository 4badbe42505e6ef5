// trace(Module) for every zoo model, dense and 90 % pruned: the graph runs in
// the reference executor and in ONNX Runtime 1.17 (npm onnxruntime-node) with
// the Module's outputs, passes onnx.checker (Debian's python3-onnx), and
// survives export -> import -> export unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/reference.h"
#include "neurite/engine/trace.h"
#include "neurite/kernels/int8.h"
#include "neurite/layers/layers.h"
#include "neurite/layers/models.h"
#include "neurite/pruning/pruning.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "tests/engine/runtimes.h"

namespace neurite::engine {
namespace {

using autograd::Variable;
namespace models = layers::models;

struct ZooCase {
  std::string model;
  double sparsity;
};

void PrintTo(const ZooCase& c, std::ostream* out) { *out << c.model << " at sparsity " << c.sparsity; }

std::string case_name(const ::testing::TestParamInfo<ZooCase>& info) {
  std::string name = info.param.model + (info.param.sparsity > 0 ? "_pruned" : "_dense");
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

models::ModelOptions options_for(const std::string& model) {
  if (model == "transformer") return {.vocab_size = 500, .seq_len = 16};
  if (model.rfind("resnet", 0) == 0) return {.in_channels = 3, .image_size = 32};
  return {};
}

Tensor input_for(const std::string& model, const models::ModelOptions& o, int64_t batch, uint64_t seed) {
  if (models::takes_tokens(model)) return Tensor::randint({batch, o.seq_len}, seed, 0, o.vocab_size);
  return Tensor::randn({batch, o.in_channels, o.image_size, o.image_size}, seed);
}

// Trained-looking weights: the zoo's initial batch-norm statistics are 0 and 1,
// which would hide a wrong mean or variance.
void perturb_buffers(layers::Module& m) {
  uint64_t seed = 100;
  for (auto& [name, t] : m.named_buffers())
    if (t.dtype() == autograd::Dtype::f32) t.copy_from_(Tensor::rand(t.shape(), ++seed, 0.5f, 1.5f));
}

// g saved at opsets 17 and 13 into dir (onnx.checker must accept both), and
// the opset-17 file imported again, which must export to the same bytes.
struct Saved {
  std::string path17, path13;
  Graph imported;
};
Saved save_and_import(const Graph& g, const std::filesystem::path& dir) {
  Saved s{(dir / "model17.onnx").string(), (dir / "model13.onnx").string(), {}};
  save_onnx(g, s.path17);
  save_onnx(g, s.path13, {.opset = 13});
  EXPECT_TRUE(testing::onnx_checker_accepts({s.path17, s.path13}));
  s.imported = load_onnx(s.path17);
  EXPECT_EQ(to_onnx(s.imported), to_onnx(g)) << "export -> import -> export is the same file";
  return s;
}

class TraceZoo : public ::testing::TestWithParam<ZooCase> {};

TEST_P(TraceZoo, GraphRunsAsTheModuleInOurExecutorAndInOnnxRuntime) {
  const ZooCase c = GetParam();
  const models::ModelOptions o = options_for(c.model);
  auto model = models::make_model(c.model, o);
  perturb_buffers(*model);
  std::vector<std::string> names;
  if (c.sparsity > 0) {
    names = pruning::select(*model, {"__ALL_PRUNABLE__"});
    pruning::prune(*model, names, c.sparsity, pruning::MaskType::parse("unstructured"), false);
  }
  model->eval();
  const Graph g = trace(*model, input_for(c.model, o, 1, 1));
  EXPECT_EQ(g.inputs.at(0).shape.at(0), -1) << "the batch stays dynamic";
  for (const std::string& name : names) {  // masks are multiplied into the weights
    ASSERT_TRUE(g.metadata.count("sparsity:" + name)) << name;
    EXPECT_NEAR(std::stod(g.metadata.at("sparsity:" + name)), c.sparsity, 0.01);
  }

  const auto dir = testing::temp_dir("trace_" + case_name({c, 0}));
  const auto [path17, path13, imported] = save_and_import(g, dir);

  for (int64_t batch : {1, 7}) {
    SCOPED_TRACE(fmt::format("batch {}", batch));
    const Tensor x = input_for(c.model, o, batch, 10 + batch);
    Tensor want;
    {
      autograd::NoGradGuard no_grad;
      want = model->forward(Variable(x)).data();
    }
    testing::expect_close(run_reference(g, {{"input", x}}).at("output"), want, 1e-4);
    testing::expect_close(run_reference(imported, {{"input", x}}).at("output"), want, 1e-4);
    for (const std::string& path : {path17, path13}) {
      SCOPED_TRACE(path);
      testing::expect_close(testing::run_onnxruntime(path, x, dir), want, 1e-4);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, TraceZoo,
                         ::testing::Values(ZooCase{"mlp", 0}, ZooCase{"mlp", 0.9}, ZooCase{"cnn", 0},
                                           ZooCase{"cnn", 0.9}, ZooCase{"resnet20", 0}, ZooCase{"resnet20", 0.9},
                                           ZooCase{"mobilenet", 0}, ZooCase{"mobilenet", 0.9}, ZooCase{"vit-tiny", 0},
                                           ZooCase{"vit-tiny", 0.9}, ZooCase{"transformer", 0},
                                           ZooCase{"transformer", 0.9}),
                         case_name);

// Quantisation-aware models (90 % pruned, so sparsity and 8-bit grids
// compound) export as QuantizeLinear/DequantizeLinear pairs: onnx.checker
// accepts the files, ONNX Runtime runs them with the module's outputs, the
// engine too (the pairs as fake-quantize steps), and the pruned weights stay
// zero through their symmetric grids.
TEST(Trace, QuantizedModelsExportAsQdqPairsThatOnnxRuntimeRuns) {
  for (const bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per-channel weights" : "per-tensor weights");
    auto model = models::make_model("cnn", {.image_size = 12, .num_classes = 4});
    perturb_buffers(*model);
    const auto names = pruning::select(*model, {"__ALL_PRUNABLE__"});
    pruning::prune(*model, names, 0.9, pruning::MaskType::parse("unstructured"), false);
    layers::QuantScheme scheme;
    scheme.weights->per_channel = per_channel;
    int quantised = 0;
    auto quantize = [&](auto& self, layers::Module& m) -> void {
      if (auto* q = dynamic_cast<layers::QuantizableLayer*>(&m)) q->quantize(scheme), ++quantised;
      for (auto& [n, child] : m.named_children()) self(self, *child);
    };
    quantize(quantize, *model);
    ASSERT_EQ(quantised, 4);
    model->train();
    for (uint64_t seed = 20; seed < 24; ++seed) model->forward(Variable(Tensor::randn({8, 1, 12, 12}, seed)));
    model->eval();
    const Graph g = trace(*model, Tensor::zeros({1, 1, 12, 12}));
    int pairs = 0;
    for (const Node& n : g.nodes) pairs += n.op == OpKind::quantize_linear;
    EXPECT_EQ(pairs, 8) << "inputs and weights of two convolutions and two linear layers";
    for (const std::string& name : names) EXPECT_NEAR(std::stod(g.metadata.at("sparsity:" + name)), 0.9, 0.01);

    const auto dir = testing::temp_dir(per_channel ? "trace_qdq_channel" : "trace_qdq_tensor");
    const auto [path17, path13, imported] = save_and_import(g, dir);

    const Tensor x = Tensor::randn({20, 1, 12, 12}, 30);  // a vector of items or more: the INT8 kernels' batch
    Tensor want;
    {
      autograd::NoGradGuard no_grad;
      want = model->forward(Variable(x)).data();
    }
    testing::expect_close(run_reference(imported, {{"input", x}}).at("output"), want, 1e-5);
    for (const std::string& path : {path17, path13}) testing::expect_close(testing::run_onnxruntime(path, x, dir), want, 1e-4);
    for (const Mode mode : {Mode::layers, Mode::columns}) {
      Engine e = compile(imported, {.batch = 20, .mode = mode, .kernels = {.autotune = false}});
      testing::expect_close(e.run({{"input", x}}).at("output"), want, 1e-4);
      int fake = 0, int8 = 0;
      for (const StepInfo& s : e.steps()) {
        EXPECT_EQ(s.kernel.find("node QuantizeLinear"), std::string::npos) << s.name;
        fake += s.kernel.find("fake quantize") != std::string::npos;
        int8 += s.kernel.find("int8 1x4") != std::string::npos;
      }
      // Convolutions (their batch norms folded into the weights' grids) and
      // linear layers on the INT8 kernels where VNNI is; else the input pairs
      // as fake-quantize steps, the weights' pairs folded into float weights.
      EXPECT_EQ(int8, kernels::has_vnni() ? 4 : 0);
      EXPECT_EQ(fake + int8, 4);
    }
  }
}

// Two quantised linear layers on (N, L, E) items, the second with a residual
// and ReLU after it: MatMul on 3-D inputs, the bias Add, the residual and the
// activation all fused into the INT8 steps; per-channel weights on one.
struct QuantizedBlock : layers::UnaryModule {
  std::shared_ptr<layers::Linear> up = register_module("up", std::make_shared<layers::Linear>(32, 48));
  std::shared_ptr<layers::Linear> down = register_module("down", std::make_shared<layers::Linear>(48, 32));
  Variable forward(const Variable& x) override { return autograd::relu(down->forward(autograd::relu(up->forward(x))) + x); }
};

TEST(Trace, QuantizedLinearLayersRunOnInt8StepsAsTheReference) {
  QuantizedBlock model;
  pruning::prune(model, {"up.weight", "down.weight"}, 0.8, pruning::MaskType::parse("unstructured"), false);
  layers::QuantScheme per_channel;
  per_channel.weights->per_channel = true;
  model.up->quantize({});
  model.down->quantize(per_channel);
  for (uint64_t seed = 40; seed < 43; ++seed) model.forward(Variable(Tensor::randn({8, 4, 32}, seed)));
  model.eval();
  const Graph g = trace(model, Tensor::zeros({1, 4, 32}));
  const Tensor x = Tensor::randn({20, 4, 32}, 44);
  Tensor want;
  {
    autograd::NoGradGuard no_grad;
    want = model.forward(Variable(x)).data();
  }
  testing::expect_close(run_reference(g, {{"input", x}}).at("output"), want, 1e-5);
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    Engine e = compile(g, {.batch = 20, .threads = 2, .mode = mode, .kernels = {.autotune = false}});
    testing::expect_close(e.run({{"input", x}}).at("output"), want, 1e-4);
    int int8 = 0;
    for (const StepInfo& s : e.steps()) int8 += s.kernel.find("int8 1x4") != std::string::npos;
    EXPECT_EQ(int8, kernels::has_vnni() ? 2 : 0);
  }
}

// Quantised convolutions of stride 2 (phase planes), dilation 2 and a 1x1
// projection, with a batch norm folded into the first one's grids and odd
// channel counts (quads padded): the INT8 steps compute the module.
struct QuantizedConvs : layers::UnaryModule {
  std::shared_ptr<layers::Conv2d> a = register_module(
      "a", std::make_shared<layers::Conv2d>(3, 8, 3, layers::Conv2dLayerOptions{.stride = 2, .padding = 1}));
  std::shared_ptr<layers::BatchNorm2d> bn = register_module("bn", std::make_shared<layers::BatchNorm2d>(8));
  std::shared_ptr<layers::Conv2d> b = register_module(
      "b", std::make_shared<layers::Conv2d>(8, 5, 3, layers::Conv2dLayerOptions{.padding = 2, .dilation = 2}));
  std::shared_ptr<layers::Conv2d> c = register_module(
      "c", std::make_shared<layers::Conv2d>(5, 6, 1, layers::Conv2dLayerOptions{.stride = 2}));
  Variable forward(const Variable& x) override {
    return c->forward(autograd::relu(b->forward(autograd::relu(bn->forward(a->forward(x))))));
  }
};

TEST(Trace, QuantizedConvolutionsRunOnInt8StepsAsTheModule) {
  QuantizedConvs model;
  perturb_buffers(model);
  pruning::prune(model, {"a.weight", "b.weight"}, 0.5, pruning::MaskType::parse("unstructured"), false);
  layers::QuantScheme per_channel;
  per_channel.weights->per_channel = true;
  model.a->quantize(per_channel);
  model.b->quantize({});
  model.c->quantize({});
  model.train();
  for (uint64_t seed = 60; seed < 63; ++seed) model.forward(Variable(Tensor::randn({4, 3, 13, 11}, seed)));
  model.eval();
  const Graph g = trace(model, Tensor::zeros({1, 3, 13, 11}));
  const Tensor x = Tensor::randn({3, 3, 13, 11}, 64);
  Tensor want;
  {
    autograd::NoGradGuard no_grad;
    want = model.forward(Variable(x)).data();
  }
  for (const Mode mode : {Mode::layers, Mode::columns})
    for (const int threads : {1, 2}) {
      Engine e = compile(g, {.batch = 3, .threads = threads, .mode = mode, .kernels = {.autotune = false}});
      testing::expect_close(e.run({{"input", x}}).at("output"), want, 1e-4);
      int int8 = 0;
      for (const StepInfo& s : e.steps()) int8 += s.kernel.find("int8 1x4") != std::string::npos;
      EXPECT_EQ(int8, kernels::has_vnni() ? 3 : 0);
    }
}

// A module whose forward uses an op the graph IR cannot express, or reads a
// tensor shaped by the batch that no op made.
struct Untraceable : layers::UnaryModule {
  bool batch_constant = false;
  Variable forward(const Variable& x) override {
    if (batch_constant) return x + Variable(Tensor::zeros(x.shape()));
    return autograd::exp(x);
  }
};

TEST(Trace, RefusesWhatTheGraphCannotExpress) {
  Untraceable m;
  testing::expect_error<ValueError>([&] { trace(m, Tensor::zeros({2, 3})); }, {"exp"});
  m.batch_constant = true;
  testing::expect_error<ValueError>([&] { trace(m, Tensor::zeros({2, 3})); }, {"follows the batch", "expand()"});
  EXPECT_NO_THROW(trace(m, Tensor::zeros({2, 3}), {.dynamic_batch = false}));
}

// A pruned model traced in training mode under `always` sparse kernels: trace
// runs it in eval mode with dense kernels (its graph computes what the module
// does), then puts back both the mode and the kernel policy.
TEST(Trace, RestoresTheModulesModeAndKernels) {
  using kernels::SparseKernels;
  auto model = models::make_model("cnn", {.image_size = 12, .num_classes = 4});  // batch norm and dropout
  perturb_buffers(*model);
  pruning::prune(*model, pruning::select(*model, {"__ALL_PRUNABLE__"}), 0.9, pruning::MaskType::parse("unstructured"),
                 false);
  const Tensor x = Tensor::randn({3, 1, 12, 12}, 4);
  Tensor want;
  {
    autograd::NoGradGuard no_grad;
    model->set_kernel_policy({.sparse = SparseKernels::never});
    model->eval();
    want = model->forward(Variable(x)).data();
  }
  for (const auto kernels : {SparseKernels::always, SparseKernels::never}) {
    SCOPED_TRACE(kernels == SparseKernels::always ? "always" : "never");
    model->set_kernel_policy({.sparse = kernels, .isa = kernels::Isa::reference, .autotune = false});
    model->train();
    const Graph g = trace(*model, Tensor::zeros({1, 1, 12, 12}));
    EXPECT_TRUE(model->is_training());
    EXPECT_EQ(model->kernel_policy().sparse, kernels);
    EXPECT_EQ(model->kernel_policy().isa, kernels::Isa::reference);
    EXPECT_FALSE(model->kernel_policy().autotune);
    testing::expect_close(run_reference(g, {{"input", x}}).at("output"), want, 1e-5);
    for (const auto& [name, p] : model->named_parameters()) {
      if (p->shape().size() >= 2) {
        EXPECT_TRUE(p->has_mask()) << name << " lost its mask";
      }
    }
    model->eval();
    trace(*model, Tensor::zeros({1, 1, 12, 12}));
    EXPECT_FALSE(model->is_training());
  }
}

// Convolution and pooling with a different stride, padding and dilation on
// each axis (the zoo's are all square), as ONNX's [h, w] and [h_begin,
// w_begin, h_end, w_end] attributes: the traced graph, its ONNX file in ONNX
// Runtime, the imported graph and the compiled engine all compute the module.
struct UnevenAxes : layers::UnaryModule {
  layers::Parameter& weight = register_parameter("weight", Tensor::randn({4, 2, 3, 3}, 7, 0, 0.3f));
  layers::Parameter& bias = register_parameter("bias", Tensor::randn({4}, 8));
  Variable forward(const Variable& x) override {  // (N, 2, 9, 13)
    Variable y = autograd::conv2d(x, weight.value(), bias.value(),
                                  {.stride_h = 1, .stride_w = 2, .pad_h = 1, .pad_w = 2, .dilation_h = 2, .dilation_w = 1});
    // (N, 4, 7, 8)
    y = autograd::max_pool2d(y, {.kernel_h = 2, .kernel_w = 3, .stride_h = 1, .stride_w = 2, .pad_h = 0, .pad_w = 1});
    // (N, 4, 6, 4)
    const autograd::Pool2dOptions avg{.kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 0};
    Variable include = autograd::avg_pool2d(y, avg);  // (N, 4, 3, 3)
    autograd::Pool2dOptions exclude = avg;
    exclude.count_include_pad = false;
    return include + autograd::avg_pool2d(y, exclude) * 2.0f;
  }
};

TEST(Trace, UnequalStridesPaddingAndDilationPerAxisExportAsTheModuleRuns) {
  UnevenAxes model;
  const Graph g = trace(model, Tensor::randn({1, 2, 9, 13}, 1));
  const auto dir = testing::temp_dir("trace_uneven_axes");
  const std::string path = (dir / "uneven.onnx").string();
  save_onnx(g, path);
  EXPECT_TRUE(testing::onnx_checker_accepts({path}));
  const Graph imported = load_onnx(path);
  const Tensor x = Tensor::randn({3, 2, 9, 13}, 2);
  Tensor want;
  {
    autograd::NoGradGuard no_grad;
    want = model.forward(Variable(x)).data();
  }
  ASSERT_EQ(want.shape(), (Shape{3, 4, 3, 3}));
  testing::expect_close(run_reference(g, {{"input", x}}).at("output"), want, 1e-5);
  testing::expect_close(run_reference(imported, {{"input", x}}).at("output"), want, 1e-5);
  testing::expect_close(testing::run_onnxruntime(path, x, dir), want, 1e-5);
  for (const Mode mode : {Mode::layers, Mode::columns}) {
    SCOPED_TRACE(mode == Mode::layers ? "engine, layers" : "engine, columns");
    testing::expect_close(compile(g, {.batch = 3, .mode = mode, .kernels = {.autotune = false}}).run({{"input", x}}).at("output"),
                          want, 1e-5);
  }
}

// summarize: every Linear of an MLP with its output shape and 2 x B x in x out
// FLOPs, the pruned zeros counted off; named_modules and apply see every layer.
TEST(Summary, CountsEachLayersFlopsAndSparsity) {
  auto model = layers::models::make_model("mlp", {.image_size = 8, .num_classes = 5});
  int linears = 0;
  model->apply([&](layers::Module& m) { linears += dynamic_cast<layers::Linear*>(&m) != nullptr; });
  int named = 0;
  for (const auto& [name, m] : model->named_modules()) named += dynamic_cast<layers::Linear*>(m.get()) != nullptr;
  EXPECT_EQ(named, linears);
  pruning::prune(*model, pruning::select(*model, {"__ALL_PRUNABLE__"}), 0.75, {}, false);
  const ModelSummary s = summarize(*model, Tensor::randn({3, 1, 8, 8}, 1));
  ASSERT_EQ(static_cast<int>(s.layers.size()), linears);
  double want = 0;
  for (const auto& [name, p] : model->named_parameters())
    if (p->shape().size() == 2) want += 2.0 * 3 * static_cast<double>(p->numel());
  EXPECT_DOUBLE_EQ(s.flops, want);
  EXPECT_NEAR(s.sparse_flops, 0.25 * want, 0.01 * want);
  EXPECT_EQ(s.layers.back().output, (Shape{3, 5}));
  EXPECT_EQ(s.parameters, model->parameter_count());
  EXPECT_NE(s.to_string().find("MFLOPs"), std::string::npos);
}

}  // namespace
}  // namespace neurite::engine
