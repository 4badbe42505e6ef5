// Fine-tune a model from a checkpoint on another task, optionally pruning it
// with a recipe: what `neurite train --init BASE --recipe FILE` does, with the
// library calls it makes. The base weights load by name (a head for another
// number of classes stays freshly initialised, masks of a pruned base stay);
// the optimizer, its learning rate and weight decay are the model's defaults;
// the recipe's manager fires before every step.
//
//   build/neurite train --model resnet20 --data fashion-mnist --epochs 2 --out base
//   build/examples/finetune_resnet base/checkpoint.h5 mnist-digits finetuned 2 recipes/library/gmp90_transfer.yaml
#include <neurite/error.h>
#include <neurite/parallel.h>
#include <neurite/data/readers.h>
#include <neurite/layers/init.h>
#include <neurite/optim/by_name.h>
#include <neurite/optim/schedule.h>
#include <neurite/recipes/manager.h>
#include <neurite/train/recipe_callback.h>
#include <neurite/train/trainer.h>
#include <neurite/train/transfer.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

using namespace neurite;

int main(int argc, char** argv) {
  init(argv);  // OpenMP's threads wait passively; freed memory stays in the heap
  if (argc < 4) {
    std::fprintf(stderr, "usage: finetune_resnet BASE_CHECKPOINT DATA_SPEC OUT_DIR [epochs] [recipe.yaml]\n");
    return 2;
  }
  try {
    set_num_threads(0);
    const train::Checkpoint base = train::load_checkpoint(argv[1]);
    const data::DataSplits data = data::open_data(argv[2]);
    std::optional<recipes::Recipe> recipe;
    if (argc > 5) recipe = recipes::Recipe::load(argv[5]);
    int64_t epochs = argc > 4 ? std::stoll(argv[4]) : 2;
    if (recipe && recipe->epochs()) epochs = static_cast<int64_t>(std::ceil(*recipe->epochs()));

    train::Checkpoint run;  // what the new run's checkpoints record
    run.model = base.model;
    run.options = base.options;
    run.options.num_classes = data.train->num_classes();
    run.optimizer = layers::models::model_defaults(run.model).optimizer;
    if (recipe) run.recipe = recipe->text;
    layers::manual_seed(1);
    auto model = layers::models::make_model(run.model, run.options);
    const train::InitReport init = train::init_from_checkpoint(*model, base, argv[1]);
    std::printf("loaded %zu of %lld tensors from %s (%zu re-initialised)\n", init.loaded.size(),
                static_cast<long long>(init.model_tensors), argv[1], init.reinitialised.size());

    data::DataLoader loader(data.train, {.batch_size = 64, .shuffle = true, .seed = 1});
    const optim::Hyperparameters hp = optim::default_hyperparameters(run.optimizer);
    auto optimizer = optim::make_optimizer(
        run.optimizer, {{.params = model->parameters(), .lr = hp.lr, .weight_decay = hp.weight_decay}});
    optim::LrScheduler schedule(*optimizer, optim::Schedule::cosine(static_cast<double>(epochs)),
                                loader.batches_per_epoch());
    std::optional<recipes::Manager> manager;
    std::optional<train::RecipeCallback> callback;
    if (recipe) {
      manager.emplace(*recipe, *model, *optimizer, loader.batches_per_epoch());
      callback.emplace(*manager);
    }
    const bool recipe_sets_lr = recipe && recipe->sets_learning_rate();  // then the recipe alone sets it
    train::Trainer trainer(model, *optimizer, recipe_sets_lr ? nullptr : &schedule, loader,
                           data.test ? data.test : data.train,
                           {.epochs = epochs, .out_dir = argv[3], .checkpoint_template = run});
    if (callback) trainer.add_callback(&*callback);
    const train::Summary summary = trainer.fit();
    std::printf("fine-tuned: top-1 %.2f%%, sparsity %.2f\n", 100 * summary.epochs.back().val_top1,
                summary.epochs.back().sparsity);
  } catch (const Error& e) {
    std::fprintf(stderr, "finetune_resnet: %s\n", e.what());
    return 1;
  }
  return 0;
}
