// neurite train: trains a zoo model on a data spec, from scratch, from a base
// checkpoint (--init, transfer learning) or from an interrupted run (--resume).
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/data/readers.h"
#include "neurite/layers/init.h"
#include "neurite/recipes/manager.h"
#include "neurite/train/trainer.h"

namespace neurite::cli {

namespace fs = std::filesystem;

namespace {

struct TrainArgs {
  std::string model, data, val_data, init, resume, out, optimizer, schedule = "cosine", recipe;
  std::vector<std::string> recipe_vars;
  int64_t epochs = 10, batch_size = 128, num_classes = 0;
  double lr = 0, weight_decay = -1, momentum = 0.9, warmup_epochs = 0, clip_grad_norm = 0;
  int threads = 0;
  uint64_t seed = 0;
};

nlohmann::json to_json(const TrainArgs& a) {
  return {{"model", a.model},       {"data", a.data},         {"val_data", a.val_data},
          {"init", a.init},         {"optimizer", a.optimizer}, {"schedule", a.schedule},
          {"epochs", a.epochs},     {"batch_size", a.batch_size}, {"num_classes", a.num_classes},
          {"lr", a.lr},             {"weight_decay", a.weight_decay}, {"momentum", a.momentum},
          {"warmup_epochs", a.warmup_epochs}, {"clip_grad_norm", a.clip_grad_norm}, {"seed", a.seed},
          {"recipe", a.recipe}, {"recipe_vars", a.recipe_vars}};
}

// On --resume, the run's saved arguments fill every option not given again.
void fill_from_saved(CLI::App& cmd, TrainArgs& a, const std::string& dir) {
  const fs::path path = fs::path(dir) / "args.json";
  check<IoError>(fs::is_regular_file(path), "--resume {}: no args.json there (not a neurite train folder)", dir);
  const auto saved = nlohmann::json::parse(std::ifstream(path));
  auto fill = [&](const char* flag, const char* key, auto& field) {
    if (cmd.count(flag) == 0 && saved.contains(key)) saved.at(key).get_to(field);
  };
  fill("--model", "model", a.model);
  fill("--data", "data", a.data);
  fill("--val-data", "val_data", a.val_data);
  fill("--init", "init", a.init);
  fill("--optimizer", "optimizer", a.optimizer);
  fill("--schedule", "schedule", a.schedule);
  fill("--epochs", "epochs", a.epochs);
  fill("--batch-size", "batch_size", a.batch_size);
  fill("--num-classes", "num_classes", a.num_classes);
  fill("--lr", "lr", a.lr);
  fill("--weight-decay", "weight_decay", a.weight_decay);
  fill("--momentum", "momentum", a.momentum);
  fill("--warmup-epochs", "warmup_epochs", a.warmup_epochs);
  fill("--clip-grad-norm", "clip_grad_norm", a.clip_grad_norm);
  fill("--seed", "seed", a.seed);
  fill("--recipe", "recipe", a.recipe);
  fill("--recipe-var", "recipe_vars", a.recipe_vars);
  if (a.out.empty()) a.out = dir;
}

// Loads the base checkpoint's weights by name; tensors whose shape differs
// (a head for another number of classes) keep their fresh initialisation.
void load_init(layers::Module& model, const std::string& path) {
  const train::Checkpoint base = train::load_checkpoint(path);
  layers::StateDict own = model.state_dict(), matched;
  for (const auto& [name, t] : base.state) {
    auto it = own.find(name);
    if (it == own.end()) continue;
    if (it->second.shape() != t.shape()) {
      fmt::print(stderr, "init: {} is {} in {}, {} here: re-initialised\n", name, autograd::to_string(t.shape()), path,
                 autograd::to_string(it->second.shape()));
      continue;
    }
    matched.emplace(name, t);
  }
  check<ValueError>(!matched.empty(), "--init {}: no parameter name matches the model ({} in the checkpoint)", path,
                    base.model);
  model.load_state_dict(matched, /*strict=*/false);
  for (const auto& [name, p] : model.named_parameters())
    if (auto m = base.masks.find(name); m != base.masks.end() && matched.count(name)) p->set_mask(m->second.clone());
  fmt::print(stderr, "init: {} of {} tensors from {}\n", matched.size(), own.size(), path);
}

// Drives a recipe's manager from the Trainer's step events.
class RecipeCallback : public train::Callback {
 public:
  explicit RecipeCallback(recipes::Manager& manager) : manager_(manager) {}
  void before_step(double epoch, int64_t step) override { manager_.before_step(epoch, step); }

