// GraphModule: models exported by PyTorch 1.13 in training mode
// (tests/golden/make_train_golden.py) train as PyTorch trains them — one SGD
// step gives PyTorch's weights and running statistics — keep PyTorch's
// parameter names, prune and export back to ONNX.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "neurite/autograd/ops.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/reference.h"
#include "engine/reference_values.h"
#include "neurite/error.h"
#include "neurite/layers/layers.h"
#include "neurite/pruning/pruning.h"
#include "support/temp_dir.h"
#include "tests/engine/runtimes.h"

namespace neurite::engine {
namespace {

const std::string kDir = NEURITE_SOURCE_DIR "/tests/golden/train/";

// max |a - b| / max(1, |b|) over the elements.
double relative_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
  }
  return worst;
}

// The batch of model `model_name`: NAME_input.npy, then NAME_input2.npy ... for a model of several inputs.
std::vector<Tensor> golden_inputs(const std::string& model_name) {
  std::vector<Tensor> inputs{autograd::load_npy(kDir + model_name + "_input.npy")};
  for (int k = 2; std::filesystem::exists(kDir + model_name + "_input" + std::to_string(k) + ".npy"); ++k)
    inputs.push_back(autograd::load_npy(kDir + model_name + "_input" + std::to_string(k) + ".npy"));
  return inputs;
}

std::vector<Variable> variables(const std::vector<Tensor>& tensors) { return {tensors.begin(), tensors.end()}; }

class TrainedExport : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainedExport, OneSgdStepGivesPyTorchsWeights) {
  const std::string name = GetParam();  // e.g. "cnn_train_opset13"
  const std::string model_name = name.substr(0, name.find("_train_opset"));
  const std::vector<Tensor> x = golden_inputs(model_name);
  const Tensor target = autograd::load_npy(kDir + model_name + "_target.npy");
  GraphModule model(load_onnx(kDir + name + ".onnx"));
  model.train();
  Variable loss = autograd::cross_entropy(model.forward_inputs(variables(x)), target);
  loss.backward();
  for (auto& [n, p] : model.named_parameters()) {
    ASSERT_TRUE(p->value().grad().defined()) << n << " got no gradient";
    Tensor w = p->value().data();
    const float* g = p->value().grad().data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] -= 0.1f * g[i];
  }
  const Graph want = load_onnx(kDir + model_name + "_step.onnx");
  const Graph got = model.exported();
  int64_t compared = 0;
  for (const auto& [init, value] : want.initializers) {
    if (value.dtype() != autograd::Dtype::f32) continue;
    SCOPED_TRACE(init);
    ASSERT_EQ(got.initializers.count(init), 1u);
    EXPECT_LT(relative_error(got.initializers.at(init), value), 1e-4);
    ++compared;
  }
  EXPECT_GE(compared, 4);
  // PyTorch's names, each once: the parameters are the graph's weights.
  for (const auto& [n, p] : model.named_parameters()) EXPECT_EQ(want.initializers.count(n), 1u) << n;
}

