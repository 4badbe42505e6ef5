// Fine-tune a ResNet from a checkpoint on another task: load the base weights
// by name, keep a fresh head when the number of classes differs, and train
// with the Trainer (metrics, checkpoints and progress included).
//
//   build/neurite train --model resnet20 --data fashion-mnist --epochs 2 --out base
//   build/examples/finetune_resnet base/checkpoint.h5 mnist-digits finetuned
#include <neurite/error.h>
#include <neurite/parallel.h>
#include <neurite/data/readers.h>
#include <neurite/layers/init.h>
#include <neurite/optim/schedule.h>
#include <neurite/train/trainer.h>

#include <cstdio>
#include <string>

using namespace neurite;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: finetune_resnet BASE_CHECKPOINT DATA_SPEC OUT_DIR [epochs]\n");
    return 2;
  }
  try {
    set_num_threads(0);
    const train::Checkpoint base = train::load_checkpoint(argv[1]);
    const data::DataSplits data = data::open_data(argv[2]);

    train::Checkpoint run;  // what the new run's checkpoints record
    run.model = base.model;
    run.options = base.options;
    run.options.num_classes = data.train->num_classes();
    run.optimizer = "sgd";
    layers::manual_seed(1);
    auto model = layers::models::make_model(run.model, run.options);
    layers::StateDict matching;
    const layers::StateDict own = model->state_dict();
    for (const auto& [name, tensor] : base.state)
      if (own.count(name) && own.at(name).shape() == tensor.shape()) matching.emplace(name, tensor);
    model->load_state_dict(matching, /*strict=*/false);
    std::printf("loaded %zu of %zu tensors from %s\n", matching.size(), own.size(), argv[1]);

    const int64_t epochs = argc > 4 ? std::stoll(argv[4]) : 2;
    data::DataLoader loader(data.train, {.batch_size = 64, .shuffle = true, .seed = 1});
    optim::Sgd sgd({{.params = model->parameters(), .lr = 0.02, .weight_decay = 5e-4}}, {.momentum = 0.9});
    optim::LrScheduler schedule(sgd, optim::Schedule::cosine(static_cast<double>(epochs)), loader.batches_per_epoch());
    train::Trainer trainer(model, sgd, &schedule, loader, data.test ? data.test : data.train,
                           {.epochs = epochs, .out_dir = argv[3], .checkpoint_template = run});
    const train::Summary summary = trainer.fit();
    std::printf("fine-tuned: top-1 %.2f%%\n", 100 * summary.epochs.back().val_top1);
  } catch (const Error& e) {
    std::fprintf(stderr, "finetune_resnet: %s\n", e.what());
    return 1;
  }
  return 0;
}
