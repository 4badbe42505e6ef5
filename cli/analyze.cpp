// neurite analyze: per-layer pruning sensitivity of a model (a checkpoint or
// an ONNX file), and a recipe that spends a sparsity budget where it costs
// the least loss.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/data/readers.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/trace.h"
#include "neurite/engine/onnx.h"
#include "neurite/error.h"
#include "neurite/files.h"
#include "neurite/pruning/pruning.h"
#include "neurite/train/checkpoint.h"
#include "neurite/train/plot.h"
#include "neurite/train/trainer.h"

namespace neurite::cli {

namespace fs = std::filesystem;
using autograd::Tensor;

namespace {

struct LayerSensitivity {
  std::string name;
  int64_t numel = 0;
  std::vector<double> loss_change, top1_change;  // per sparsity, against the unpruned model
  double dense_ms = 0;                             // its step in the engine, unpruned
  std::vector<double> engine_ms;                   // per sparsity
};

// The model as the engine runs it: an imported graph as itself, a zoo model traced.
engine::Graph graph_of(layers::UnaryModule& model, const Tensor& example) {
  if (auto* imported = dynamic_cast<engine::GraphModule*>(&model)) return imported->exported();
  return engine::trace(model, example);
}

// Each weight's engine step time (ms per batch) in layer mode: the step of
// the node that reads the weight. Weights whose node was folded away are absent.
std::map<std::string, double> engine_times(layers::UnaryModule& model, const Tensor& example,
                                           const std::vector<std::string>& weights, int64_t batch, double seconds) {
  model.eval();
  engine::Graph g = graph_of(model, example);
  std::map<std::string, std::string> node_of;  // weight -> node name
  for (const engine::Node& n : g.nodes)
    for (const std::string& in : n.inputs)
      if (std::find(weights.begin(), weights.end(), in) != weights.end() && !node_of.count(in)) node_of[in] = n.name;
  engine::Engine e = engine::compile(std::move(g), {.batch = batch, .mode = engine::Mode::layers});
  const engine::BenchResult r = engine::benchmark(e, {.time_s = seconds, .warmup_s = seconds / 3, .profile = true});
  std::map<std::string, double> out;
  for (const auto& [weight, node] : node_of)
    for (const engine::ProfileEntry& p : r.profile)
      if (p.name.starts_with(node + " [")) out[weight] = p.total_ms;  // "node [kernel]"
  return out;
}

// Each layer's sparsity from `sparsities` (or 0) so that the summed `gain`
// (pruned weights, or engine ms saved) reaches `needed` with the least summed
// loss change: at a price λ per unit of gain each layer takes its cheapest
// option, and λ is bisected until the budget is met. ValueError when even
// the sparsest options fall short, naming what they reach.
std::vector<double> allocate(const std::vector<LayerSensitivity>& layers, const std::vector<double>& sparsities,
                             const std::function<double(const LayerSensitivity&, size_t)>& gain, double needed,
                             const std::string& goal) {
  auto choose = [&](double price, double* gained) {
    std::vector<double> pick;
    *gained = 0;
    for (const auto& l : layers) {
      double best = 0, best_cost = 0, best_gain = 0;
      for (size_t k = 0; k < sparsities.size(); ++k) {
        const double cost = std::max(l.loss_change[k], 0.0) - price * gain(l, k);
        if (cost < best_cost) best = sparsities[k], best_cost = cost, best_gain = gain(l, k);
      }
      pick.push_back(best);
      *gained += best_gain;
    }
    return pick;
  };
  double gained = 0, most = 0;
  for (const auto& l : layers) {
    double g = 0;
    for (size_t k = 0; k < sparsities.size(); ++k) g = std::max(g, gain(l, k));
    most += g;
  }
  check<ValueError>(most >= needed, "{} is out of reach: the sparsest choices give {:.3g} of the {:.3g} needed", goal,
                    most, needed);
  double lo = 0, hi = 1;
  while ((choose(hi, &gained), gained) < needed && hi < 1e15) hi *= 2;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    choose(mid, &gained);
    (gained >= needed ? hi : lo) = mid;
  }
  return choose(hi, &gained);
}

// One row per layer: its name, a first column, then a value per sparsity.
template <typename Row>
void print_table(const std::string& title, const std::string& first, const std::string& prefix,
                 const std::vector<double>& sparsities, const std::vector<LayerSensitivity>& layers, Row row,
                 int decimals) {
  fmt::print("{:<40} {:>10}", title, first);
  for (double s : sparsities) fmt::print(" {:>9}", fmt::format("{}{:g}", prefix, s));
  fmt::print("\n");
  for (const auto& l : layers) {
    const auto [head, values] = row(l);
    fmt::print("{:<40} {:>10}", l.name, head);
    for (double v : values) fmt::print(" {:>9.{}f}", v, decimals);
    fmt::print("\n");
  }
}

// A SparseML recipe: gradual magnitude pruning with one modifier per final sparsity.
std::string recipe_text(const std::vector<LayerSensitivity>& layers, const std::vector<double>& pick,
                        const std::string& goal, const std::string& model) {
  std::map<double, std::vector<std::string>> groups;
  for (size_t i = 0; i < layers.size(); ++i)
    if (pick[i] > 0) groups[pick[i]].push_back(layers[i].name);
  std::string out = fmt::format(
      "# Gradual magnitude pruning of {} for {}, written by\n"
      "# `neurite analyze --write-recipe`: each layer's final sparsity is the one its measured\n"
      "# sensitivity makes cheapest for the budget. Train with\n"
      "#   neurite train --model MODEL --init BASE --recipe THIS --out DIR\n"
      "version: 1.1.0\n\nnum_epochs: 8\ninit_lr: 0.05\nfinal_lr: 0.0005\npruning_end: eval(num_epochs * 0.75)\n\n"
      "training_modifiers:\n"
      "  - !EpochRangeModifier\n    start_epoch: 0.0\n    end_epoch: eval(num_epochs)\n\n"
      "  - !LearningRateFunctionModifier\n    lr_func: cosine\n    init_lr: eval(init_lr)\n"
      "    final_lr: eval(final_lr)\n    start_epoch: 0.0\n    end_epoch: eval(num_epochs)\n\npruning_modifiers:\n",
      model, goal);
  for (const auto& [sparsity, names] : groups) {
    out += "  - !GMPruningModifier\n    params:\n";
    for (const auto& n : names) out += fmt::format("      - \"{}\"\n", n);
    out += fmt::format(
        "    init_sparsity: 0.05\n    final_sparsity: {}\n    start_epoch: 0.0\n    end_epoch: eval(pruning_end)\n"
        "    update_frequency: 0.5\n    inter_func: cubic\n    mask_type: unstructured\n    leave_enabled: true\n\n",
        sparsity);
  }
  return out;
}

}  // namespace

