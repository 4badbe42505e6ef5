// Trainer: the training loop of a classifier. Each epoch it trains on the
// loader's batches, evaluates (loss, top-1), appends a line to
// DIR/metrics.jsonl, writes DIR/checkpoint.h5 and plots DIR/curves.svg;
// DIR/summary.json at the end.
// A run resumes from its checkpoint and ends with the same weights as an
// uninterrupted one (same seed and thread count).
//
//   train::Trainer trainer(model, optimizer, /*scheduler=*/nullptr, loader, val, {.epochs = 5, .out_dir = "run"});
//   train::Summary s = trainer.fit();
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "neurite/data/loader.h"
#include "neurite/optim/schedule.h"
#include "neurite/train/checkpoint.h"

namespace neurite::train {

struct Evaluation {
  double loss = 0, top1 = 0;
  int64_t examples = 0;
};

// Cross-entropy loss and top-1 accuracy of `model` (in eval mode, no graph).
Evaluation evaluate(layers::UnaryModule& model, const data::Dataset& dataset, int64_t batch_size = 256);
// The same of any function from a batch of inputs to its logits (an inference engine's run).
Evaluation evaluate(const std::function<autograd::Tensor(const autograd::Tensor&)>& logits_of,
                    const data::Dataset& dataset, int64_t batch_size = 256);

// Hooks for what drives a run from outside the loop (recipes, pruning).
class Callback {
 public:
  virtual ~Callback() = default;
  // Before the optimizer step `step` (counted over the run), at fractional epoch `epoch`.
  virtual void before_step(double epoch, int64_t step) {}
};

struct TrainerOptions {
  int64_t epochs = 10;
  std::string out_dir;  // empty: no files
  double clip_grad_norm = 0;  // 0: off
  int64_t eval_batch_size = 256;
  // Progress: a line rewritten in place on a terminal, plain log lines otherwise.
  std::function<void(const std::string&)> log;  // default: stderr
  Checkpoint checkpoint_template;  // model name, options, optimizer name, recipe
  // How pruned layers pick kernels (neurite/kernels/policy.h); set on the model
  // when the trainer is made. autotune off makes a resumed run bit-exact.
  kernels::KernelPolicy kernels;
};

struct EpochMetrics {
  int64_t epoch = 0;
  double lr = 0, train_loss = 0, val_loss = 0, val_top1 = 0, seconds = 0, samples_per_sec = 0, sparsity = 0;
};

struct Summary {
  std::vector<EpochMetrics> epochs;
  double seconds = 0;
};

class Trainer {
 public:
  Trainer(std::shared_ptr<layers::UnaryModule> model, optim::Optimizer& optimizer, optim::LrScheduler* scheduler,
          const data::DataLoader& train, std::shared_ptr<const data::Dataset> val, TrainerOptions options);

  void add_callback(Callback* callback) { callbacks_.push_back(callback); }
  // Restores model, masks, optimizer, epoch, step and RNG from `checkpoint`.
  void resume(const Checkpoint& checkpoint);
  // Trains from the current epoch to options.epochs.
  Summary fit();
  int64_t epoch() const { return epoch_; }
  int64_t step() const { return step_; }

 private:
  double train_epoch();
  void save(const EpochMetrics& metrics);
  void plot_curves();
  void log(const std::string& line, bool transient = false);

  std::shared_ptr<layers::UnaryModule> model_;
  optim::Optimizer& optimizer_;
  optim::LrScheduler* scheduler_;
  const data::DataLoader& train_;
  std::shared_ptr<const data::Dataset> val_;
  TrainerOptions options_;
  std::vector<Callback*> callbacks_;
  int64_t epoch_ = 0, step_ = 0;
  bool terminal_;
  std::chrono::steady_clock::time_point last_progress_{};  // the last progress line's time
  double first_step_lr_ = 0;  // the learning rate of the current epoch's first step
  Summary summary_;
};


}  // namespace neurite::train