 private:
  recipes::Manager& manager_;
};

bool uses_adam(const TrainArgs& a) { return a.optimizer == "adam" || a.optimizer == "adamw"; }

void run(CLI::App& cmd, TrainArgs a) {
  if (!a.resume.empty()) fill_from_saved(cmd, a, a.resume);
  check<ValueError>(!a.model.empty(), "train: --model is required (or --resume DIR)");
  check<ValueError>(!a.data.empty(), "train: --data is required (or --resume DIR)");
  check<ValueError>(!a.out.empty(), "train: --out is required");
  set_threads(a.threads);
  std::optional<recipes::Recipe> recipe;
  if (!a.recipe.empty()) {
    recipe = recipes::Recipe::load(a.recipe, parse_recipe_vars(a.recipe_vars));
    if (auto length = recipe->epochs()) {  // the recipe sets the run's length (EpochRangeModifier)
      a.epochs = static_cast<int64_t>(std::ceil(*length));
      fmt::print(stderr, "recipe: {} sets {} epochs\n", a.recipe, a.epochs);
    }
  }
  // Good defaults per family: SGD + momentum for conv nets, AdamW for transformers.
  const bool transformer = a.model == "vit-tiny" || a.model == "transformer";
  if (a.optimizer.empty()) a.optimizer = transformer ? "adamw" : "sgd";
  check<ValueError>(a.optimizer == "sgd" || uses_adam(a), "--optimizer is '{}', expected sgd, adam or adamw",
                    a.optimizer);
  if (a.lr == 0) a.lr = uses_adam(a) ? 1e-3 : 0.05;
  if (a.weight_decay < 0) a.weight_decay = a.optimizer == "sgd" ? 5e-4 : a.optimizer == "adamw" ? 0.05 : 0.0;

  const data::DataSplits train_data = data::open_data(a.data);
  std::shared_ptr<const data::Dataset> train_set = train_data.train, val_set = train_data.test;
  if (!a.val_data.empty()) {
    const data::DataSplits v = data::open_data(a.val_data);
    val_set = v.test ? v.test : v.train;
  } else if (!val_set) {
    auto [held_in, held_out] = data::random_split(train_set, 0.9, 0);
    train_set = held_in;
    val_set = held_out;
    fmt::print(stderr, "data: {} has no test split: validating on a fixed 10% of it ({} examples)\n", a.data,
               val_set->size());
  }
  const autograd::Shape shape = train_set->input_shape();
  check<ShapeError>(shape.size() == 3 && shape[1] == shape[2],
                    "train: {} gives examples of shape {}, expected square (C, H, W) images", a.data,
                    autograd::to_string(shape));
  check<ShapeError>(val_set->input_shape() == shape, "train: validation examples are {}, training examples {}",
                    autograd::to_string(val_set->input_shape()), autograd::to_string(shape));

  train::Checkpoint tmpl;
  tmpl.model = a.model;
  tmpl.options = {.in_channels = shape[0],
                  .image_size = shape[1],
                  .num_classes = a.num_classes > 0 ? a.num_classes : train_set->num_classes()};
  tmpl.optimizer = a.optimizer;
  layers::manual_seed(a.seed);
  auto model = layers::models::make_model(a.model, tmpl.options);
  if (!a.init.empty() && a.resume.empty()) load_init(*model, a.init);

  std::vector<optim::ParamGroup> groups{{.params = model->parameters(), .lr = a.lr, .weight_decay = a.weight_decay}};
  std::unique_ptr<optim::Optimizer> optimizer;
  if (a.optimizer == "sgd") optimizer = std::make_unique<optim::Sgd>(groups, optim::SgdOptions{.momentum = a.momentum});
  else if (a.optimizer == "adam") optimizer = std::make_unique<optim::Adam>(groups);
  else optimizer = std::make_unique<optim::AdamW>(groups);

  data::DataLoader loader(train_set, {.batch_size = a.batch_size, .shuffle = true, .seed = a.seed});
  const std::map<std::string, optim::Schedule> schedules = {
      {"cosine", optim::Schedule::cosine(static_cast<double>(a.epochs), a.warmup_epochs)},
      {"constant", optim::Schedule::constant()},
      {"step", optim::Schedule::step(std::max<double>(1, static_cast<double>(a.epochs) / 3), 0.1)}};
  check<ValueError>(schedules.count(a.schedule), "--schedule is '{}', expected cosine, constant or step", a.schedule);
  optim::LrScheduler scheduler(*optimizer, schedules.at(a.schedule), loader.batches_per_epoch());
  const bool recipe_sets_lr = recipe && recipe->sets_learning_rate();  // then the recipe alone sets it
  std::unique_ptr<recipes::Manager> manager;
  std::unique_ptr<RecipeCallback> callback;
  if (recipe) {
    tmpl.recipe = recipe->text;
    manager = std::make_unique<recipes::Manager>(*recipe, *model, *optimizer, loader.batches_per_epoch());
    callback = std::make_unique<RecipeCallback>(*manager);
  }

  fs::create_directories(a.out);
  std::ofstream(fs::path(a.out) / "args.json") << to_json(a).dump(2) << "\n";
  train::Trainer trainer(model, *optimizer, recipe_sets_lr ? nullptr : &scheduler, loader, val_set,
                         {.epochs = a.epochs, .out_dir = a.out, .clip_grad_norm = a.clip_grad_norm,
                          .checkpoint_template = tmpl, .kernels = kernel_policy(false)});
  if (!a.resume.empty()) {
    const fs::path ckpt = fs::path(a.resume) / "checkpoint.h5";
    check<IoError>(fs::is_regular_file(ckpt), "--resume {}: no checkpoint.h5 yet (the run ended before epoch 1)",
                   a.resume);
    trainer.resume(train::load_checkpoint(ckpt.string()));
    if (manager) manager->fast_forward(trainer.step());
  }
  if (callback) trainer.add_callback(callback.get());
  fmt::print(stderr, "train: {} ({} parameters) on {} ({} examples, validating on {}), {} epochs, {} lr {}\n", a.model,
             model->parameter_count(), a.data, train_set->size(), val_set->size(), a.epochs, a.optimizer, a.lr);
  const train::Summary s = trainer.fit();
  if (!s.epochs.empty())
    fmt::print("{}: val top-1 {:.2f}%  val loss {:.4f}  {:.0f}s  -> {}\n", a.model, 100 * s.epochs.back().val_top1,
               s.epochs.back().val_loss, s.seconds, (fs::path(a.out) / "checkpoint.h5").string());
}

}  // namespace

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model (from scratch, --init CKPT, or --resume DIR)");
  cmd->add_option("--model", args->model, "Model: mlp, cnn, resnet20/32/56, mobilenet, vit-tiny, transformer");
  cmd->add_option("--data", args->data, "Training data: fashion-mnist, mnist-digits, idx:PREFIX, folder:DIR, h5:FILE, cifar10:DIR");
  cmd->add_option("--val-data", args->val_data, "Validation data (default: the data's test split, else 10% held out)");
  cmd->add_option("--epochs", args->epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--lr", args->lr, "Learning rate (default 0.05 for sgd, 1e-3 for adam/adamw)");
  cmd->add_option("--optimizer", args->optimizer, "sgd, adam or adamw (default: adamw for transformers, else sgd)");
  cmd->add_option("--weight-decay", args->weight_decay, "Weight decay (default 5e-4 sgd, 0.05 adamw, 0 adam)");
  cmd->add_option("--momentum", args->momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--schedule", args->schedule, "LR schedule: cosine, constant or step")->capture_default_str();
  cmd->add_option("--warmup-epochs", args->warmup_epochs, "Linear warm-up before the cosine decay");
  cmd->add_option("--clip-grad-norm", args->clip_grad_norm, "Clip gradients to this global norm (0: off)");
  cmd->add_option("--init", args->init, "Base checkpoint to start from (transfer learning)");
  cmd->add_option("--num-classes", args->num_classes, "Classes (default: from the data)");
  cmd->add_option("--threads", args->threads, "Threads (0: all cores)");
  cmd->add_option("--seed", args->seed, "Seed of initialisation, shuffling and dropout")->capture_default_str();
  cmd->add_option("--resume", args->resume, "Continue the interrupted run in DIR");
  cmd->add_option("--recipe", args->recipe, "SparseML recipe (YAML or Markdown) driving pruning, LR and freezing");
  cmd->add_option("--recipe-var", args->recipe_vars, "Override a recipe variable: name=value (repeatable)");
  cmd->add_option("--out", args->out, "Output folder: checkpoint.h5, metrics.jsonl, summary.json");
  cmd->callback([cmd, args] { run(*cmd, *args); });
}

}  // namespace neurite::cli
