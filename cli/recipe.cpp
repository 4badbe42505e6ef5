// neurite recipe check: reads a recipe and prints its plan.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/onnx.h"
#include "neurite/error.h"
#include "neurite/layers/models.h"
#include "neurite/recipes/manager.h"

namespace neurite::cli {

std::map<std::string, std::string> parse_recipe_vars(const std::vector<std::string>& pairs) {
  std::map<std::string, std::string> out;
  for (const auto& pair : pairs) {
    const auto eq = pair.find('=');
    check<ValueError>(eq != std::string::npos && eq > 0, "--recipe-var '{}': expected name=value", pair);
    out[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return out;
}

void add_recipe(CLI::App& app) {
  struct Args {
    std::string file, model;
    int64_t steps_per_epoch = 1;
    std::vector<std::string> vars;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* recipe = app.add_subcommand("recipe", "Work with recipes");
  recipe->require_subcommand(1);
  CLI::App* cmd = recipe->add_subcommand("check", "Read a recipe and print its plan: windows and sparsity updates");
  cmd->add_option("FILE", a->file, "Recipe (YAML or Markdown)")->required();
  cmd->add_option("--model", a->model, "Check the recipe's selectors against this zoo model or ONNX file");
  cmd->add_option("--steps-per-epoch", a->steps_per_epoch, "Steps per epoch of the planned run")->capture_default_str();
  cmd->add_option("--recipe-var", a->vars, "Override a recipe variable: name=value (repeatable)");
  cmd->add_flag("--json", a->json, "Print {\"modifiers\": [{\"type\", \"start_epoch\", \"end_epoch\", \"updates\"}]}");
  cmd->callback([a] {
    const recipes::Recipe r = recipes::Recipe::load(a->file, parse_recipe_vars(a->vars));
    if (!a->model.empty()) {
      std::shared_ptr<layers::Module> model;
      if (a->model.ends_with(".onnx")) {
        model = std::make_shared<engine::GraphModule>(engine::load_onnx(a->model));
      } else {
        model = layers::models::make_model(a->model);
      }
      for (const auto& m : r.modifiers)
        if (const auto selectors = m->selectors(); !selectors.empty()) try {
            pruning::select(*model, selectors);
          } catch (const ValueError& e) {
            throw ValueError(fmt::format("{}: {}: {}", m->where, m->type, e.what()));
          }
    }
    const auto planned = recipes::plan(r, a->steps_per_epoch);
    if (a->json) {
      nlohmann::json mods = nlohmann::json::array();
      for (const auto& p : planned) {
        nlohmann::json updates = nlohmann::json::array();
        for (const auto& u : p.updates) updates.push_back({{"epoch", u.epoch}, {"sparsity", u.sparsity}});
        mods.push_back({{"type", p.type}, {"start_epoch", p.start_epoch}, {"end_epoch", p.end_epoch},
                        {"updates", updates}});
      }
      std::cout << nlohmann::json{{"modifiers", mods}}.dump(2) << "\n";
      return;
    }
    fmt::print("{}: {} modifiers, {} epochs\n", a->file, r.modifiers.size(),
               r.epochs() ? fmt::format("{:g}", *r.epochs()) : std::string("unbounded"));
    for (size_t i = 0; i < planned.size(); ++i) {
      const auto& p = planned[i];
      const recipes::SparsityRamp* ramp = r.modifiers[i]->sparsity_ramp();
      fmt::print("  {:<34} epochs [{:g}, {}){}\n", p.type, p.start_epoch,
                 p.end_epoch < 0 ? std::string("end") : fmt::format("{:g}", p.end_epoch),
                 ramp ? fmt::format("  {} {} updates", ramp->mask_type.str(), p.updates.size()) : "");
      for (const auto& u : p.updates) fmt::print("      epoch {:>7.3f}  sparsity {:.3f}\n", u.epoch, u.sparsity);
    }
  });
}

}  // namespace neurite::cli