// After training, the module in eval mode, its export in the engine and in ONNX
// Runtime give the same outputs: the file goes back as it came, trained.
TEST_P(TrainedExport, ItsEvalExportRunsInTheEngineAndOnnxRuntimeAsTheModule) {
  const std::string name = GetParam();
  const std::string model_name = name.substr(0, name.find("_train_opset"));
  const std::vector<Tensor> x = golden_inputs(model_name);
  GraphModule model(load_onnx(kDir + name + ".onnx"));
  model.train();
  autograd::cross_entropy(model.forward_inputs(variables(x)), autograd::load_npy(kDir + model_name + "_target.npy"))
      .backward();  // moves BatchNorm's running statistics off their initial values
  model.eval();
  autograd::NoGradGuard no_grad;
  const Tensor y = model.forward_inputs(variables(x)).data();
  const Graph g = model.exported();
  Engine engine = compile(g, {.batch = x[0].shape()[0]});
  std::map<std::string, Tensor> feed;
  for (size_t k = 0; k < x.size(); ++k) feed[g.inputs[k].name] = x[k];
  EXPECT_LT(relative_error(engine.run(feed).at(g.outputs[0].name), y), 1e-4);
  const auto dir = testing::temp_dir("trained_export_" + name);
  save_onnx(g, (dir / "model.onnx").string());
  EXPECT_LT(relative_error(testing::run_onnxruntime((dir / "model.onnx").string(), x, dir), y), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(PyTorch, TrainedExport,
                         ::testing::ValuesIn([] {
                           std::vector<std::string> names;
                           for (const char* model : {"cnn", "encoder", "mlp", "dense", "resnet18", "mobilenet_v2",
                                                     "mobilenet_v3_small", "squeezenet", "shufflenet_v2", "transformer",
                                                     "masked_pool"})
                             for (const char* opset : {"13", "17"})
                               names.push_back(std::string(model) + "_train_opset" + opset);
                           return names;
                         }()));

TEST(GraphModule, ConvAndLinearNodesRunAsLayersThatPruneAndTrainSparse) {
  GraphModule model(load_onnx(kDir + "cnn_train_opset17.onnx"));
  int convs = 0, linears = 0;
  std::function<void(const layers::Module&)> count = [&](const layers::Module& m) {
    for (const auto& [n, child] : m.named_children()) {
      convs += dynamic_cast<const layers::Conv2d*>(child.get()) != nullptr;
      linears += dynamic_cast<const layers::Linear*>(child.get()) != nullptr;
      count(*child);
    }
  };
  count(model);
  EXPECT_EQ(convs, 3);
  EXPECT_EQ(linears, 1);
  // Pruned by name, as a recipe selects; the export keeps the zeros and says so.
  pruning::prune(model, pruning::select(model, {"__ALL_PRUNABLE__"}), 0.8, {}, false);
  const Graph g = model.exported();
  EXPECT_NEAR(pruning::sparsity_of(g.initializers.at("conv1.weight")), 0.8, 0.01);
  EXPECT_EQ(g.metadata.count("sparsity:conv1.weight"), 1u);
  // In eval mode the exported graph runs in the reference executor as the module does.
  model.eval();
  const Tensor x = autograd::load_npy(kDir + "cnn_input.npy");
  autograd::NoGradGuard no_grad;
  const Tensor y = model.forward(Variable(x)).data();
  const Tensor ref = run_reference(g, {{"input", x}}).at("output");
  EXPECT_LT(relative_error(y, ref), 1e-5);
  // Written back to ONNX under PyTorch's names, ONNX Runtime gives our outputs.
  const auto dir = testing::temp_dir("graph_module_export");
  save_onnx(g, (dir / "pruned.onnx").string());
  EXPECT_LT(relative_error(testing::run_onnxruntime((dir / "pruned.onnx").string(), x, dir), y), 1e-4);
  EXPECT_EQ(load_onnx((dir / "pruned.onnx").string()).initializers.count("stem.0.weight"), 1u);
}

TEST(GraphModule, BatchNormUpdatesItsRunningStatisticsOnlyInTraining) {
  GraphModule model(load_onnx(kDir + "cnn_train_opset17.onnx"));
  const Tensor x = autograd::load_npy(kDir + "cnn_input.npy");
  const Tensor before = model.exported().initializers.at("bn1.running_mean").clone();
  model.eval();
  model.forward(Variable(x));
  EXPECT_EQ(relative_error(model.exported().initializers.at("bn1.running_mean"), before), 0.0);
  model.train();
  model.forward(Variable(x));
  EXPECT_GT(relative_error(model.exported().initializers.at("bn1.running_mean"), before), 1e-4);
}

TEST(GraphModule, ReplacingTheClassifierKeepsItsNames) {
  GraphModule model(load_onnx(kDir + "cnn_train_opset17.onnx"));
  EXPECT_EQ(model.num_classes(), 5);
  model.replace_classifier(7);
  EXPECT_EQ(model.num_classes(), 7);
  const Tensor x = autograd::load_npy(kDir + "cnn_input.npy");
  EXPECT_EQ(model.forward(Variable(x)).shape(), (Shape{6, 7}));
  const Graph g = model.exported();
  EXPECT_EQ(g.initializers.at("fc.weight").shape(), (Shape{7, 144}));
  EXPECT_EQ(g.initializers.at("fc.bias").shape(), (Shape{7}));
  Graph checked = g;
  EXPECT_NO_THROW(checked.infer_shapes());
}

// d loss / d w for loss = sum(output * probe) of a graph run by the reference
// executor, by central differences on each weight element.
Tensor numeric_gradient(const Graph& g, const std::string& weight, const Tensor& x, const Tensor& probe) {
  Tensor grad = Tensor::zeros(g.initializers.at(weight).shape());
  auto loss = [&](float delta, int64_t i) {
    Graph h = g;
    Tensor w = h.initializers.at(weight).clone();
    w.data<float>()[i] += delta;
    h.initializers[weight] = w;
    const Tensor y = run_reference(h, {{"input", x}}).at("output");
    double sum = 0;
    for (int64_t k = 0; k < y.numel(); ++k) sum += double(y.data<float>()[k]) * probe.data<float>()[k];
    return sum;
  };
  constexpr float kStep = 1e-2f;
  for (int64_t i = 0; i < grad.numel(); ++i)
    grad.data<float>()[i] = static_cast<float>((loss(kStep, i) - loss(-kStep, i)) / (2 * kStep));
  return grad;
}

// Every op GraphModule differentiates, after a Gemm whose weight trains: its
// gradient against central differences of the reference executor.
TEST(GraphModule, EveryDifferentiableOpMatchesCentralDifferences) {
  struct Case {
    OpKind op;
    std::map<std::string, Attribute> attributes;
    bool second_weight = false;  // a binary op: its other operand is a trained (2, 3) weight too
    std::vector<std::pair<std::string, Tensor>> settings = {};  // constant inputs after the data
  };
  auto ints = [](std::vector<int64_t> v) { return detail::int_tensor(v); };
  auto reduce = [&](OpKind op, bool keep) {
    return Case{op, {{"keepdims", int64_t{keep}}}, false, {{"axes", ints({1})}}};
  };
  const std::vector<Case> cases = {
      {OpKind::relu, {}}, {OpKind::sigmoid, {}}, {OpKind::tanh, {}}, {OpKind::exp, {}}, {OpKind::erf, {}},
      {OpKind::neg, {}}, {OpKind::abs, {}}, {OpKind::leaky_relu, {{"alpha", 0.1}}},
      {OpKind::hard_sigmoid, {{"alpha", 0.3}, {"beta", 0.4}}}, {OpKind::hard_swish, {}},
      {OpKind::softmax, {{"axis", int64_t{1}}}}, {OpKind::gelu, {}}, {OpKind::identity, {}},
      {OpKind::transpose, {{"perm", std::vector<int64_t>{1, 0}}}}, {OpKind::add, {}, true}, {OpKind::sub, {}, true},
      {OpKind::mul, {}, true}, {OpKind::max, {}, true}, {OpKind::min, {}, true},
      // ReduceSum takes its axes as an input at opset 13, the others as an attribute (both forms are read)
      reduce(OpKind::reduce_sum, true), reduce(OpKind::reduce_mean, false), reduce(OpKind::reduce_max, false),
      reduce(OpKind::reduce_min, true), reduce(OpKind::reduce_prod, false), reduce(OpKind::reduce_l1, true),
      reduce(OpKind::reduce_l2, false), reduce(OpKind::reduce_sum_square, true), reduce(OpKind::reduce_log_sum_exp, false),
      {OpKind::reduce_max, {{"axes", std::vector<int64_t>{0, 1}}, {"keepdims", int64_t{0}}}},
      {OpKind::pad, {{"mode", std::string("reflect")}}, false, {{"pads", ints({1, 1, 0, 2})}}},
      {OpKind::pad, {{"mode", std::string("edge")}}, false, {{"pads", ints({0, 2, 1, 0})}}},
      {OpKind::pad, {}, false, {{"pads", ints({1, -1, 0, 1})}, {"value", Tensor::full({}, 0.5f)}}},
      {OpKind::resize, {{"mode", std::string("linear")}}, false,
       {{"", Tensor()}, {"", Tensor()}, {"sizes", ints({3, 5})}}},
      {OpKind::resize, {{"mode", std::string("linear")}, {"coordinate_transformation_mode", std::string("align_corners")}},
       false, {{"", Tensor()}, {"scales", Tensor::full({2}, 2.0f)}}},
      {OpKind::resize, {{"coordinate_transformation_mode", std::string("asymmetric")}, {"nearest_mode", std::string("floor")}},
       false, {{"", Tensor()}, {"scales", Tensor::full({2}, 2.0f)}}},
  };
  const Tensor x = Tensor::randn({2, 4}, 31);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(op_info(c.op).onnx));
    Graph g;
    g.inputs.push_back({"input", DataType::float32, {-1, 4}});
    g.initializers.emplace("fc.weight", Tensor::randn({3, 4}, 32));
    g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"input", "fc.weight"}, .outputs = {"h"},
                       .attributes = {{"transB", int64_t{1}}}});
    std::vector<std::string> inputs = {"h"};
    if (c.second_weight) {
      g.initializers.emplace("other", Tensor::randn({2, 3}, 33));
      inputs.push_back("other");
    }
    for (const auto& [name, value] : c.settings) {
      if (!name.empty()) g.initializers.emplace(name, value);
      inputs.push_back(name);
    }
    g.nodes.push_back({.op = c.op, .name = "op", .inputs = inputs, .outputs = {"output"}, .attributes = c.attributes});
    g.outputs.push_back({"output"});
    GraphModule m(g);
    m.train();
    const Variable y = m.forward(Variable(x));
    const Tensor probe = Tensor::randn(y.shape(), 34);
    Variable loss = autograd::sum(autograd::mul(y, Variable(probe)));
    loss.backward();
    for (const auto& [name, p] : m.named_parameters()) {
      SCOPED_TRACE(name);
      const Tensor want = numeric_gradient(g, name, x, probe);
      const Tensor got = p->value().grad();
      ASSERT_TRUE(got.defined());
      for (int64_t i = 0; i < want.numel(); ++i)
        EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 2e-2 * (1.0 + std::abs(want.data<float>()[i])));
    }
  }
}

