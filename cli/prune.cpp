// neurite prune: one-shot magnitude pruning of a checkpoint.
#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/pruning/pruning.h"
#include "neurite/train/checkpoint.h"

namespace neurite::cli {

void add_prune(CLI::App& app) {
  struct Args {
    std::string checkpoint, out, mask_type = "unstructured";
    double sparsity = -1;
    bool global = false;
    std::vector<std::string> params{"__ALL_PRUNABLE__"};
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("prune", "One-shot magnitude pruning of a checkpoint");
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint to prune (.h5)")->required();
  cmd->add_option("--sparsity", a->sparsity, "Fraction of weights to zero, in [0, 1)")->required();
  cmd->add_option("--mask-type", a->mask_type, "unstructured, 4x1, 1x4, [R,C], N:M, filter or channel")
      ->capture_default_str();
  cmd->add_flag("--global", a->global, "One threshold across all selected tensors (default: per tensor)");
  cmd->add_option("--params", a->params, "Selectors: names, re:REGEX, __ALL_PRUNABLE__, __ALL__")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "Pruned checkpoint (.h5)")->required();
  cmd->callback([a] {
    train::Checkpoint c = train::load_checkpoint(a->checkpoint);
    auto model = train::build_model(c);
    const auto names = pruning::select(*model, a->params);
    pruning::prune(*model, names, a->sparsity, pruning::MaskType::parse(a->mask_type), a->global);
    train::capture_model(*model, c);
    c.optimizer_state.clear();  // moments of the dense weights do not carry over
    train::save_checkpoint(a->out, c);
    int64_t total = 0, zeros = 0;
    for (const auto& [name, p] : model->named_parameters()) {
      if (std::find(names.begin(), names.end(), name) == names.end()) continue;
      const double s = pruning::sparsity_of(p->value().data());
      fmt::print("{:<40} {:>6.1f}%\n", name, 100 * s);
      total += p->numel();
      zeros += static_cast<int64_t>(std::llround(s * static_cast<double>(p->numel())));
    }
    fmt::print("pruned {} tensors ({}{}) to {:.1f}% overall -> {}\n", names.size(), a->mask_type,
               a->global ? ", global" : "", 100.0 * static_cast<double>(zeros) / static_cast<double>(total), a->out);
  });
}

}  // namespace neurite::cli
