#include "neurite/train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "neurite/error.h"
#include "neurite/files.h"
#include "neurite/pruning/pruning.h"
#include "neurite/layers/quantize.h"
#include "neurite/autograd/ops.h"
#include "neurite/layers/init.h"
#include "neurite/layers/layers.h"
#include "neurite/train/plot.h"

namespace neurite::train {

namespace fs = std::filesystem;
using autograd::Variable;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// "42s", "3m05s", "1h12m".
std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(std::lround(std::max(0.0, seconds)));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
}

// Correct predictions of logits (N, C) against targets (N).
// Top-1 hits of class scores against int64 labels; 0 for other targets (regression).
int64_t correct(const Tensor& logits, const Tensor& targets) {
  if (targets.dtype() != autograd::Dtype::i64 || logits.dim() != 2 || targets.dim() != 1) return 0;
  const int64_t n = logits.size(0), c = logits.size(1);
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data<float>() + i * c;
    hits += std::max_element(row, row + c) - row == targets.data<int64_t>()[i];
  }
  return hits;
}

std::vector<Variable> variables(const std::vector<autograd::Tensor>& tensors) {
  return {tensors.begin(), tensors.end()};
}

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},         {"lr", m.lr},           {"train_loss", m.train_loss},
          {"val_loss", m.val_loss},   {"val_top1", m.val_top1}, {"seconds", m.seconds},
          {"samples_per_sec", m.samples_per_sec}, {"sparsity", m.sparsity}, {"metrics", m.metrics}};
}
}  // namespace

Evaluation evaluate(const std::function<autograd::Tensor(const std::vector<autograd::Tensor>&)>& logits_of,
                    const data::Dataset& dataset, int64_t batch_size, const LossFn& loss,
                    const std::map<std::string, MetricFn>& metrics) {
  autograd::NoGradGuard no_grad;
  data::DataLoader loader(std::shared_ptr<const data::Dataset>(&dataset, [](const data::Dataset*) {}),
                          {.batch_size = batch_size, .shuffle = false});
  Evaluation out;
  double loss_sum = 0;
  int64_t hits = 0;
  auto epoch = loader.epoch(0);
  while (auto batch = epoch.next()) {
    const autograd::Tensor logits = logits_of(batch->all_inputs());
    const int64_t n = batch->targets.numel();
    const Variable l = loss ? loss(Variable(logits), batch->targets) : autograd::cross_entropy(Variable(logits), batch->targets);
    loss_sum += l.data().item() * static_cast<double>(n);
    hits += correct(logits, batch->targets);
    for (const auto& [name, metric] : metrics) out.metrics[name] += metric(logits, batch->targets) * static_cast<double>(n);
    out.examples += n;
  }
  const auto examples = static_cast<double>(out.examples);
  out.loss = loss_sum / examples;
  out.top1 = static_cast<double>(hits) / examples;
  for (auto& [name, total] : out.metrics) total /= examples;
  return out;
}

Evaluation evaluate(layers::UnaryModule& model, const data::Dataset& dataset, int64_t batch_size, const LossFn& loss,
                    const std::map<std::string, MetricFn>& metrics) {
  const bool was_training = model.is_training();
  model.eval();
  const Evaluation out = evaluate(
      [&](const std::vector<autograd::Tensor>& inputs) { return model.forward_inputs(variables(inputs)).data(); },
      dataset, batch_size, loss, metrics);
  model.train(was_training);
  return out;
}


