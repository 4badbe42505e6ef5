#include "neurite/data/loader.h"

#include <fmt/format.h>
#include <tbb/task_group.h>

#include <cstring>
#include <deque>
#include <numeric>

#include "neurite/autograd/random.h"
#include "neurite/error.h"

namespace neurite::data {

using autograd::to_string;

struct DataLoader::Epoch::Workers {
  tbb::task_group group;
  std::deque<std::future<Batch>> pending;  // in batch order
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  check<ValueError>(options_.batch_size >= 1, "DataLoader: batch size (was {}) must be at least 1", options_.batch_size);
  check<ValueError>(dataset_->size() > 0, "DataLoader: the dataset is empty");
  check<ValueError>(options_.shards >= 1 && options_.shard >= 0 && options_.shard < options_.shards,
                    "DataLoader: shard {} of {} does not exist", options_.shard, options_.shards);
  check<ValueError>(options_.batch_size >= options_.shards,
                    "DataLoader: a batch of {} cannot be shared by {} processes (give each at least one example)",
                    options_.batch_size, options_.shards);
  check<ValueError>(!options_.drop_last || options_.batch_size <= dataset_->size(),
                    "DataLoader: batch size (was {}) must not be larger than the dataset size (was {}) with drop_last",
                    options_.batch_size, dataset_->size());
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = options_.sampler ? static_cast<int64_t>(options_.sampler(dataset_->size(), 0).size())
                                     : dataset_->size();
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

DataLoader::Epoch DataLoader::epoch(int64_t epoch, int64_t first_batch) const { return Epoch(*this, epoch, first_batch); }

namespace {

// Tensors of one shape stacked along a new first axis.
Tensor stack(const std::vector<const Tensor*>& parts, const char* what) {
  Shape shape = parts[0]->shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = Tensor::empty(shape, parts[0]->dtype());
  for (size_t i = 0; i < parts.size(); ++i) {
    check<ShapeError>(parts[i]->shape() == parts[0]->shape() && parts[i]->dtype() == parts[0]->dtype(),
                      "{} {} is {}, the batch's first is {}", what, i, to_string(parts[i]->shape()),
                      to_string(parts[0]->shape()));
    std::memcpy(out.bytes() + i * parts[0]->nbytes(), parts[i]->bytes(), parts[0]->nbytes());
  }
  return out;
}

Batch stack_examples(std::vector<Example>& examples) {
  Batch out;
  const size_t more = examples[0].more_inputs.size();
  std::vector<const Tensor*> inputs, targets;
  std::vector<std::vector<const Tensor*>> more_inputs(more);
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& e = examples[i];
    inputs.push_back(&e.input);
    if (e.target.defined()) targets.push_back(&e.target);
    check<ShapeError>(e.more_inputs.size() == more, "example {} has {} inputs, the batch's first {}", i,
                      e.more_inputs.size() + 1, more + 1);
    for (size_t k = 0; k < more; ++k) more_inputs[k].push_back(&e.more_inputs[k]);
  }
  out.inputs = stack(inputs, "example");
  for (size_t k = 0; k < more; ++k)
    out.more_inputs.push_back(stack(more_inputs[k], fmt::format("input {} of example", k + 2).c_str()));
  if (!targets.empty()) {
    check<ShapeError>(targets.size() == examples.size(), "some examples of the batch have tensor targets, some labels");
    out.targets = stack(targets, "target of example");
    return out;
  }
  out.targets = Tensor::empty({static_cast<int64_t>(examples.size())}, autograd::Dtype::i64);
  for (size_t i = 0; i < examples.size(); ++i) out.targets.data<int64_t>()[i] = examples[i].label;
  return out;
}

}  // namespace

std::vector<Tensor> Batch::all_inputs() const {
  std::vector<Tensor> all{inputs};
  all.insert(all.end(), more_inputs.begin(), more_inputs.end());
  return all;
}

Batch DataLoader::make_batch(const std::vector<int64_t>& order, int64_t batch, int64_t epoch) const {
  const int64_t global_begin = batch * options_.batch_size;
  const int64_t n = std::min<int64_t>(options_.batch_size, static_cast<int64_t>(order.size()) - global_begin);
  const int64_t begin = global_begin + n * options_.shard / options_.shards;
  const int64_t end = global_begin + n * (options_.shard + 1) / options_.shards;
  if (begin == end) return {};  // a last batch smaller than the shards: none for this one
  std::vector<Example> examples;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t index = order[static_cast<size_t>(i)];
    try {
      check<ValueError>(index >= 0 && index < dataset_->size(), "the sampler gave index {} of a data set of {}", index,
                        dataset_->size());
      Example e = dataset_->get(index);
      const uint64_t seed = autograd::detail::random_bits(options_.seed ^ (static_cast<uint64_t>(epoch) << 40),
                                                          static_cast<uint64_t>(index));
      for (size_t t = 0; t < options_.transforms.size(); ++t) e.input = options_.transforms[t](e.input, seed + t);
      examples.push_back(std::move(e));
    } catch (const std::exception& e) {
      throw IoError(fmt::format("data: sample {} ({}): {}", index,
                                index >= 0 && index < dataset_->size() ? dataset_->source(index) : "?", e.what()));
    }
  }
  try {
    return options_.collate ? options_.collate(examples) : stack_examples(examples);
  } catch (const std::exception& e) {
    throw IoError(fmt::format("data: batch {} of epoch {}: {}", batch, epoch, e.what()));
  }
}

