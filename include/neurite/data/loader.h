// DataLoader: batches of a dataset in a seeded order, built ahead of use on
// oneTBB threads and delivered in order. An error while building a batch
// reaches the caller of next() with the sample index and its file.
//
//   data::DataLoader loader(train, {.batch_size = 128, .shuffle = true, .seed = 1});
//   auto epoch = loader.epoch(0);
//   while (auto batch = epoch.next()) train_step(batch->inputs, batch->targets);
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <optional>

#include "neurite/data/dataset.h"

namespace neurite::data {

struct Batch {
  Tensor inputs;   // (B, ...) float32 or int64
  Tensor targets;  // (B) int64 labels, or (B, ...) the examples' tensor targets stacked
  std::vector<Tensor> more_inputs;  // the examples' more_inputs, each stacked to (B, ...)

  // inputs, then more_inputs: what a model of several inputs is given.
  std::vector<Tensor> all_inputs() const;
};

// A per-example transform: `seed` is fixed for (loader seed, epoch, index), so
// random augmentations repeat exactly for the same run on any thread count.
using Transform = std::function<Tensor(const Tensor& input, uint64_t seed)>;

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  int64_t prefetch = 2;  // batches built ahead; 0 builds each on demand
  std::vector<Transform> transforms;
  // Data-parallel training: this process is shard `shard` of `shards` and
  // takes examples [n * shard / shards, n * (shard + 1) / shards) of each
  // batch of n (batch_size is the global batch; every shard sees the same
  // order, the order of one process). A last batch smaller than `shards`
  // leaves some shards an empty Batch (inputs undefined).
  int shard = 0, shards = 1;
  // The examples of epoch `epoch` in order, as indices into a data set of
  // `size` (they may repeat or leave some out; the same count every epoch).
  // Empty: every example, shuffled when `shuffle`.
  std::function<std::vector<int64_t>(int64_t size, int64_t epoch)> sampler;
  // Makes a batch of examples (after the transforms). Empty: inputs (and each
  // of more_inputs) stacked, targets the stacked tensor targets if the
  // examples have them, else the labels (int64).
  std::function<Batch(std::vector<Example>& examples)> collate;
};

class DataLoader {
 public:
  // Throws ValueError for a batch size < 1 or an empty dataset.
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);

  int64_t batches_per_epoch() const;
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }

  class Epoch {
   public:
    ~Epoch();
    Epoch(Epoch&&) noexcept;
    // The next batch, or nullopt at the end; rethrows a worker's error.
    std::optional<Batch> next();

   private:
    friend class DataLoader;
    Epoch(const DataLoader& loader, int64_t epoch, int64_t first_batch);
    void schedule(int64_t batch);
    const DataLoader* loader_;
    std::vector<int64_t> order_;
    int64_t epoch_, next_batch_ = 0, scheduled_ = 0;
    struct Workers;  // oneTBB, kept out of this header
    std::unique_ptr<Workers> workers_;
  };
  // The batches of epoch `epoch` (its order depends on seed and epoch only).
  // From batch `first_batch` on: an interrupted epoch resumed where it stopped.
  Epoch epoch(int64_t epoch, int64_t first_batch = 0) const;
  // Builds batch `batch` of an order directly (used by the workers).
  Batch make_batch(const std::vector<int64_t>& order, int64_t batch, int64_t epoch) const;

 private:
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
};

}  // namespace neurite::data