Trainer::Trainer(std::shared_ptr<layers::UnaryModule> model, optim::Optimizer& optimizer,
                 optim::LrScheduler* scheduler, const data::DataLoader& train,
                 std::shared_ptr<const data::Dataset> val, TrainerOptions options)
    : model_(std::move(model)),
      optimizer_(optimizer),
      scheduler_(scheduler),
      train_(train),
      val_(std::move(val)),
      options_(std::move(options)),
      terminal_(isatty(STDERR_FILENO) != 0) {
  check<ValueError>(options_.epochs >= 1, "Trainer: epochs (was {}) must be at least 1", options_.epochs);
  if (distributed()) {
    const data::DataLoaderOptions& o = train_.options();
    check<ValueError>(o.shards == options_.world->size() && o.shard == options_.world->rank(),
                      "Trainer: rank {} of {} needs the loader's shard {} of {} (it has shard {} of {})",
                      options_.world->rank(), options_.world->size(), options_.world->rank(), options_.world->size(),
                      o.shard, o.shards);
    reducer_ = std::make_unique<dist::GradientReducer>(model_->named_parameters(), options_.world);
    // A synchronised batch norm sums across every rank in forward: a rank
    // without an example of a short last batch would leave the others waiting.
    bool synchronised = false;
    model_->apply([&](layers::Module& m) {
      if (auto* bn = dynamic_cast<layers::BatchNorm2d*>(&m)) synchronised = synchronised || bn->synchronized();
    });
    const int64_t n = o.sampler ? static_cast<int64_t>(o.sampler(train_.dataset().size(), 0).size()) : train_.dataset().size();
    const int64_t last = n % o.batch_size;
    check<ValueError>(!synchronised || o.drop_last || last == 0 || last >= o.shards,
                      "Trainer: the last batch of {} examples leaves some of the {} ranks none, which synchronised batch "
                      "norms cannot go without: drop it (drop_last) or change the batch size",
                      last, o.shards);
  }
  if (!options_.out_dir.empty() && lead()) fs::create_directories(options_.out_dir);
  model_->set_kernel_policy(options_.kernels);
}

Trainer::~Trainer() = default;

void Trainer::log(const std::string& line, bool transient) {
  if (!lead()) return;
  if (options_.log) {
    if (!transient) options_.log(line);
    return;
  }
  if (transient && !terminal_) return;
  fmt::print(stderr, "{}{}{}", terminal_ ? "\r\033[K" : "", line, transient ? "" : "\n");
  std::fflush(stderr);
}

void Trainer::resume(const Checkpoint& c) {
  layers::restore_quantizers(*model_, c.state);
  model_->load_state_dict(c.state);
  for (const auto& [name, p] : model_->named_parameters())
    if (auto m = c.masks.find(name); m != c.masks.end()) p->set_mask(m->second.clone());
  optimizer_.load_state_dict(c.optimizer_state);
  epoch_ = c.epoch;
  step_ = c.step;
  batch_ = c.batch;
  epoch_loss_ = c.epoch_loss;
  epoch_examples_ = c.epoch_examples;
  if (scheduler_ != nullptr) scheduler_->set_steps(step_);
  layers::set_generator_state(c.rng_state);
  if (batch_ > 0) log(fmt::format("resumed within epoch {}, after batch {} (step {})", epoch_ + 1, batch_, step_));
  else log(fmt::format("resumed after epoch {} (step {})", epoch_, step_));
}

