// neurite export (a checkpoint as ONNX) and neurite infer (a model on a .npy input).
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/data/transforms.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/trace.h"
#include "neurite/train/checkpoint.h"

namespace neurite::cli {

autograd::Tensor example_input(const train::Checkpoint& c) {
  const auto& o = c.options;
  if (layers::models::takes_tokens(c.model)) return autograd::Tensor::randint({1, o.seq_len}, 0, 0, o.vocab_size);
  return autograd::Tensor::randn({1, o.in_channels, o.image_size, o.image_size}, 0);
}

engine::Graph graph_of_checkpoint(const std::string& path) {
  const train::Checkpoint c = train::load_checkpoint(path);
  auto model = train::build_model(c);
  // An imported graph goes back as itself, under its own names; a zoo model is traced.
  auto* imported = dynamic_cast<engine::GraphModule*>(model.get());
  engine::Graph g = imported != nullptr ? imported->exported() : engine::trace(*model, example_input(c));
  if (!c.input_mean.empty()) engine::prepend_normalization(g, g.inputs[0].name, c.input_mean, c.input_std);
  g.metadata["neurite.model"] = c.model;
  return g;
}

data::DataSplits open_data_for(const std::string& spec, const train::Checkpoint& c) {
  data::DataSplits splits = data::open_data(spec);
  if (c.input_mean.empty()) return splits;
  const data::Transform normalize = data::normalize(c.input_mean, c.input_std);
  for (auto* split : {&splits.train, &splits.test})
    if (*split) *split = std::make_shared<data::TransformedDataset>(*split, normalize);
  return splits;
}

engine::Graph load_model_graph(const std::string& path) {
  return path.ends_with(".onnx") ? engine::load_onnx(path) : graph_of_checkpoint(path);
}

void check_graph_fits(const engine::Graph& g, const data::Example& example, const std::string& what) {
  std::vector<autograd::Shape> shapes{example.input.shape()};
  for (const autograd::Tensor& more : example.more_inputs) shapes.push_back(more.shape());
  check<ShapeError>(g.inputs.size() == shapes.size(), "{}: the graph has {} inputs, the data's examples {}", what,
                    g.inputs.size(), shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    const autograd::Shape& input = g.inputs[i].shape;
    bool fits = input.size() == shapes[i].size() + 1;
    for (size_t k = 0; fits && k < shapes[i].size(); ++k) fits = input[k + 1] < 0 || input[k + 1] == shapes[i][k];
    check<ShapeError>(fits, "{}: input '{}' is {}, the data's examples are {} (after the batch)", what,
                      g.inputs[i].name, autograd::to_string(input), autograd::to_string(shapes[i]));
  }
}

void add_export(CLI::App& app) {
  struct Args {
    std::string checkpoint, out;
    int64_t opset = 17;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("export", "Write a checkpoint's model as ONNX (dynamic batch, masks applied)");
  add_model_argument(cmd, a->checkpoint, "Checkpoint (.h5)", "--checkpoint");
  cmd->add_option("--out", a->out, "ONNX file to write")->required();
  cmd->add_option("--opset", a->opset, "ONNX opset, 13 to 17")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print {\"out\", \"opset\", \"nodes\", \"initializers\", \"inputs\", \"outputs\"}");
  cmd->callback([a] {
    check<ValueError>(a->opset >= 13 && a->opset <= 17, "--opset is {}, expected 13 to 17", a->opset);
    const engine::Graph g = graph_of_checkpoint(a->checkpoint);
    engine::save_onnx(g, a->out, {.opset = a->opset});
    if (a->json) {
      nlohmann::json inputs = nlohmann::json::object(), outputs = nlohmann::json::object();
      for (const auto& v : g.inputs) inputs[v.name] = v.shape;
      for (const auto& v : g.outputs) outputs[v.name] = v.shape;
      std::cout << nlohmann::json{{"out", a->out},          {"opset", a->opset},   {"nodes", g.nodes.size()},
                                  {"initializers", g.initializers.size()}, {"inputs", inputs}, {"outputs", outputs}}
                       .dump()
                << "\n";
      return;
    }
    fmt::print("{}: {} nodes, {} initializers, opset {}, input {} {}\n", a->out, g.nodes.size(), g.initializers.size(),
               a->opset, g.inputs[0].name, autograd::to_string(g.inputs[0].shape));
  });
}

void add_infer(CLI::App& app) {
  struct Args {
    std::string model, input, output;
    int threads = 0;
    std::string mode = "columns";
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("infer", "Run a model (.onnx or checkpoint) on a NumPy input, write its output");
  cmd->add_option("MODEL", a->model, "ONNX model (.onnx) or checkpoint (.h5)")->required();
  cmd->add_option("--input", a->input, "Input batch (.npy, float32 or int64)")->required();
  cmd->add_option("--out,--output", a->output, "Output to write (.npy, float32)")->required();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_option("--mode", a->mode, "Engine execution: columns or layers")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print {\"out\", \"input_shape\", \"output\", \"output_shape\"}");
  cmd->callback([a] {
    set_threads(a->threads);
    const engine::Mode mode = engine::parse_mode(a->mode);
    const engine::Graph g = load_model_graph(a->model);
    check<ValueError>(g.inputs.size() == 1 && g.outputs.size() == 1,
                      "infer: {} has {} inputs and {} outputs; infer runs models with one of each", a->model,
                      g.inputs.size(), g.outputs.size());
    const autograd::Tensor x = autograd::load_npy(a->input);
    autograd::Tensor y;
    try {
      check<ShapeError>(x.dim() >= 1, "input {} has no batch dimension", autograd::to_string(x.shape()));
      engine::Engine e = engine::compile(
          g, {.batch = x.size(0), .input_shapes = {{g.inputs[0].name, x.shape()}}, .threads = a->threads, .mode = mode,
              .kernels = kernel_policy(false)});
      y = e.run({{g.inputs[0].name, x}}).at(g.outputs[0].name);
    } catch (const Error& e) {
      throw ValueError(fmt::format("infer: {} on {}: {}", a->model, a->input, e.what()));
    }
    autograd::save_npy(a->output, y.dtype() == autograd::Dtype::f32 ? y : y.to(autograd::Dtype::f32));
    if (a->json) {
      std::cout << nlohmann::json{{"out", a->output}, {"input_shape", x.shape()}, {"output", g.outputs[0].name},
                                  {"output_shape", y.shape()}}
                       .dump()
                << "\n";
      return;
    }
    fmt::print("{}: {} -> {} {}\n", a->output, autograd::to_string(x.shape()), g.outputs[0].name,
               autograd::to_string(y.shape()));
  });
}

}  // namespace neurite::cli
