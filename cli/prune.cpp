// neurite prune: one-shot magnitude pruning of a checkpoint.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/pruning/pruning.h"
#include "neurite/data/readers.h"
#include "neurite/train/checkpoint.h"
#include "neurite/train/trainer.h"

namespace neurite::cli {

void add_prune(CLI::App& app) {
  struct Args {
    std::string checkpoint, out, mask_type = "unstructured", data;
    double sparsity = -1;
    bool global = false, json = false;
    int64_t batch_size = 256;
    int threads = 0;
    std::vector<std::string> params{"__ALL_PRUNABLE__"};
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("prune", "One-shot magnitude pruning of a checkpoint");
  add_model_argument(cmd, a->checkpoint, "Checkpoint to prune (.h5)", "--checkpoint");
  cmd->add_option("--sparsity", a->sparsity, "Fraction of weights to zero, in [0, 1)")->required();
  cmd->add_option("--mask-type", a->mask_type, "unstructured, 4x1, 1x4, [R,C], N:M, filter or channel")
      ->capture_default_str();
  cmd->add_flag("--global", a->global, "One threshold across all selected tensors (default: per tensor)");
  cmd->add_option("--params", a->params, "Selectors: names, re:REGEX, __ALL_PRUNABLE__, __ALL__")
      ->capture_default_str();
  cmd->add_option("--data", a->data, "Report top-1 before and after on this data's test split");
  cmd->add_option("--batch-size", a->batch_size, "Batch size of the top-1 runs")->capture_default_str();
  cmd->add_option("--out", a->out, "Pruned checkpoint (.h5)")->required();
  cmd->add_flag("--json", a->json,
                "Print {\"layers\": [{\"name\", \"sparsity\"}], \"sparsity\", \"top1_before\", \"top1_after\"}");
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->callback([a] {
    set_threads(a->threads);
    train::Checkpoint c = train::load_checkpoint(a->checkpoint);
    auto model = train::build_model(c);
    std::optional<data::DataSplits> splits;
    std::optional<train::Evaluation> before, after;
    if (!a->data.empty()) {
      splits = open_data_for(a->data, c);
      before = train::evaluate(*model, splits->test ? *splits->test : *splits->train, a->batch_size);
    }
    const auto names = pruning::select(*model, a->params);
    pruning::prune(*model, names, a->sparsity, pruning::MaskType::parse(a->mask_type), a->global);
    if (splits) after = train::evaluate(*model, splits->test ? *splits->test : *splits->train, a->batch_size);
    train::capture_model(*model, c);
    c.optimizer_state.clear();  // moments of the dense weights do not carry over
    train::save_checkpoint(a->out, c);
    nlohmann::json report = {{"checkpoint", a->out}, {"layers", nlohmann::json::array()}};
    for (const auto& [name, p] : model->named_parameters())
      if (std::find(names.begin(), names.end(), name) != names.end())
        report["layers"].push_back({{"name", name}, {"sparsity", pruning::sparsity_of(p->value().data())}});
    report["sparsity"] = pruning::total_sparsity(*model);
    if (before) report["top1_before"] = before->top1, report["top1_after"] = after->top1;
    if (a->json) {
      std::cout << report.dump(2) << "\n";
      return;
    }
    for (const auto& l : report["layers"])
      fmt::print("{:<40} {:>6.1f}%\n", l["name"].get<std::string>(), 100 * l["sparsity"].get<double>());
    fmt::print("pruned {} tensors ({}{}); the model's prunable weights are {:.1f}% sparse -> {}\n", names.size(),
               a->mask_type, a->global ? ", global" : "", 100 * report["sparsity"].get<double>(), a->out);
    if (before)
      fmt::print("top-1 on {}: {:.2f}% before, {:.2f}% after ({:+.2f} points){}\n", a->data, 100 * before->top1,
                 100 * after->top1, 100 * (after->top1 - before->top1),
                 after->top1 < before->top1 - 0.05 ? "; fine-tune it: neurite train --init with a recipe" : "");
  });
}

}  // namespace neurite::cli
