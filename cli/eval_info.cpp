// neurite eval (top-1 and loss of a checkpoint on data) and neurite info (per
// parameter shape, size and sparsity of a checkpoint).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/kernels/sparse.h"
#include "neurite/error.h"
#include "neurite/data/readers.h"
#include "neurite/engine/onnx.h"
#include "neurite/train/trainer.h"

namespace neurite::cli {

void add_eval(CLI::App& app) {
  struct Args {
    std::string checkpoint, data;
    int64_t batch_size = 256;
    int threads = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval", "Top-1 accuracy and loss of a checkpoint (on the data's test split if it has one)");
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint (.h5)")->required();
  cmd->add_option("--data", a->data, "Data spec")->required();
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_flag("--json", a->json, "Print {\"top1\", \"loss\", \"examples\"}");
  cmd->callback([a] {
    set_threads(a->threads);
    const train::Checkpoint c = train::load_checkpoint(a->checkpoint);
    auto model = train::build_model(c);
    const data::DataSplits splits = data::open_data(a->data);
    const data::Dataset& set = splits.test ? *splits.test : *splits.train;
    const autograd::Shape want{c.options.in_channels, c.options.image_size, c.options.image_size};
    check<ShapeError>(layers::models::takes_tokens(c.model) || set.input_shape() == want,
                      "eval: {} gives examples of shape {}, the model {} takes {}", a->data,
                      autograd::to_string(set.input_shape()), c.model, autograd::to_string(want));
    check<ValueError>(set.num_classes() <= c.options.num_classes, "eval: {} has {} classes, the model predicts {}",
                      a->data, set.num_classes(), c.options.num_classes);
    const train::Evaluation e = train::evaluate(*model, set, a->batch_size);
    if (a->json)
      std::cout << nlohmann::json{{"top1", e.top1}, {"loss", e.loss}, {"examples", e.examples}}.dump() << "\n";
    else
      fmt::print("top-1 {:.2f}%  loss {:.4f}  ({} examples)\n", 100 * e.top1, e.loss, e.examples);
  });
}

namespace {
// One row per parameter (shape, numel, nonzeros, sparsity), and their total.
nlohmann::json parameter_rows(const std::vector<std::pair<std::string, autograd::Tensor>>& tensors,
                              nlohmann::json& total) {
  nlohmann::json rows = nlohmann::json::array();
  int64_t numel = 0, nonzeros = 0;
  for (const auto& [name, t] : tensors) {
    const int64_t nz = kernels::count_nonzero(t.data<float>(), t.numel());
    rows.push_back({{"name", name},
                    {"shape", t.shape()},
                    {"numel", t.numel()},
                    {"nonzeros", nz},
                    {"sparsity", t.numel() > 0 ? 1.0 - static_cast<double>(nz) / static_cast<double>(t.numel()) : 0.0}});
    numel += t.numel();
    nonzeros += nz;
  }
  total["numel"] = numel;
  total["nonzeros"] = nonzeros;
  total["sparsity"] = numel > 0 ? 1.0 - static_cast<double>(nonzeros) / static_cast<double>(numel) : 0.0;
  return rows;
}
}  // namespace

void add_info(CLI::App& app) {
  struct Args {
    std::string model;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Parameters of a checkpoint or ONNX model: shape, size, nonzeros, sparsity (and, for ONNX, op support)");
  cmd->add_option("MODEL", a->model, "Checkpoint (.h5) or ONNX model (.onnx)")->required();
  cmd->add_flag("--json", a->json, "Print {\"parameters\": [...], \"total\": {...}}");
  cmd->callback([a] {
    std::vector<std::pair<std::string, autograd::Tensor>> tensors;
    nlohmann::json total;
    std::string heading;
    if (a->model.ends_with(".onnx")) {
      const engine::OnnxSummary s = engine::summarize_onnx(a->model);
      for (const auto& [name, t] : s.initializers)
        if (t.dtype() == autograd::Dtype::f32 && t.dim() >= 1) tensors.emplace_back(name, t);
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
      const train::Checkpoint c = train::load_checkpoint(a->model);
      auto model = train::build_model(c);
      for (const auto& [name, p] : model->named_parameters()) tensors.emplace_back(name, p->value().data());
      total = {{"model", c.model}, {"epoch", c.epoch}};
      heading = fmt::format("{} (epoch {}): {}", c.model, c.epoch, a->model);
    }
    const nlohmann::json rows = parameter_rows(tensors, total);
    if (a->json) {
      std::cout << nlohmann::json{{"parameters", rows}, {"total", total}}.dump(2) << "\n";
      return;
    }
    fmt::print("{}\n", heading);
    fmt::print("{:<40} {:>18} {:>10} {:>10} {:>9}\n", "parameter", "shape", "numel", "nonzeros", "sparsity");
    for (const auto& r : rows)
      fmt::print("{:<40} {:>18} {:>10} {:>10} {:>8.1f}%\n", r["name"].get<std::string>(),
                 autograd::to_string(r["shape"].get<autograd::Shape>()), r["numel"].get<int64_t>(),
                 r["nonzeros"].get<int64_t>(), 100 * r["sparsity"].get<double>());
    fmt::print("{:<40} {:>18} {:>10} {:>10} {:>8.1f}%\n", "total", "", total["numel"].get<int64_t>(),
               total["nonzeros"].get<int64_t>(), 100 * total["sparsity"].get<double>());
  });
}

}  // namespace neurite::cli
