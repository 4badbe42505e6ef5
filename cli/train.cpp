// neurite train: trains a zoo model or an ONNX file's graph on a data spec, from scratch, from a base
// checkpoint (--init, transfer learning) or from an interrupted run (--resume).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <variant>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/files.h"
#include "neurite/data/readers.h"
#include "neurite/data/transforms.h"
#include "neurite/dist/dist.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/onnx.h"
#include "neurite/layers/init.h"
#include "neurite/layers/models.h"
#include "neurite/optim/by_name.h"
#include "neurite/recipes/manager.h"
#include "neurite/train/recipe_callback.h"
#include "neurite/train/trainer.h"
#include "neurite/train/transfer.h"

namespace neurite::cli {

namespace fs = std::filesystem;

namespace {


struct TrainArgs {
  std::string model, data, val_data, init, resume, out, optimizer, schedule = "cosine", recipe, augment, normalize;
  std::vector<std::string> recipe_vars;
  int64_t epochs = 10, batch_size = 128, num_classes = 0;
  double lr = 0, weight_decay = -1, momentum = 0.9, warmup_epochs = 0, clip_grad_norm = 0;
  int threads = 0;
  uint64_t seed = 0;
  bool overwrite = false, sync_bn = false;
  // Data-parallel (mpirun): this rank alone prints notes and writes the run's files.
  bool lead = true;
};

// A note on stderr, from the lead rank alone.
template <typename... Args>
void note(const TrainArgs& a, fmt::format_string<Args...> format, Args&&... args) {
  if (a.lead) fmt::print(stderr, format, std::forward<Args>(args)...);
}

// Each flag once: its storage, help, whether help shows the default, and its
// key in args.json (none: not saved, so not restored by --resume). The
// option list, args.json and --resume are all made from this table.
struct TrainFlag {
  const char* name;
  std::variant<std::string TrainArgs::*, std::vector<std::string> TrainArgs::*, int64_t TrainArgs::*,
               double TrainArgs::*, int TrainArgs::*, uint64_t TrainArgs::*, bool TrainArgs::*>
      member;
  const char* help;
  const char* saved_as = nullptr;
  bool show_default = false;
};

const std::vector<TrainFlag>& train_flags() {
  using A = TrainArgs;
  static const std::vector<TrainFlag> flags = {
      {"--model", &A::model,
       "Model: mlp, cnn, resnet20/32/56, mobilenet, vit-tiny, transformer, or FILE.onnx (e.g. exported by PyTorch)",
       "model"},
      {"--data", &A::data, "Training data: fashion-mnist, mnist-digits, idx:PREFIX, folder:DIR, h5:FILE, cifar10:DIR",
       "data"},
      {"--val-data", &A::val_data, "Validation data (default: the data's test split, else 10% held out)", "val_data"},
      {"--augment", &A::augment,
       "Training-time augmentation of images, comma-separated: flip (left-right, p 0.5), crop (pad by an eighth, "
       "crop back at random)",
       "augment"},
      {"--normalize", &A::normalize,
       "Normalise images per channel, (x - mean) / std: auto (the training data's statistics), imagenet, "
       "M1,M2,M3/S1,S2,S3, or none; kept with the model, so eval applies it and export builds it into the ONNX file "
       "(default: none, or --init's)",
       "normalize"},
      {"--epochs", &A::epochs, "Epochs", "epochs", true},
      {"--batch-size", &A::batch_size, "Batch size", "batch_size", true},
      {"--lr", &A::lr, "Learning rate (default 0.05 for sgd, 1e-3 for adam/adamw)", "lr"},
      {"--optimizer", &A::optimizer, "sgd, adam or adamw (default: adamw for transformers, else sgd)", "optimizer"},
      {"--weight-decay", &A::weight_decay, "Weight decay (default 5e-4 sgd, 0.05 adamw, 0 adam)", "weight_decay"},
      {"--momentum", &A::momentum, "SGD momentum", "momentum", true},
      {"--schedule", &A::schedule, "LR schedule: cosine, constant or step", "schedule", true},
      {"--warmup-epochs", &A::warmup_epochs, "Linear warm-up before the cosine decay", "warmup_epochs"},
      {"--clip-grad-norm", &A::clip_grad_norm, "Clip gradients to this global norm (0: off)", "clip_grad_norm"},
      {"--init", &A::init, "Base checkpoint to start from (transfer learning)", "init"},
      {"--num-classes", &A::num_classes,
       "Classes (default: from the data); for FILE.onnx, another number replaces its classifier", "num_classes"},
      // Saved: sums split over another number of threads round differently,
      // and a resumed run should end where the uninterrupted one does.
      {"--threads", &A::threads, "Threads (0: all cores; under mpirun, each rank's)", "threads"},
      {"--sync-bn", &A::sync_bn,
       "Under mpirun: batch norms normalise with the whole global batch's statistics (default: each rank's share)",
       "sync_bn"},
      {"--seed", &A::seed, "Seed of initialisation, shuffling and dropout", "seed", true},
      {"--resume", &A::resume, "Continue the interrupted run in DIR"},
      {"--recipe", &A::recipe, "SparseML recipe (YAML or Markdown) driving pruning, LR and freezing", "recipe"},
      {"--recipe-var", &A::recipe_vars, "Override a recipe variable: name=value (repeatable)", "recipe_vars"},
      {"--out", &A::out, "Output folder: checkpoint.h5, metrics.jsonl, summary.json"},
  };
  return flags;
}

nlohmann::json to_json(const TrainArgs& a) {
  nlohmann::json saved = nlohmann::json::object();
  for (const TrainFlag& f : train_flags())
    if (f.saved_as) std::visit([&](auto member) { saved[f.saved_as] = a.*member; }, f.member);
  return saved;
}

// On --resume, the run's saved arguments fill every option not given again.
void fill_from_saved(CLI::App& cmd, TrainArgs& a, const std::string& dir) {
  const fs::path path = fs::path(dir) / "args.json";
  check<IoError>(fs::is_regular_file(path), "--resume {}: no args.json there (not a neurite train folder)", dir);
  const auto saved = nlohmann::json::parse(std::ifstream(path), nullptr, false);
  check<FormatError>(saved.is_object(), "--resume {}: {} is not a JSON object of the run's options (damaged?)", dir,
                     path.string());
  for (const TrainFlag& f : train_flags())
    if (f.saved_as && cmd.count(f.name) == 0 && saved.contains(f.saved_as)) {
      try {
        std::visit([&](auto member) { saved.at(f.saved_as).get_to(a.*member); }, f.member);
      } catch (const nlohmann::json::exception&) {
        throw FormatError(fmt::format("--resume {}: {} has '{}': {}, not a value of {}", dir, path.string(), f.saved_as,
                                      saved.at(f.saved_as).dump(), f.name));
      }
    }
  if (a.out.empty()) a.out = dir;
}

// --init: the base checkpoint's weights and masks, with a line per tensor
// that keeps its fresh initialisation.
void init_from(layers::Module& model, const TrainArgs& a) {
  const std::string& path = a.init;
  const train::InitReport r = train::init_from_checkpoint(model, train::load_checkpoint(path), "--init " + path);
  for (const auto& t : r.reinitialised)
    note(a, "init: {} is {} in {}, {} here: re-initialised\n", t.name, autograd::to_string(t.checkpoint_shape),
               path, autograd::to_string(t.model_shape));
  note(a, "init: {} of {} tensors from {}\n", r.loaded.size(), r.model_tensors, path);
}

// An ONNX file as the model: its GraphModule (on --resume, the run's own copy
// of the graph, so the folder is self-contained), with its classifier
// replaced when --num-classes asks for another number of classes.
std::shared_ptr<layers::UnaryModule> graph_model(const TrainArgs& a, const data::Example& example, int64_t data_classes,
                                                 train::Checkpoint& tmpl) {
  engine::Graph g;
  const fs::path saved = fs::path(a.resume) / "checkpoint.h5";
  if (!a.resume.empty() && fs::is_regular_file(saved)) {
    const train::Checkpoint c = train::load_checkpoint(saved.string());
    g = c.graph.empty() ? engine::load_onnx(a.model) : engine::from_onnx(c.graph, saved.string());
  } else {
    g = engine::load_onnx(a.model);
  }
  check_graph_fits(g, example, "--model " + a.model);
  auto model = std::make_shared<engine::GraphModule>(std::move(g));
  const int64_t classes = a.num_classes > 0 ? a.num_classes : data_classes;
  // A graph that does not end in a Linear classifier trains as it is; only --num-classes needs one.
  std::optional<int64_t> outputs;
  try {
    outputs = model->num_classes();
  } catch (const ValueError& e) {
    check<ValueError>(a.num_classes == 0, "--num-classes {}: {}: {}", a.num_classes, a.model, e.what());
  }
  if (outputs && *outputs != classes) {
    check<ValueError>(a.num_classes > 0,
                      "--model {} has {} outputs, the data {} classes: pass --num-classes {} to replace its classifier",
                      a.model, model->num_classes(), data_classes, data_classes);
    note(a, "train: classifier of {} replaced: {} -> {} classes, re-initialised\n", a.model,
               model->num_classes(), classes);
    model->replace_classifier(classes);
  }
  tmpl.graph = engine::to_onnx(model->graph());
  return model;
}

bool is_onnx(const std::string& model) { return model.ends_with(".onnx"); }

// The run's files named from anywhere, so --resume works from another folder:
// the recipe, the base checkpoint, an ONNX model and the data specs' paths.
TrainArgs with_absolute_paths(TrainArgs a) {
  auto absolute = [](std::string& path) {
    if (!path.empty()) path = fs::absolute(path).lexically_normal().string();
  };
  auto absolute_spec = [&](std::string& spec) {  // kind:PATH; named sets (fashion-mnist) stay as they are
    const auto colon = spec.find(':');
    if (colon == std::string::npos) return;
    std::string path = spec.substr(colon + 1);
    absolute(path);
    spec = spec.substr(0, colon + 1) + path;
  };
  absolute(a.recipe);
  absolute(a.init);
  if (is_onnx(a.model)) absolute(a.model);
  absolute_spec(a.data);
  absolute_spec(a.val_data);
  return a;
}

std::string epochs_text(int64_t n) { return fmt::format("{} epoch{}", n, n == 1 ? "" : "s"); }

// The vocabulary a token data set needs: its largest id + 1.
int64_t vocabulary_of(const data::Dataset& set) {
  int64_t largest = 0;
  for (int64_t i = 0; i < set.size(); ++i) {
    const autograd::Tensor t = set.get(i).input;
    for (int64_t k = 0; k < t.numel(); ++k) largest = std::max(largest, t.data<int64_t>()[k]);
  }
  return largest + 1;
}

// --normalize: the mean and deviation per channel (both empty: none). A
// resumed run keeps its own; an --init checkpoint's apply unless overridden.
std::pair<std::vector<float>, std::vector<float>> normalization(const TrainArgs& a, const data::Dataset& train,
                                                               const std::optional<train::Checkpoint>& resumed) {
  if (resumed) return {resumed->input_mean, resumed->input_std};
  const std::string& spec = a.normalize;
  if (spec.empty() && !a.init.empty()) {
    const train::Checkpoint base = train::load_checkpoint(a.init);
    return {base.input_mean, base.input_std};
  }
  if (spec.empty() || spec == "none") return {};
  const autograd::Shape image = train.input_shape();
  check<ValueError>(image.size() == 3 && train.get(0).input.dtype() == autograd::Dtype::f32,
                    "--normalize {}: normalisation is for images, not {}", spec, autograd::to_string(image));
  if (spec == "auto") {
    auto stats = data::channel_statistics(train);
    note(a, "normalize: mean {:.4f}, std {:.4f} per channel (from {})\n", fmt::join(stats.first, ","),
               fmt::join(stats.second, ","), a.data);
    return stats;
  }
  if (spec == "imagenet") {
    check<ShapeError>(image[0] == 3, "--normalize imagenet: the images have {} channels, ImageNet's 3", image[0]);
    return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  }
  const size_t slash = spec.find('/');
  check<ValueError>(slash != std::string::npos,
                    "--normalize {}: expected auto, imagenet, none or MEANS/STDS (e.g. 0.5,0.5,0.5/0.25,0.25,0.25)", spec);
  auto numbers = [&](const std::string& list) {
    std::vector<float> out;
    std::stringstream items(list);
    for (std::string item; std::getline(items, item, ',');) {
      size_t used = 0;
      float v = 0;
      try {
        v = std::stof(item, &used);
      } catch (const std::exception&) {
      }
      check<ValueError>(used > 0 && used == item.size() && std::isfinite(v), "--normalize {}: '{}' is not a number",
                        spec, item);
      out.push_back(v);
    }
    return out;
  };
  std::vector<float> mean = numbers(spec.substr(0, slash)), stddev = numbers(spec.substr(slash + 1));
  check<ValueError>(mean.size() == stddev.size() && (mean.size() == 1 || static_cast<int64_t>(mean.size()) == image[0]),
                    "--normalize {}: {} means and {} deviations for images of {} channels", spec, mean.size(),
                    stddev.size(), image[0]);
  for (float d : stddev) check<ValueError>(d > 0, "--normalize {}: a deviation of {} (must be positive)", spec, d);
  mean.resize(static_cast<size_t>(image[0]), mean[0]);  // one value: every channel
  stddev.resize(static_cast<size_t>(image[0]), stddev[0]);
  return {mean, stddev};
}

// --augment flip,crop: the transforms of the training batches (validation sees the images as they are).
std::vector<data::Transform> augmentations(const std::string& spec, const autograd::Shape& image) {
  std::vector<data::Transform> out;
  check<ValueError>(spec.empty() || image.size() == 3, "--augment {}: augmentations are for images, not token ids",
                    spec);
  std::stringstream names(spec);
  for (std::string name; std::getline(names, name, ',');) {
    if (name == "flip") out.push_back(data::horizontal_flip());
    else if (name == "crop") out.push_back(data::random_crop(image[1], std::max<int64_t>(1, image[1] / 8)));
    else throw ValueError(fmt::format("--augment {}: '{}' is not an augmentation (flip, crop)", spec, name));
  }
  return out;
}

void run(CLI::App& cmd, TrainArgs a) {
  // Started by mpirun, each rank runs this on its share of every batch.
  const std::shared_ptr<dist::Communicator> world = dist::Communicator::world();
  a.lead = world->rank() == 0;
  if (!a.resume.empty()) {
    fill_from_saved(cmd, a, a.resume);
    // Other data on resume is allowed (more of it, a moved copy), but said.
    const auto saved = nlohmann::json::parse(std::ifstream(fs::path(a.resume) / "args.json"), nullptr, false);
    const TrainArgs now = with_absolute_paths(a);
    for (const auto& [key, value] : {std::pair{"data", now.data}, std::pair{"val_data", now.val_data}})
      if (saved.value(key, std::string()) != value)
        note(a, "resume: {} is {}, the run's was {}: going on with it\n", key, value, saved.value(key, std::string()));
  }
  check<ValueError>(!a.model.empty(), "train: MODEL is required (or --resume DIR)");
  check<ValueError>(!a.data.empty(), "train: --data is required (or --resume DIR)");
  check<ValueError>(!a.out.empty(), "train: --out is required");
  set_threads(a.threads);
  // A resumed run continues from its checkpoint, under the recipe it began
  // with (the copy the checkpoint holds: an edited file does not change it).
  std::optional<train::Checkpoint> resumed;
  if (!a.resume.empty()) {
    const fs::path ckpt = fs::path(a.resume) / "checkpoint.h5";
    if (fs::is_regular_file(ckpt)) resumed = train::load_checkpoint(ckpt.string());
    else note(a, "resume: {} has no checkpoint yet (the run stopped within its first epoch): starting it again\n", a.resume);
  }
  std::optional<recipes::Recipe> recipe;
  if (!a.recipe.empty()) {
    recipe = resumed && !resumed->recipe.empty()
                 ? recipes::Recipe::parse(resumed->recipe, a.recipe, parse_recipe_vars(a.recipe_vars))
                 : recipes::Recipe::load(a.recipe, parse_recipe_vars(a.recipe_vars));
    if (auto length = recipe->epochs()) {  // the recipe sets the run's length (its latest modifier end)
      a.epochs = static_cast<int64_t>(std::ceil(*length));
      note(a, "recipe: {} sets {}\n", a.recipe, epochs_text(a.epochs));
    }
  }
  if (a.optimizer.empty()) a.optimizer = is_onnx(a.model) ? "sgd" : layers::models::model_defaults(a.model).optimizer;
  check<ValueError>(optim::is_optimizer_name(a.optimizer), "--optimizer is '{}', expected sgd, adam or adamw",
                    a.optimizer);
  const optim::Hyperparameters defaults = optim::default_hyperparameters(a.optimizer);
  if (a.lr == 0) a.lr = defaults.lr;
  if (a.weight_decay < 0) a.weight_decay = defaults.weight_decay;

  const data::DataSplits train_data = data::open_data(a.data);
  std::shared_ptr<const data::Dataset> train_set = train_data.train, val_set = train_data.test;
  if (!a.val_data.empty()) {
    const data::DataSplits v = data::open_data(a.val_data);
    val_set = v.test ? v.test : v.train;
  } else if (!val_set) {
    auto [held_in, held_out] = data::random_split(train_set, 0.9, 0);
    train_set = held_in;
    val_set = held_out;
    note(a, "data: {} has no test split: validating on a fixed 10% of it ({} examples)\n", a.data,
               val_set->size());
  }
  const autograd::Shape shape = train_set->input_shape();
  // Token ids (L) for sequence models (h5:FILE with an integer x), square (C, H, W) images for the rest.
  const bool tokens = train_set->get(0).input.dtype() == autograd::Dtype::i64;
  if (!is_onnx(a.model)) {
    check<ShapeError>(tokens == layers::models::takes_tokens(a.model),
                      "train: {} gives {} of shape {}, the model {} takes {}", a.data, tokens ? "token ids" : "images",
                      autograd::to_string(shape), a.model, tokens ? "images" : "token ids (an h5 file of integer x)");
    check<ShapeError>(tokens ? shape.size() == 1 : shape.size() == 3 && shape[1] == shape[2],
                      "train: {} gives examples of shape {}, expected {}", a.data, autograd::to_string(shape),
                      tokens ? "(L) token ids" : "square (C, H, W) images");
  }
  check<ShapeError>(val_set->input_shape() == shape, "train: validation examples are {}, training examples {}",
                    autograd::to_string(val_set->input_shape()), autograd::to_string(shape));

  train::Checkpoint tmpl;
  tmpl.model = a.model;
  std::tie(tmpl.input_mean, tmpl.input_std) = normalization(a, *train_set, resumed);
  tmpl.options = {.num_classes = a.num_classes > 0 ? a.num_classes : train_set->num_classes()};
  if (tokens) {
    tmpl.options.seq_len = shape[0];
    tmpl.options.vocab_size = vocabulary_of(*train_set);
  } else if (shape.size() == 3) {
    tmpl.options.in_channels = shape[0];
    tmpl.options.image_size = shape[1];
  }
  tmpl.optimizer = a.optimizer;
  layers::manual_seed(a.seed);
  auto model = is_onnx(a.model) ? graph_model(a, train_set->get(0), train_set->num_classes(), tmpl)
                                : layers::models::make_model(a.model, tmpl.options);
  if (!a.init.empty() && !resumed) init_from(*model, a);

  if (a.sync_bn) {
    if (world->size() == 1)
      note(a, "--sync-bn: one process (not started by mpirun): batch norms see the whole batch anyway\n");
    else if (dist::synchronize_batch_norms(*model, world) == 0)
      note(a, "--sync-bn: {} has no BatchNorm2d layer to synchronise (an imported graph's BatchNormalization nodes "
              "normalise each rank's share): going on without\n", a.model);
  }
  auto optimizer = optim::make_optimizer(
      a.optimizer, {{.params = model->parameters(), .lr = a.lr, .weight_decay = a.weight_decay}}, a.momentum);

  // Normalised after the augmentations, as torchvision's pipelines do (a crop pads with black, not the mean).
  std::vector<data::Transform> transforms = augmentations(a.augment, shape);
  if (!tmpl.input_mean.empty()) {
    transforms.push_back(data::normalize(tmpl.input_mean, tmpl.input_std));
    val_set = std::make_shared<data::TransformedDataset>(val_set, transforms.back());
  }
  // Synchronised batch norms sum across every rank in forward: a last batch too short to give each rank an example is left out.
  const int64_t last = train_set->size() % a.batch_size;
  const bool drop_last = a.sync_bn && world->size() > 1 && last > 0 && last < world->size();
  if (drop_last) note(a, "--sync-bn: the last {} examples of each epoch are left out (fewer than the {} ranks)\n", last, world->size());
  data::DataLoader loader(train_set, {.batch_size = a.batch_size, .shuffle = true, .drop_last = drop_last, .seed = a.seed,
                                      .transforms = transforms, .shard = world->rank(), .shards = world->size()});
  const std::map<std::string, optim::Schedule> schedules = {
      {"cosine", optim::Schedule::cosine(static_cast<double>(a.epochs), a.warmup_epochs)},
      {"constant", optim::Schedule::constant()},
      {"step", optim::Schedule::step(std::max<double>(1, static_cast<double>(a.epochs) / 3), 0.1)}};
  check<ValueError>(schedules.count(a.schedule), "--schedule is '{}', expected cosine, constant or step", a.schedule);
  optim::LrScheduler scheduler(*optimizer, schedules.at(a.schedule), loader.batches_per_epoch());
  const bool recipe_sets_lr = recipe && recipe->sets_learning_rate();  // then the recipe alone sets it
  std::unique_ptr<recipes::Manager> manager;
  std::unique_ptr<train::RecipeCallback> callback;
  if (recipe) {
    tmpl.recipe = recipe->text;
    manager = std::make_unique<recipes::Manager>(*recipe, *model, *optimizer, loader.batches_per_epoch());
    callback = std::make_unique<train::RecipeCallback>(*manager);
  }

  // A folder that holds anything is an earlier run, or someone's files: only --overwrite replaces them.
  // The lead rank alone looks and writes (the others would see its files appear).
  int saved_ranks = 0;
  world->barrier();  // every rank has read args.json (--resume) before the lead rewrites it
  if (a.lead) {
    check<ValueError>(!a.resume.empty() || a.overwrite || !fs::is_directory(a.out) || fs::is_empty(a.out),
                      "train: --out {} is not empty (an earlier run?): pass --overwrite to replace it, or --resume {} "
                      "to continue it",
                      a.out, a.out);
    const fs::path args_file = fs::path(a.out) / "args.json";
    if (!a.resume.empty() && fs::is_regular_file(args_file))
      saved_ranks = nlohmann::json::parse(std::ifstream(args_file), nullptr, false).value("ranks", 1);
    fs::create_directories(a.out);
    nlohmann::json saved = to_json(with_absolute_paths(a));
    saved["ranks"] = world->size();  // not an option: what --resume reports when it changes
    write_file_atomically(args_file.string(), saved.dump(2) + "\n");
  }
  const InterruptScope interrupts;  // a signal from here on stops the run gently
  train::Trainer trainer(model, *optimizer, recipe_sets_lr ? nullptr : &scheduler, loader, val_set,
                         {.epochs = a.epochs, .out_dir = a.out, .clip_grad_norm = a.clip_grad_norm,
                          .checkpoint_template = tmpl, .kernels = kernel_policy(false), .world = world,
                          .interrupt = &interrupts.requested()});
  if (resumed) {
    trainer.resume(*resumed);
    if (manager) manager->fast_forward(trainer.step());
    if (saved_ranks != 0 && saved_ranks != world->size())
      note(a, "resume: the run trained on {} rank{} so far, goes on on {}: the same global batch of {}, shared out anew\n",
           saved_ranks, saved_ranks == 1 ? "" : "s", world->size(), a.batch_size);
  }
  if (callback) trainer.add_callback(callback.get());
  note(a, "train: {} ({} parameters) on {} ({} examples, validating on {}), {}, {}, {}{}\n", a.model,
       model->parameter_count(), a.data, train_set->size(), val_set->size(), epochs_text(a.epochs), a.optimizer,
       recipe_sets_lr ? "learning rate from the recipe" : fmt::format("lr {} ({} schedule)", a.lr, a.schedule),
       world->size() > 1 ? fmt::format(", {} ranks sharing each batch", world->size()) : "");
  const train::Summary s = trainer.fit();
  if (s.interrupted) {
    const auto [epochs, batches] = s.interrupted_at;
    const std::string where = batches > 0 ? fmt::format("in epoch {}, after batch {} of {}", epochs + 1, batches,
                                                        loader.batches_per_epoch())
                                          : fmt::format("after epoch {}", epochs);
    throw Exit{128 + interrupts.signal(),
               !a.lead ? "" : fmt::format("train: interrupted ({}) {}: {} holds that moment; go on with: neurite train --resume {}",
                           interrupts.signal() == SIGTERM ? "SIGTERM" : "SIGINT", where,
                           (fs::path(a.out) / "checkpoint.h5").string(), a.out)};
  }
  if (!s.epochs.empty() && a.lead)
    fmt::print("{}: val top-1 {:.2f}%  val loss {:.4f}  {:.0f}s  -> {}\n", a.model, 100 * s.epochs.back().val_top1,
               s.epochs.back().val_loss, s.seconds, (fs::path(a.out) / "checkpoint.h5").string());
}

}  // namespace

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model (from scratch, --init CKPT, or --resume DIR)");
  for (const TrainFlag& f : train_flags()) {
    // The model is positional, as in every command, and --model names it too.
    const std::string name = std::string(f.name) == "--model" ? "MODEL,--model" : f.name;
    CLI::Option* option = std::visit(
        [&](auto member) {
          if constexpr (std::is_same_v<decltype(member), bool TrainArgs::*>) return cmd->add_flag(name, (*args).*member, f.help);
          else return cmd->add_option(name, (*args).*member, f.help);
        },
        f.member);
    if (f.show_default) option->capture_default_str();
  }
  cmd->add_flag("--overwrite", args->overwrite, "Write into a non-empty --out folder, replacing its run");
  cmd->callback([cmd, args] { run(*cmd, *args); });
}

}  // namespace neurite::cli