// A QuantizeLinear-DequantizeLinear pair (PyTorch's QAT export) trains as a
// fake quantiser: forward on the grid, the gradient straight through where x
// lands inside it and 0 where it clamps.
TEST(GraphModule, QuantizeDequantizeTrainsWithTheStraightThroughGradient) {
  const Tensor x = Tensor::randn({2, 4}, 41);
  for (const float scale : {0.05f, 1e-4f}) {  // inside the int8 grid; clamped at its ends
    SCOPED_TRACE(scale);
    auto graph = [&](bool quantized) {
      Graph g;
      g.inputs.push_back({"input", DataType::float32, {-1, 4}});
      g.initializers.emplace("fc.weight", Tensor::randn({3, 4}, 42));
      g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"input", "fc.weight"},
                         .outputs = {quantized ? "h" : "output"}, .attributes = {{"transB", int64_t{1}}}});
      if (quantized) {
        g.initializers.emplace("s", Tensor::full({}, scale));
        g.initializers.emplace("z", Tensor::zeros({}, autograd::Dtype::i8));
        g.nodes.push_back({.op = OpKind::quantize_linear, .name = "q", .inputs = {"h", "s", "z"}, .outputs = {"hq"},
                           .attributes = {}});
        g.nodes.push_back({.op = OpKind::dequantize_linear, .name = "dq", .inputs = {"hq", "s", "z"},
                           .outputs = {"output"}, .attributes = {}});
      }
      g.outputs.push_back({"output"});
      return g;
    };
    GraphModule plain(graph(false)), quantized(graph(true));
    plain.train();
    quantized.train();
    const Variable yp = plain.forward(Variable(x)), yq = quantized.forward(Variable(x));
    const Tensor want = run_reference(graph(true), {{"input", x}}).at("output");
    EXPECT_LT(relative_error(yq.data(), want), 1e-6);  // the grid's values
    const Tensor probe = Tensor::randn(yp.shape(), 43);
    autograd::sum(autograd::mul(yp, Variable(probe))).backward();
    autograd::sum(autograd::mul(yq, Variable(probe))).backward();
    const Tensor gp = plain.named_parameters()[0].second->value().grad();
    const Tensor gq = quantized.named_parameters()[0].second->value().grad();
    if (scale > 0.01f) {
      EXPECT_LT(relative_error(gq, gp), 1e-6);  // nothing clamps: straight through
    } else {
      for (int64_t i = 0; i < gq.numel(); ++i) EXPECT_EQ(gq.data<float>()[i], 0.0f);  // all clamp
    }
  }
}