double Trainer::train_epoch() {
  model_->train();
  const int64_t batches = train_.batches_per_epoch();
  double& loss_sum = epoch_loss_;
  int64_t& seen = epoch_examples_;
  int64_t& b = batch_;
  const int64_t first = b, seen_before = seen;
  const auto start = Clock::now();
  auto epoch = train_.epoch(epoch_, b);
  while (auto batch = epoch.next()) {
    const double epoch_now = static_cast<double>(epoch_) + static_cast<double>(b) / static_cast<double>(batches);
    for (Callback* c : callbacks_) c->before_step(epoch_now, step_);
    if (b == first && !optimizer_.param_groups().empty()) first_step_lr_ = optimizer_.param_groups()[0].lr;
    // Data-parallel, a rank may hold none of a short last batch: it still takes part in the exchanges.
    const bool has_examples = batch->inputs.defined();
    const auto examples = static_cast<double>(has_examples ? batch->targets.numel() : 0);
    if (distributed()) dist::broadcast_buffers(*model_, *options_.world);
    Variable loss;
    if (has_examples) {
      const Variable outputs = model_->forward_inputs(variables(batch->all_inputs()));
      loss = options_.loss ? options_.loss(outputs, batch->targets) : autograd::cross_entropy(outputs, batch->targets);
    }
    // The interrupt flag travels with the loss sums: every rank learns of it at the same step.
    std::array<double, 3> sums{examples, has_examples ? examples * loss.data().item() : 0.0,
                               options_.interrupt != nullptr && options_.interrupt->load() ? 1.0 : 0.0};
    if (distributed()) options_.world->sum(sums);
    const auto [batch_examples, batch_loss, interrupt] = sums;
    const double value = batch_loss / batch_examples;  // the global batch's mean loss, the same on every rank
    check<ValueError>(std::isfinite(value), "training diverged: loss is {} at epoch {} step {}", value, epoch_ + 1,
                      step_ + 1);
    optimizer_.zero_grad();
    if (distributed()) {
      // Backward of this rank's share of the global mean loss: every gradient,
      // the sums synchronised batch norms add across the ranks included, is
      // then a gradient of the global loss, and the exchange adds them up.
      reducer_->begin_step(1.0);
      if (has_examples) loss.backward(Tensor::full(loss.shape(), static_cast<float>(examples / batch_examples)),
                                      reducer_->leaf_ready());
      reducer_->finish_step();
    } else {
      loss.backward();
    }
    if (options_.clip_grad_norm > 0) {
      std::function<double(double)> rank_0_norm;
      if (distributed())
        rank_0_norm = [this](double norm) {
          options_.world->broadcast(&norm, sizeof norm, 0);
          return norm;
        };
      optim::clip_grad_norm(model_->parameters(), options_.clip_grad_norm, rank_0_norm);
    }
    optimizer_.step();
    ++step_;
    if (scheduler_ != nullptr) scheduler_->step();
    loss_sum += batch_loss;
    seen += static_cast<int64_t>(batch_examples);
    for (Callback* c : callbacks_) c->after_step(epoch_now, step_ - 1, value);
    ++b;
    if (interrupt > 0) {
      interrupted_ = true;
      if (b < batches) return 0;  // fit() writes the checkpoint of this moment
    }
    // Progress: redrawn a few times a second on a terminal; elsewhere (a log
    // file) a plain line every half minute, the epoch's own line closing it.
    const auto now = Clock::now();
    const bool due = now - last_progress_ >= (terminal_ ? std::chrono::milliseconds(250) : std::chrono::seconds(30));
    if ((terminal_ && (due || b == batches)) || (!terminal_ && due && b < batches)) {
      last_progress_ = now;
      const double elapsed = seconds_since(start), per_batch = elapsed / static_cast<double>(b - first);
      const double left = per_batch * static_cast<double>(batches - b) +
                          per_batch * static_cast<double>(batches * (options_.epochs - epoch_ - 1));
      const double done = (static_cast<double>(epoch_) + static_cast<double>(b) / static_cast<double>(batches)) /
                          static_cast<double>(options_.epochs);
      log(fmt::format("epoch {}/{}  batch {}/{}  {:.0f}%  loss {:.4f}  {:.0f} samples/s  ETA {}", epoch_ + 1,
                      options_.epochs, b, batches, 100 * done, loss_sum / static_cast<double>(seen),
                      static_cast<double>(seen - seen_before) / elapsed, duration_text(left)),
          terminal_);
    }
  }
  // The run ends here: what the recipe planned for this last moment (the final
  // update of a ramp that ends with the run) happens before the last
  // evaluation and checkpoint, though no step follows it.
  if (epoch_ + 1 == options_.epochs)
    for (Callback* c : callbacks_) c->before_step(static_cast<double>(options_.epochs), step_);
  const double mean = loss_sum / static_cast<double>(seen);
  b = 0, seen = 0, loss_sum = 0;  // the next epoch starts afresh
  return mean;
}

void Trainer::save(const EpochMetrics& m) {
  if (options_.out_dir.empty() || !lead()) return;
  // metrics.jsonl first, rewritten whole and atomically (a full disk never
  // leaves half a line), keeping only the lines of earlier epochs: a run
  // killed after this write and before the checkpoint's does this epoch
  // again on resume, and its line once.
  const fs::path metrics = fs::path(options_.out_dir) / "metrics.jsonl";
  std::string lines;
  if (std::ifstream earlier(metrics); earlier)
    for (std::string line; std::getline(earlier, line);)
      if (const auto j = nlohmann::json::parse(line, nullptr, false); j.is_object() && j.value("epoch", m.epoch) < m.epoch)
        lines += line + "\n";
  lines += to_json(m).dump() + "\n";
  write_file_atomically(metrics.string(), lines);
  save_checkpoint_now();
  plot_curves();
}