void add_analyze(CLI::App& app) {
  struct Args {
    std::string model, data, out = "analysis", write_recipe;
    std::vector<double> sparsities{0.5, 0.7, 0.8, 0.9, 0.95};
    int64_t batches = 8, batch_size = 128, engine_batch = 64;
    double engine_seconds = 0.3;
    double target_sparsity = -1, target_speedup = -1;
    int threads = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("analyze", "Per-layer pruning sensitivity; --write-recipe spends a sparsity budget");
  add_model_argument(cmd, a->model, "Checkpoint (.h5) or ONNX file (.onnx)", "--model");
  cmd->add_option("--data", a->data, "Data whose validation split measures the loss (as train's --data)")->required();
  cmd->add_option("--sparsities", a->sparsities, "Sparsities each layer is pruned to, alone")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--batches", a->batches, "Validation batches per measurement")->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "Examples per batch")->capture_default_str();
  cmd->add_option("--engine-batch", a->engine_batch, "Batch of the engine timings (0: no timings)")
      ->capture_default_str();
  cmd->add_option("--engine-seconds", a->engine_seconds, "Seconds each engine timing runs")->capture_default_str();
  cmd->add_option("--out", a->out, "Folder for analysis.json and sensitivity.svg")->capture_default_str();
  cmd->add_option("--write-recipe", a->write_recipe, "Write a GMP recipe reaching --target-sparsity here");
  cmd->add_option("--target-sparsity", a->target_sparsity, "Fraction of the analysed weights to prune, in (0, 1)");
  cmd->add_option("--target-speedup", a->target_speedup,
                  "Or: engine speed-up of the analysed layers' steps to reach (> 1), from the measured times");
  cmd->add_flag("--json", a->json, "Print analysis.json");
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->callback([a] {
    set_threads(a->threads);
    const bool by_speed = a->target_speedup > 0;
    check<ValueError>(a->write_recipe.empty() || by_speed || (a->target_sparsity > 0 && a->target_sparsity < 1),
                      "--write-recipe needs --target-sparsity in (0, 1) or --target-speedup, got {}",
                      a->target_sparsity);
    check<ValueError>(!by_speed || (a->target_speedup > 1 && a->engine_batch > 0 && a->target_sparsity < 0),
                      "--target-speedup is {}: it must exceed 1, needs the engine timings (--engine-batch > 0) "
                      "and replaces --target-sparsity", a->target_speedup);
    for (double s : a->sparsities)
      check<ValueError>(s > 0 && s < 1, "--sparsities: {} is not in (0, 1)", s);
    check<ValueError>(a->batches >= 1 && a->batch_size >= 1, "--batches and --batch-size must be positive");
    std::shared_ptr<layers::UnaryModule> model;
    train::Checkpoint c;  // an ONNX file takes its data as it comes
    if (a->model.ends_with(".onnx")) {
      model = std::make_shared<engine::GraphModule>(engine::load_onnx(a->model));
    } else {
      c = train::load_checkpoint(a->model);
      model = train::build_model(c);
    }
    const data::DataSplits splits = open_data_for(a->data, c);
    std::shared_ptr<const data::Dataset> val = splits.test ? splits.test : splits.train;
    std::vector<int64_t> first(static_cast<size_t>(std::min(val->size(), a->batches * a->batch_size)));
    std::iota(first.begin(), first.end(), 0);
    const auto subset = std::make_shared<data::Subset>(val, first);
    const train::Evaluation base = train::evaluate(*model, *subset, a->batch_size);
    fmt::print(stderr, "analyze: {} on {} examples of {}: loss {:.4f}, top-1 {:.2f}%\n", a->model, subset->size(),
               a->data, base.loss, 100 * base.top1);

    std::vector<LayerSensitivity> layers;
    const auto names = pruning::select(*model, {"__ALL_PRUNABLE__"});
    Tensor example = subset->get(0).input;
    {
      autograd::Shape s = example.shape();
      s.insert(s.begin(), 1);
      example = example.reshape(s);
    }
    const bool timed = a->engine_batch > 0;
    std::map<std::string, double> dense_ms;
    if (timed) dense_ms = engine_times(*model, example, names, a->engine_batch, a->engine_seconds);
    const auto params = model->named_parameters();
    for (size_t i = 0; i < names.size(); ++i) {
      const auto& name = names[i];
      auto it = std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == name; });
      layers::Parameter& p = *it->second;
      const Tensor kept = p.value().data().clone();
      const Tensor mask = p.has_mask() ? p.mask().clone() : Tensor();
      LayerSensitivity l{name, p.numel(), {}, {}, dense_ms.count(name) ? dense_ms.at(name) : 0.0, {}};
      for (double s : a->sparsities) {
        pruning::prune(*model, {name}, s, {}, false);
        const train::Evaluation e = train::evaluate(*model, *subset, a->batch_size);
        l.loss_change.push_back(e.loss - base.loss);
        l.top1_change.push_back(e.top1 - base.top1);
        if (timed) {
          const auto times = engine_times(*model, example, {name}, a->engine_batch, a->engine_seconds);
          l.engine_ms.push_back(times.count(name) ? times.at(name) : 0.0);
        }
        p.set_mask(mask);  // back as it was: the old mask (or none) and the old values
        model->load_state_dict(layers::StateDict{{name, kept}}, false);
      }
      fmt::print(stderr, "analyze: [{}/{}] {}\n", i + 1, names.size(), name);
      layers.push_back(std::move(l));
    }

    nlohmann::json out{{"model", a->model}, {"data", a->data}, {"examples", subset->size()},
                       {"loss", base.loss}, {"top1", base.top1}, {"sparsities", a->sparsities}};
    out["layers"] = nlohmann::json::array();
    for (const auto& l : layers)
      out["layers"].push_back({{"name", l.name}, {"numel", l.numel}, {"loss_change", l.loss_change},
                               {"top1_change", l.top1_change}, {"engine_dense_ms", l.dense_ms},
                               {"engine_ms", l.engine_ms}});
    if (timed) out["engine_batch"] = a->engine_batch;
    if (!a->write_recipe.empty()) {
      std::vector<double> pick;
      std::string goal;
      if (by_speed) {  // time saved per layer; the budget: dense / (dense - saved) >= X
        double dense = 0;
        for (const auto& l : layers) dense += l.dense_ms;
        goal = fmt::format("a {:g}x engine speed-up of its analysed layers", a->target_speedup);
        pick = allocate(
            layers, a->sparsities,
            [](const LayerSensitivity& l, size_t k) { return std::max(0.0, l.dense_ms - l.engine_ms[k]); },
            dense * (1 - 1 / a->target_speedup),
            fmt::format("--target-speedup {:g} (ms per batch saved)", a->target_speedup));
      } else {
        int64_t total = 0;
        for (const auto& l : layers) total += l.numel;
        goal = fmt::format("{:g} % of its analysed weights", 100 * a->target_sparsity);
        pick = allocate(
            layers, a->sparsities,
            [&](const LayerSensitivity& l, size_t k) { return a->sparsities[k] * static_cast<double>(l.numel); },
            a->target_sparsity * static_cast<double>(total), "--target-sparsity (weights pruned)");
      }
      write_file_atomically(a->write_recipe, recipe_text(layers, pick, goal, a->model));
      nlohmann::json chosen = nlohmann::json::object();
      for (size_t i = 0; i < layers.size(); ++i) chosen[layers[i].name] = pick[i];
      out["recipe"] = {{"path", a->write_recipe}, {"goal", goal}, {"final_sparsity", chosen}};
      if (!by_speed) out["recipe"]["target_sparsity"] = a->target_sparsity;
      if (by_speed) out["recipe"]["target_speedup"] = a->target_speedup;
    }
    fs::create_directories(a->out);
    write_file_atomically((fs::path(a->out) / "analysis.json").string(), out.dump(2) + "\n");
    train::LineChart chart{.title = "loss change when one layer is pruned alone", .x_label = "sparsity",
                           .y_label = "validation loss change"};
    for (const auto& l : layers) chart.series.push_back({l.name, a->sparsities, l.loss_change});
    std::vector<train::LineChart> charts{chart};
    if (timed) {
      train::LineChart speed{.title = fmt::format("engine speed-up of the layer (batch {})", a->engine_batch),
                             .x_label = "sparsity", .y_label = "dense ms / pruned ms"};
      for (const auto& l : layers) {
        std::vector<double> up;
        for (double ms : l.engine_ms) up.push_back(ms > 0 ? l.dense_ms / ms : 0.0);
        speed.series.push_back({l.name, a->sparsities, up});
      }
      charts.push_back(speed);
    }
    train::write_svg(charts, (fs::path(a->out) / "sensitivity.svg").string());
    if (a->json) {
      std::cout << out.dump(2) << "\n";
      return;
    }
    print_table("layer", "numel", "Δloss@", a->sparsities, layers, [](const LayerSensitivity& l) {
      return std::pair{fmt::format("{}", l.numel), l.loss_change};
    }, 4);
    if (timed) {
      fmt::print("\n");
      print_table(fmt::format("engine ms (batch {})", a->engine_batch), "dense", "@", a->sparsities, layers,
                  [](const LayerSensitivity& l) { return std::pair{fmt::format("{:.3f}", l.dense_ms), l.engine_ms}; }, 3);
    }
    if (!a->write_recipe.empty())
      fmt::print("recipe -> {}\n", a->write_recipe);
    fmt::print("-> {}/analysis.json, {}/sensitivity.svg\n", a->out, a->out);
  });
}

}  // namespace neurite::cli