// Quantisation-aware training of an imported graph: its export carries the
// grids as QuantizeLinear-DequantizeLinear pairs (per-channel weights, MatMul
// weights on their axis 1), and the engine and ONNX Runtime compute what the
// module does.
TEST(GraphModule, QuantizedLayersExportAsQdqPairsThatComputeTheModulesOutputs) {
  for (const char* name : {"cnn_train_opset17", "encoder_train_opset17"}) {
    SCOPED_TRACE(name);
    const std::string model_name = std::string(name).substr(0, std::string(name).find("_train_opset"));
    GraphModule model(load_onnx(kDir + name + ".onnx"));
    std::function<void(layers::Module&)> quantize = [&](layers::Module& m) {
      for (const auto& [n, child] : m.named_children()) {
        if (auto* q = dynamic_cast<layers::QuantizableLayer*>(child.get()))
          q->quantize({.weights = layers::QuantArgs{.symmetric = true, .per_channel = true}});
        quantize(*child);
      }
    };
    quantize(model);
    const Tensor x = autograd::load_npy(kDir + model_name + "_input.npy");
    model.train();
    {
      autograd::NoGradGuard no_grad;
      model.forward(Variable(x));  // the observers see a batch
    }
    model.eval();
    autograd::NoGradGuard no_grad;
    const Tensor y = model.forward(Variable(x)).data();
    const Graph g = model.exported();
    const auto qdq = std::count_if(g.nodes.begin(), g.nodes.end(),
                                   [](const Node& n) { return n.op == OpKind::quantize_linear; });
    EXPECT_GE(qdq, 4);
    EXPECT_LT(relative_error(run_reference(g, {{g.inputs[0].name, x}}).at(g.outputs[0].name), y), 1e-4);
    Engine engine = compile(g, {.batch = x.shape()[0]});  // its INT8 kernels where the pairs allow
    EXPECT_LT(relative_error(engine.run({{g.inputs[0].name, x}}).at(g.outputs[0].name), y), 1e-3);
    const auto dir = testing::temp_dir(std::string("qdq_export_") + name);
    save_onnx(g, (dir / "model.onnx").string());
    // ONNX Runtime fuses the pairs into its 8-bit integer kernels, which round
    // differently (0.2-0.4 % here); the reference executor above is exact.
    EXPECT_LT(relative_error(testing::run_onnxruntime((dir / "model.onnx").string(), x, dir), y), 1e-2);
  }
}

