// neurite quantize: one-shot post-training quantisation of a checkpoint, for a
// model one does not want to retrain: fake quantisers on every Linear and
// Conv2d (SparseML's QuantizationModifier decides which and how: the default
// scheme, or a recipe's), their ranges calibrated on training batches, top-1
// before and after.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/data/loader.h"
#include "neurite/data/readers.h"
#include "neurite/error.h"
#include "neurite/layers/quantize.h"
#include "neurite/optim/optimizer.h"
#include "neurite/recipes/manager.h"
#include "neurite/train/checkpoint.h"
#include "neurite/train/trainer.h"

namespace neurite::cli {

namespace {

// The quantisation the recipe at `path` asks for ("" : SparseML's default
// scheme); it may hold QuantizationModifiers only.
recipes::Recipe quantization_recipe(const std::string& path, const std::map<std::string, std::string>& vars) {
  if (path.empty()) return recipes::Recipe::parse("modifiers:\n  - !QuantizationModifier {start_epoch: 0}\n", "(default)");
  recipes::Recipe r = recipes::Recipe::load(path, vars);
  for (const auto& m : r.modifiers)
    check<ValueError>(m->type == "QuantizationModifier" || m->type == "EpochRangeModifier",
                      "{}: quantize runs QuantizationModifiers only; {} needs training (neurite train --recipe)",
                      m->where, m->type);
  return r;
}

}  // namespace

void add_quantize(CLI::App& app) {
  struct Args {
    std::string checkpoint, data, recipe, out;
    std::vector<std::string> recipe_vars;
    int64_t calibration_batches = 32, batch_size = 64;
    int threads = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("quantize", "One-shot 8-bit quantisation of a checkpoint, calibrated on data");
  add_model_argument(cmd, a->checkpoint, "Checkpoint to quantise (.h5)", "--checkpoint");
  cmd->add_option("--data", a->data, "Data spec: calibration on its training split, top-1 on its test split")->required();
  cmd->add_option("--calibration-batches", a->calibration_batches, "Training batches the observers see")
      ->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "Calibration batch size")->capture_default_str();
  cmd->add_option("--recipe", a->recipe,
                  "A recipe of QuantizationModifiers (scheme, scheme_overrides, ignore); default: SparseML's default "
                  "scheme on every Linear and Conv2d");
  cmd->add_option("--recipe-var", a->recipe_vars, "Override a recipe variable: name=value (repeatable)");
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_flag("--json", a->json, "Print {\"top1_before\", \"top1_after\", \"quantizers\"}");
  cmd->add_option("--out", a->out, "Quantised checkpoint (.h5)")->required();
  cmd->callback([a] {
    check<ValueError>(a->calibration_batches >= 1, "quantize: --calibration-batches is {}, expected at least 1",
                      a->calibration_batches);
    set_threads(a->threads);
    train::Checkpoint c = train::load_checkpoint(a->checkpoint);
    auto model = train::build_model(c);
    check<ValueError>(layers::fake_quantizers(*model).empty(), "quantize: {} is quantised already", a->checkpoint);
    const data::DataSplits splits = open_data_for(a->data, c);
    const data::Dataset& test = splits.test ? *splits.test : *splits.train;
    const train::Evaluation before = train::evaluate(*model, test);
    if (!a->json) fmt::print("float:     top-1 {:.2f}% ({} examples)\n", 100 * before.top1, before.examples);

    optim::Sgd unused({{.params = model->parameters(), .lr = 0}});
    recipes::Manager manager(quantization_recipe(a->recipe, parse_recipe_vars(a->recipe_vars)), *model, unused, 1);
    manager.before_step(0, 0);  // every QuantizationModifier starts
    const auto quantizers = layers::fake_quantizers(*model);
    check<ValueError>(!quantizers.empty(), "quantize: the recipe quantises no layer of {}", c.model);

    // Calibration: batch norms and dropout in eval mode, the observers
    // observing; each batch weighs 1/(k+1), so the ranges are the batches' mean.
    model->eval();
    for (auto& [name, fq] : quantizers) fq->train();
    data::DataLoader loader(splits.train, {.batch_size = a->batch_size, .shuffle = true, .seed = 1});
    autograd::NoGradGuard no_grad;
    int64_t seen = 0;
    for (int64_t epoch = 0; seen < a->calibration_batches; ++epoch) {
      auto batches = loader.epoch(epoch);
      while (seen < a->calibration_batches) {
        auto batch = batches.next();
        if (!batch) break;
        for (auto& [name, fq] : quantizers) fq->set_averaging_constant(1.0 / static_cast<double>(seen + 1));
        model->forward(autograd::Variable(batch->inputs));
        ++seen;
      }
    }
    for (auto& [name, fq] : quantizers) {
      fq->set_averaging_constant(0.01);  // PyTorch's, for quantisation-aware training after this
      fq->enable_observer(false);
    }
    const train::Evaluation after = train::evaluate(*model, test);
    train::capture_model(*model, c);
    c.optimizer_state.clear();
    train::save_checkpoint(a->out, c);
    if (a->json) {
      std::cout << nlohmann::json{{"top1_before", before.top1}, {"top1_after", after.top1},
                                  {"quantizers", quantizers.size()}, {"calibration_batches", seen}}
                       .dump()
                << "\n";
    } else {
      fmt::print("quantised: top-1 {:.2f}% ({:+.2f} points), {} fake quantisers calibrated on {} batches of {} -> {}\n",
                 100 * after.top1, 100 * (after.top1 - before.top1), quantizers.size(), seen, a->batch_size, a->out);
    }
  });
}

}  // namespace neurite::cli
