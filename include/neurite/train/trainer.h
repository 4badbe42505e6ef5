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

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "neurite/data/loader.h"
#include "neurite/optim/schedule.h"
#include "neurite/dist/dist.h"
#include "neurite/train/checkpoint.h"

namespace neurite::train {

struct Evaluation {
  double loss = 0, top1 = 0;
  int64_t examples = 0;
  std::map<std::string, double> metrics;  // TrainerOptions::metrics, averaged over the examples
};

// A training loss: the model's outputs and the batch's targets to a scalar.
using LossFn = std::function<autograd::Variable(const autograd::Variable& outputs, const autograd::Tensor& targets)>;
// A metric of a batch, averaged over a data set's examples (weighted by batch size).
using MetricFn = std::function<double(const autograd::Tensor& outputs, const autograd::Tensor& targets)>;

// The loss (cross-entropy unless given), top-1 accuracy and `metrics` of
// `model` (in eval mode, no graph).
Evaluation evaluate(layers::UnaryModule& model, const data::Dataset& dataset, int64_t batch_size = 256,
                    const LossFn& loss = {}, const std::map<std::string, MetricFn>& metrics = {});
// The same of any function from a batch's inputs (Batch::all_inputs) to its
// logits (an inference engine's run).
Evaluation evaluate(const std::function<autograd::Tensor(const std::vector<autograd::Tensor>&)>& logits_of,
                    const data::Dataset& dataset, int64_t batch_size = 256, const LossFn& loss = {},
                    const std::map<std::string, MetricFn>& metrics = {});

struct EpochMetrics;

// Hooks into the loop, for what drives a run from outside (recipes, pruning)
// and what watches it (logging, custom checkpoints). Trainer::stop() ends the
// run after the current epoch.
class Callback {
 public:
  virtual ~Callback() = default;
  // Before the optimizer step `step` (counted over the run), at fractional epoch `epoch`.
  virtual void before_step(double epoch, int64_t step) {}
  // After that step, with the batch's loss.
  virtual void after_step(double epoch, int64_t step, double loss) {}
  // After each validation, before the epoch's checkpoint.
  virtual void evaluated(const Evaluation& validation) {}
  // After a checkpoint is written (the epoch's, or best.h5), with its path.
  virtual void checkpoint_saved(const std::string& path) {}
  // At the end of each epoch, with its metrics as metrics.jsonl has them.
  virtual void epoch_end(const EpochMetrics& metrics) {}
};

struct TrainerOptions {
  int64_t epochs = 10;
  std::string out_dir;  // empty: no files
  double clip_grad_norm = 0;  // 0: off
  int64_t eval_batch_size = 256;
  LossFn loss;  // empty: cross-entropy of logits and int64 labels
  std::map<std::string, MetricFn> metrics;  // computed on the validation data each epoch, beside loss and top-1
  // Keep the best epoch's checkpoint as out_dir/best.h5, by this validation
  // figure: "val_loss" (lower is better), "val_top1" or a metric's name (higher
  // is better); empty: off.
  std::string keep_best;
  // Stop when keep_best (or val_loss) has not improved for this many epochs; 0: never.
  int64_t early_stopping_patience = 0;
  // Progress: a line rewritten in place on a terminal, plain log lines otherwise.
  std::function<void(const std::string&)> log;  // default: stderr
  Checkpoint checkpoint_template;  // model name, options, optimizer name, recipe
  // How pruned layers pick kernels (neurite/kernels/policy.h); set on the model
  // when the trainer is made. autotune off makes a resumed run bit-exact.
  kernels::KernelPolicy kernels;
  // Data-parallel training (neurite/dist/dist.h): the ranks, each running
  // this Trainer on its shard of every batch (the loader's shard and shards
  // must be the rank and the size). Parameters start from rank 0's, gradients
  // are averaged, batch norm's buffers follow rank 0's, validation is shared
  // out and summed; rank 0 alone logs and writes files. Empty or one rank:
  // this process alone.
  std::shared_ptr<const dist::Communicator> world;
  // Set (by a SIGINT or SIGTERM handler) to stop: the step under way is
  // finished, a checkpoint of that moment is written (the epoch's place in
  // it, so that a resume goes on from the next batch) and fit() returns with
  // Summary::interrupted. Data-parallel, a flag set on any rank stops all
  // after the same step.
  const std::atomic<bool>* interrupt = nullptr;
};

struct EpochMetrics {
  int64_t epoch = 0;
  double lr = 0, train_loss = 0, val_loss = 0, val_top1 = 0, seconds = 0, samples_per_sec = 0, sparsity = 0;
  std::map<std::string, double> metrics;  // TrainerOptions::metrics on the validation data
};

struct Summary {
  std::vector<EpochMetrics> epochs;
  double seconds = 0;
  bool interrupted = false;  // by TrainerOptions::interrupt, within epoch `interrupted_at.first` + 1
  std::pair<int64_t, int64_t> interrupted_at{};  // epochs done, batches of the next done
};

class Trainer {
 public:
  Trainer(std::shared_ptr<layers::UnaryModule> model, optim::Optimizer& optimizer, optim::LrScheduler* scheduler,
          const data::DataLoader& train, std::shared_ptr<const data::Dataset> val, TrainerOptions options);
  ~Trainer();

  void add_callback(Callback* callback) { callbacks_.push_back(callback); }
  // Restores model, masks, optimizer, epoch, step and RNG from `checkpoint`,
  // and an interrupted epoch's place.
  void resume(const Checkpoint& checkpoint);
  // Trains from the current epoch to options.epochs (or an early stop).
  Summary fit();
  // Ends the run after the current epoch (from a callback).
  void stop() { stop_ = true; }
  int64_t epoch() const { return epoch_; }
  int64_t step() const { return step_; }

 private:
  double train_epoch();
  bool track_best(const EpochMetrics& metrics);
  void save(const EpochMetrics& metrics);
  void save_checkpoint_now();
  void plot_curves();
  void log(const std::string& line, bool transient = false);

  bool distributed() const { return options_.world != nullptr && options_.world->size() > 1; }
  bool lead() const { return options_.world == nullptr || options_.world->rank() == 0; }  // logs and writes files
  Evaluation validate();

  std::shared_ptr<layers::UnaryModule> model_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  optim::Optimizer& optimizer_;
  optim::LrScheduler* scheduler_;
  const data::DataLoader& train_;
  std::shared_ptr<const data::Dataset> val_;
  TrainerOptions options_;
  std::vector<Callback*> callbacks_;
  int64_t epoch_ = 0, step_ = 0;
  // Within the current epoch: batches done, and their loss sum and examples
  // (nonzero at a checkpoint only when the run was interrupted).
  int64_t batch_ = 0, epoch_examples_ = 0;
  double epoch_loss_ = 0;
  bool interrupted_ = false;
  bool terminal_;
  std::chrono::steady_clock::time_point last_progress_{};  // the last progress line's time
  double first_step_lr_ = 0;  // the learning rate of the current epoch's first step
  bool stop_ = false;
  std::optional<double> best_;  // the best keep_best (or val_loss) figure so far, higher-is-better signed
  int64_t epochs_since_best_ = 0;
  Summary summary_;
};


}  // namespace neurite::train