DataLoader::Epoch::Epoch(const DataLoader& loader, int64_t epoch, int64_t first_batch)
    : loader_(&loader), epoch_(epoch), next_batch_(first_batch), scheduled_(first_batch),
      workers_(std::make_unique<Workers>()) {
  check<ValueError>(first_batch >= 0 && first_batch <= loader.batches_per_epoch(),
                    "DataLoader: epoch {} has {} batches, not a batch {} to start from", epoch, loader.batches_per_epoch(),
                    first_batch);
  if (loader.options_.sampler) {
    order_ = loader.options_.sampler(loader.dataset_->size(), epoch);
    return;
  }
  order_.resize(static_cast<size_t>(loader.dataset_->size()));
  std::iota(order_.begin(), order_.end(), 0);
  if (loader.options_.shuffle) {
    const uint64_t seed = autograd::detail::mix64(loader.options_.seed) + static_cast<uint64_t>(epoch);
    for (size_t i = order_.size(); i > 1; --i)
      std::swap(order_[i - 1], order_[autograd::detail::random_bits(seed, i) % i]);
  }
}

DataLoader::Epoch::Epoch(Epoch&&) noexcept = default;

DataLoader::Epoch::~Epoch() {
  if (workers_) workers_->group.wait();  // the tasks reference this epoch's order
}

void DataLoader::Epoch::schedule(int64_t batch) {
  auto promise = std::make_shared<std::promise<Batch>>();
  workers_->pending.push_back(promise->get_future());
  workers_->group.run([this, promise, batch] {
    try {
      promise->set_value(loader_->make_batch(order_, batch, epoch_));
    } catch (...) {
      promise->set_exception(std::current_exception());
    }
  });
}

std::optional<Batch> DataLoader::Epoch::next() {
  const int64_t total = loader_->batches_per_epoch();
  if (next_batch_ >= total) return std::nullopt;
  if (loader_->options_.prefetch <= 0) return loader_->make_batch(order_, next_batch_++, epoch_);
  while (scheduled_ < total && scheduled_ <= next_batch_ + loader_->options_.prefetch) schedule(scheduled_++);
  std::future<Batch>& front = workers_->pending.front();
  // With one thread oneTBB has no worker to run the tasks: run them here.
  if (front.wait_for(std::chrono::seconds(0)) != std::future_status::ready) workers_->group.wait();
  Batch batch = front.get();
  workers_->pending.pop_front();
  ++next_batch_;
  return batch;
}

}  // namespace neurite::data