void Trainer::save_checkpoint_now() {
  if (options_.out_dir.empty() || !lead()) return;
  Checkpoint c = options_.checkpoint_template;
  capture_model(*model_, c);
  c.optimizer_state = optimizer_.state_dict();
  c.epoch = epoch_;
  c.step = step_;
  c.rng_state = layers::generator_state();
  c.batch = batch_, c.epoch_loss = epoch_loss_, c.epoch_examples = epoch_examples_;
  save_checkpoint((fs::path(options_.out_dir) / "checkpoint.h5").string(), c);
  for (Callback* cb : callbacks_) cb->checkpoint_saved((fs::path(options_.out_dir) / "checkpoint.h5").string());
}

// DIR/curves.svg: losses and top-1 per epoch, from metrics.jsonl (so a resumed
// run plots its whole history).
void Trainer::plot_curves() {
  Series train_loss{"train loss", {}, {}}, val_loss{"val loss", {}, {}}, top1{"val top-1 %", {}, {}},
      lr{"learning rate", {}, {}}, sparsity{"sparsity %", {}, {}};
  std::ifstream in(fs::path(options_.out_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    const double e = j.value("epoch", 0.0);
    for (auto [series, key, scale] : {std::tuple{&train_loss, "train_loss", 1.0}, {&val_loss, "val_loss", 1.0},
                                      {&top1, "val_top1", 100.0}, {&lr, "lr", 1.0}, {&sparsity, "sparsity", 100.0}}) {
      series->x.push_back(e);
      series->y.push_back(scale * j.value(key, 0.0));
    }
  }
  const std::string title = options_.checkpoint_template.model;
  write_svg({LineChart{title + ": loss", "epoch", "cross-entropy", {train_loss, val_loss}},
             LineChart{title + ": validation top-1", "epoch", "%", {top1}},
             LineChart{title + ": learning rate", "epoch", "rate", {lr}},
             LineChart{title + ": sparsity of the prunable weights", "epoch", "%", {sparsity}}},
            (fs::path(options_.out_dir) / "curves.svg").string());
  // DIR/sparsity.svg once anything is pruned: the sparsity of each weight tensor.
  BarChart bars{title + ": sparsity per layer", "fraction of zero weights", {}, {}, 1.0};
  bool pruned = false;
  const std::vector<std::string> weights = pruning::linear_conv_and_attention_weights(*model_);
  for (const auto& [name, p] : model_->named_parameters()) {
    if (std::find(weights.begin(), weights.end(), name) == weights.end()) continue;
    pruned = pruned || p->has_mask();
    bars.labels.push_back(name);
    bars.values.push_back(pruning::sparsity_of(p->value().data()));
  }
  if (pruned) write_svg(bars, (fs::path(options_.out_dir) / "sparsity.svg").string());
}

// The epoch's keep_best figure (or val_loss), as higher-is-better: whether it
// is the best so far, then best.h5 is written.
bool Trainer::track_best(const EpochMetrics& m) {
  if (!val_ || (options_.keep_best.empty() && options_.early_stopping_patience == 0)) return false;
  const std::string& key = options_.keep_best.empty() ? std::string("val_loss") : options_.keep_best;
  double figure = 0;
  if (key == "val_loss") figure = -m.val_loss;
  else if (key == "val_top1") figure = m.val_top1;
  else {
    const auto it = m.metrics.find(key);
    check<ValueError>(it != m.metrics.end(), "Trainer: keep_best '{}' is neither val_loss, val_top1 nor a metric", key);
    figure = it->second;
  }
  if (best_ && figure <= *best_) {
    ++epochs_since_best_;
    return false;
  }
  best_ = figure;
  epochs_since_best_ = 0;
  if (!options_.keep_best.empty() && !options_.out_dir.empty() && lead()) {
    const std::string path = (fs::path(options_.out_dir) / "best.h5").string();
    fs::copy_file(fs::path(options_.out_dir) / "checkpoint.h5", path, fs::copy_options::overwrite_existing);
    for (Callback* c : callbacks_) c->checkpoint_saved(path);
  }
  return true;
}

// The validation data's loss, top-1 and metrics; data-parallel, each rank
// evaluates a contiguous share and the sums are added up.
Evaluation Trainer::validate() {
  if (!distributed())
    return evaluate(*model_, *val_, options_.eval_batch_size, options_.loss, options_.metrics);
  const int64_t n = val_->size(), ranks = options_.world->size(), rank = options_.world->rank();
  std::vector<int64_t> share;
  for (int64_t i = n * rank / ranks; i < n * (rank + 1) / ranks; ++i) share.push_back(i);
  Evaluation mine;
  if (!share.empty())
    mine = evaluate(*model_, data::Subset(val_, share), options_.eval_batch_size, options_.loss, options_.metrics);
  const auto count = static_cast<double>(mine.examples);
  std::vector<double> sums = {count, mine.loss * count, mine.top1 * count};
  for (const auto& [name, metric] : options_.metrics) sums.push_back(mine.metrics[name] * count);
  options_.world->sum(std::span<double>(sums));
  Evaluation all{.loss = sums[1] / sums[0], .top1 = sums[2] / sums[0], .examples = static_cast<int64_t>(sums[0])};
  size_t k = 3;
  for (const auto& [name, metric] : options_.metrics) all.metrics[name] = sums[k++] / sums[0];
  return all;
}

Summary Trainer::fit() {
  const auto start = Clock::now();
  if (!options_.out_dir.empty() && epoch_ == 0 && lead())
    write_file_atomically((fs::path(options_.out_dir) / "metrics.jsonl").string(), "");
  // Every rank starts from rank 0's weights, masks and buffers (after --init or a resume too).
  if (distributed()) dist::broadcast_module(*model_, *options_.world);
  while (epoch_ < options_.epochs) {
    const auto epoch_start = Clock::now();
    EpochMetrics m;
    m.train_loss = train_epoch();
    if (interrupted_ && batch_ > 0) {  // mid-epoch: this moment's checkpoint, no epoch line
      if (distributed()) dist::broadcast_buffers(*model_, *options_.world);
      save_checkpoint_now();
      break;
    }
    // The epoch's last step moved each rank's batch-norm statistics by its own
    // share: validation and the checkpoint take rank 0's, as the next step would.
    if (distributed()) dist::broadcast_buffers(*model_, *options_.world);
    m.lr = first_step_lr_;  // the rate of the epoch's first step, a recipe's setting included
    const double train_seconds = seconds_since(epoch_start);
    m.samples_per_sec = static_cast<double>(train_.dataset().size()) / train_seconds;
    if (val_) {
      const Evaluation e = validate();
      m.val_loss = e.loss;
      m.val_top1 = e.top1;
      m.metrics = e.metrics;
      for (Callback* c : callbacks_) c->evaluated(e);
    }
    ++epoch_;
    m.epoch = epoch_;
    m.seconds = seconds_since(epoch_start);
    m.sparsity = pruning::total_sparsity(*model_);
    save(m);
    const bool improved = track_best(m);
    summary_.epochs.push_back(m);
    std::string extra;
    for (const auto& [name, v] : m.metrics) extra += fmt::format("  {} {:.4g}", name, v);
    log(fmt::format("epoch {}/{}  lr {:.4g}  train loss {:.4f}  val loss {:.4f}  val top-1 {:.2f}%{}  sparsity {:.1f}%  "
                    "{:.1f}s ({:.0f} samples/s){}",
                    epoch_, options_.epochs, m.lr, m.train_loss, m.val_loss, 100 * m.val_top1, extra, 100 * m.sparsity,
                    m.seconds, m.samples_per_sec, improved && !options_.keep_best.empty() ? "  best" : ""));
    for (Callback* c : callbacks_) c->epoch_end(m);
    if (options_.early_stopping_patience > 0 && epochs_since_best_ >= options_.early_stopping_patience) {
      log(fmt::format("early stop: no better {} for {} epochs", options_.keep_best.empty() ? "val_loss" : options_.keep_best,
                      epochs_since_best_));
      break;
    }
    if (stop_ || interrupted_) break;
  }
  summary_.seconds = seconds_since(start);
  summary_.interrupted = interrupted_;
  summary_.interrupted_at = {epoch_, batch_};
  if (!options_.out_dir.empty() && !summary_.epochs.empty() && lead()) {
    const EpochMetrics& last = summary_.epochs.back();
    nlohmann::json s = {{"model", options_.checkpoint_template.model},
                        {"epochs", epoch_},
                        {"steps", step_},
                        {"val_top1", last.val_top1},
                        {"val_loss", last.val_loss},
                        {"train_loss", last.train_loss},
                        {"sparsity", last.sparsity},
                        {"parameters", model_->parameter_count()},
                        {"seconds", summary_.seconds}};
    write_file_atomically((fs::path(options_.out_dir) / "summary.json").string(), s.dump(2) + "\n");
  }
  return summary_;
}

}  // namespace neurite::train