TEST(GraphModule, AWeightThroughAnOpWithoutGradientIsRefusedNamingTheNode) {
  Graph g;
  g.inputs.push_back({"input", DataType::float32, {-1, 4}});
  g.initializers.emplace("fc.weight", Tensor::randn({3, 4}, 1));
  g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"input", "fc.weight"}, .outputs = {"h"},
                     .attributes = {{"transB", int64_t{1}}}});
  // A Range whose limit a weight computes: its float output has no gradient to give the weight.
  g.initializers.emplace("zero", Tensor::full({}, 0.0f));
  g.initializers.emplace("one", Tensor::full({}, 1.0f));
  g.nodes.push_back({.op = OpKind::reduce_sum, .name = "total", .inputs = {"h"}, .outputs = {"t"},
                     .attributes = {{"keepdims", int64_t{0}}}});
  g.nodes.push_back({.op = OpKind::range, .name = "steps", .inputs = {"zero", "t", "one"}, .outputs = {"output"},
                     .attributes = {}});
  g.outputs.push_back({"output"});
  try {
    GraphModule m(g);
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("steps"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Range"), std::string::npos) << e.what();
  }
  Graph constants;
  constants.inputs.push_back({"input", DataType::float32, {-1, 4}});
  constants.nodes.push_back({.op = OpKind::relu, .name = "r", .inputs = {"input"}, .outputs = {"output"}, .attributes = {}});
  constants.outputs.push_back({"output"});
  EXPECT_THROW(GraphModule{constants}, ValueError);
}

}  // namespace
}  // namespace neurite::engine
