// neurite eval (top-1 and loss of a checkpoint or ONNX model on data) and
// neurite info (inputs, outputs, and per-parameter shape, size and sparsity).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/kernels/sparse.h"
#include "neurite/error.h"
#include "neurite/data/readers.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/trace.h"
#include "neurite/pruning/pruning.h"
#include "neurite/train/trainer.h"

namespace neurite::cli {

namespace {

// Top-1 and loss of an ONNX model's first output as logits, run by the engine
// (one compiled engine per batch size: the full one and the last, shorter).
train::Evaluation evaluate_onnx(const std::string& path, const data::Dataset& set, int64_t batch_size, int threads) {
  const engine::Graph g = engine::load_onnx(path);
  check_graph_fits(g, set.get(0), "eval: " + path);
  std::map<int64_t, engine::Engine> engines;
  return train::evaluate(
      [&](const std::vector<autograd::Tensor>& inputs) {
        const int64_t batch = inputs[0].size(0);
        std::map<std::string, autograd::Tensor> feed;
        for (size_t i = 0; i < inputs.size(); ++i) feed[g.inputs[i].name] = inputs[i];
        auto it = engines.find(batch);
        if (it == engines.end()) {
          std::map<std::string, autograd::Shape> shapes;
          for (const auto& [name, t] : feed) shapes[name] = t.shape();
          it = engines
                   .emplace(batch, engine::compile(g, {.batch = batch, .input_shapes = shapes, .threads = threads,
                                                       .kernels = kernel_policy(false)}))
                   .first;
        }
        return it->second.run(feed).at(g.outputs[0].name);
      },
      set, batch_size);
}

}  // namespace

void add_eval(CLI::App& app) {
  struct Args {
    std::string checkpoint, data;
    int64_t batch_size = 256;
    int threads = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval", "Top-1 accuracy and loss of a checkpoint or ONNX model (on the data's test split if it has one)");
  add_model_argument(cmd, a->checkpoint, "Checkpoint (.h5) or ONNX model (.onnx)", "--checkpoint");
  cmd->add_option("--data", a->data, "Data spec")->required();
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_flag("--json", a->json, "Print {\"top1\", \"loss\", \"examples\"}");
  cmd->callback([a] {
    set_threads(a->threads);
    const auto report = [&](const train::Evaluation& e) {
      if (a->json)
        std::cout << nlohmann::json{{"top1", e.top1}, {"loss", e.loss}, {"examples", e.examples}}.dump() << "\n";
      else
        fmt::print("top-1 {:.2f}%  loss {:.4f}  ({} examples)\n", 100 * e.top1, e.loss, e.examples);
    };
    if (a->checkpoint.ends_with(".onnx")) {  // the file one deploys, in the engine that runs it
      const data::DataSplits splits = data::open_data(a->data);
      report(evaluate_onnx(a->checkpoint, splits.test ? *splits.test : *splits.train, a->batch_size, a->threads));
      return;
    }
    const train::Checkpoint c = train::load_checkpoint(a->checkpoint);
    auto model = train::build_model(c);
    const data::DataSplits splits = open_data_for(a->data, c);
    const data::Dataset& set = splits.test ? *splits.test : *splits.train;
    if (const auto* graph = dynamic_cast<const engine::GraphModule*>(model.get())) {  // a model one brought
      check_graph_fits(graph->graph(), set.get(0), "eval: " + a->checkpoint);
    } else {
      const autograd::Shape want{c.options.in_channels, c.options.image_size, c.options.image_size};
      check<ShapeError>(layers::models::takes_tokens(c.model) || set.input_shape() == want,
                        "eval: {} gives examples of shape {}, the model {} takes {}", a->data,
                        autograd::to_string(set.input_shape()), c.model, autograd::to_string(want));
    }
    check<ValueError>(set.num_classes() <= c.options.num_classes, "eval: {} has {} classes, the model predicts {}",
                      a->data, set.num_classes(), c.options.num_classes);
    report(train::evaluate(*model, set, a->batch_size));
  });
}

namespace {

// One row per parameter (shape, numel, nonzeros, sparsity, whether prunable),
// and the total over the prunable weights: the one figure of total sparsity.
nlohmann::json parameter_rows(const std::vector<std::pair<std::string, autograd::Tensor>>& tensors,
                              const std::set<std::string>& prunable, nlohmann::json& total) {
  nlohmann::json rows = nlohmann::json::array();
  int64_t numel = 0, nonzeros = 0, parameters = 0;
  for (const auto& [name, t] : tensors) {
    const int64_t nz = kernels::count_nonzero(t.data<float>(), t.numel());
    const bool weight = prunable.count(name) != 0;
    rows.push_back({{"name", name},
                    {"shape", t.shape()},
                    {"numel", t.numel()},
                    {"nonzeros", nz},
                    {"prunable", weight},
                    {"sparsity", t.numel() > 0 ? 1.0 - static_cast<double>(nz) / static_cast<double>(t.numel()) : 0.0}});
    parameters += t.numel();
    if (!weight) continue;
    numel += t.numel();
    nonzeros += nz;
  }
  total["parameters"] = parameters;
  total["numel"] = numel;
  total["nonzeros"] = nonzeros;
  total["sparsity"] = numel > 0 ? 1.0 - static_cast<double>(nonzeros) / static_cast<double>(numel) : 0.0;
  return rows;
}

nlohmann::json values_json(const std::vector<engine::ValueInfo>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : values)
    out.push_back({{"name", v.name}, {"type", engine::to_string(v.type)}, {"shape", v.shape}});
  return out;
}

}  // namespace

void add_info(CLI::App& app) {
  struct Args {
    std::string model;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "info", "A checkpoint's or ONNX model's inputs, outputs and parameters (shape, size, sparsity), and op support");
  add_model_argument(cmd, a->model, "Checkpoint (.h5) or ONNX model (.onnx)", "--checkpoint");
  cmd->add_flag("--json", a->json,
                "Print {\"inputs\", \"outputs\", \"parameters\": [...], \"total\": {...}}");
  cmd->callback([a] {
    std::vector<std::pair<std::string, autograd::Tensor>> tensors;
    std::set<std::string> prunable;
    std::vector<engine::ValueInfo> inputs, outputs;
    std::optional<engine::ModelSummary> summary;
    nlohmann::json total;
    std::string heading;
    if (a->model.ends_with(".onnx")) {
      const engine::OnnxSummary s = engine::summarize_onnx(a->model);
      for (const auto& [name, t] : s.initializers)
        if (t.dtype() == autograd::Dtype::f32 && t.dim() >= 1) tensors.emplace_back(name, t);
      prunable = s.weights;
      inputs = s.inputs;
      outputs = s.outputs;
      total = {{"model", a->model},
               {"opset", s.opset},
               {"nodes", s.nodes},
               {"supported_nodes", s.supported_nodes},
               {"supported_fraction", s.nodes > 0 ? static_cast<double>(s.supported_nodes) / s.nodes : 1.0},
               {"unsupported", s.unsupported}};
      heading = fmt::format("{}: ONNX opset {}, {} nodes, {} supported ({:.1f}%){}", a->model, s.opset, s.nodes,
                            s.supported_nodes, 100.0 * total["supported_fraction"].get<double>(),
                            s.unsupported.empty() ? "" : fmt::format("; not supported: {}", fmt::join(s.unsupported, ", ")));
    } else {
      const engine::Graph g = load_model_graph(a->model);  // the checkpoint's model, as export writes it
      const train::Checkpoint c = train::load_checkpoint(a->model);
      auto model = train::build_model(c);
      for (const auto& [name, p] : model->named_parameters()) tensors.emplace_back(name, p->value().data());
      for (const auto& name : pruning::linear_conv_and_attention_weights(*model)) prunable.insert(name);
      inputs = g.inputs;
      outputs = g.outputs;
      total = {{"model", c.model}, {"epoch", c.epoch}};
      if (c.graph.empty()) summary = engine::summarize(*model, example_input(c));  // a zoo model: per layer
      heading = fmt::format("{} (epoch {}): {}", c.model, c.epoch, a->model);
    }
    const nlohmann::json rows = parameter_rows(tensors, prunable, total);
    if (a->json) {
      nlohmann::json j{{"inputs", values_json(inputs)}, {"outputs", values_json(outputs)}, {"parameters", rows},
                       {"total", total}};
      if (summary) {
        j["layers"] = nlohmann::json::array();
        for (const auto& l : summary->layers)
          j["layers"].push_back({{"name", l.name}, {"op", l.op}, {"output", l.output}, {"parameters", l.parameters},
                                 {"flops", l.flops}, {"sparsity", l.sparsity}});
        j["total"]["flops"] = summary->flops;
        j["total"]["sparse_flops"] = summary->sparse_flops;
      }
      std::cout << j.dump(2) << "\n";
      return;
    }
    fmt::print("{}\n", heading);
    for (const auto& [kind, values] : {std::pair{"input", &inputs}, std::pair{"output", &outputs}})
      for (const auto& v : *values)
        fmt::print("{:<7} {:<32} {:<8} {}\n", kind, v.name, engine::to_string(v.type), autograd::to_string(v.shape));
    fmt::print("{:<40} {:>18} {:>10} {:>10} {:>9}\n", "parameter", "shape", "numel", "nonzeros", "sparsity");
    for (const auto& r : rows)  // biases, norms and embeddings: no sparsity figure, they are not pruned
      fmt::print("{:<40} {:>18} {:>10} {:>10} {:>9}\n", r["name"].get<std::string>(),
                 autograd::to_string(r["shape"].get<autograd::Shape>()), r["numel"].get<int64_t>(),
                 r["nonzeros"].get<int64_t>(),
                 r["prunable"].get<bool>() ? fmt::format("{:.1f}%", 100 * r["sparsity"].get<double>()) : "-");
    fmt::print("{:<40} {:>18} {:>10} {:>10} {:>8.1f}%\n", "prunable weights", "", total["numel"].get<int64_t>(),
               total["nonzeros"].get<int64_t>(), 100 * total["sparsity"].get<double>());
    fmt::print("{} parameters in all\n", total["parameters"].get<int64_t>());
    if (summary) fmt::print("\nper layer, for one example:\n{}", summary->to_string());
  });
}

}  // namespace neurite::cli
