// neurite/dist/dist.h — data-parallel training across processes and
// machines, on MPI (Open MPI; `mpirun` starts the processes, shared memory
// within a machine, TCP between machines).
//
// Every process (rank) holds the whole model and trains on its share of each
// global batch; after backward the gradients are averaged across the ranks,
// so every rank applies the same update and keeps the same weights. The
// Trainer does all of it when TrainerOptions::world has more than one rank;
// a loop of one's own does it with these pieces:
//
//   auto world = dist::Communicator::world();   // rank and size from mpirun; one rank without it
//   dist::broadcast_module(*model, *world);     // every rank starts from rank 0's weights and masks
//   dist::GradientReducer reducer(model->named_parameters(), world);
//   loader options: .shard = world->rank(), .shards = world->size()   // this rank's share of each batch
//   for each batch:
//     Variable loss = cross_entropy(model->forward(x), y);
//     const auto [global_examples, global_loss] = world->sum(local_examples, local_examples * loss.item())
//     optimizer.zero_grad();
//     reducer.begin_step();
//     const float share = local_examples / global_examples;   // this rank's part of the global mean loss
//     loss.backward(Tensor::full(loss.shape(), share), reducer.leaf_ready());   // buckets leave during backward
//     reducer.finish_step();                                   // gradients: the global batch's mean
//     optimizer.step();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "neurite/layers/module.h"

namespace neurite::dist {

class Communicator {
 public:
  // The processes mpirun started (MPI initialised on the first call, and
  // finalised at exit), or a world of this one process, without MPI, when the
  // program was not started by mpirun (or another MPI launcher).
  static std::shared_ptr<Communicator> world();
  // Whether this process was started by an MPI launcher (without starting MPI).
  static bool launched_by_mpi();

  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Element-wise sums over the ranks, in place; every rank gets bitwise the
  // same result (each element is summed on one rank, in rank order, and sent to the rest).
  virtual void sum(std::span<double> values) const = 0;
  virtual void sum(std::span<float> values) const = 0;
  // Rank `root`'s bytes to every rank.
  virtual void broadcast(void* data, size_t bytes, int root = 0) const = 0;
  virtual void barrier() const = 0;
  // What an error on one rank does: prints "neurite: rank R: message" and
  // ends every rank's process with `code`, so that none waits forever for it.
  [[noreturn]] virtual void abort(const std::string& message, int code) const = 0;

  // Two sums in one exchange (the step's examples and loss).
  std::pair<double, double> sum(double a, double b) const;
};

// Every parameter, buffer and mask of `model` set to rank `root`'s (masks
// come and go with it: a rank without rank 0's mask takes it).
void broadcast_module(layers::Module& model, const Communicator& world, int root = 0);
// The buffers alone (batch norm's running statistics), as DDP does before
// each forward: the ranks' per-batch statistics never drift apart.
void broadcast_buffers(layers::Module& model, const Communicator& world, int root = 0);

// Synchronised batch norm (PyTorch's SyncBatchNorm): every BatchNorm2d of
// `model` normalises with the statistics of the whole global batch, summed
// across the ranks in forward and backward. Returns how many there were (0:
// none, the model trains as it would). Every rank must then hold examples of
// every batch.
int64_t synchronize_batch_norms(layers::Module& model, std::shared_ptr<const Communicator> world);

struct ReducerOptions {
  // Gradient bytes per bucket: a bucket's exchange starts as soon as its
  // gradients are final, while backward computes the next.
  int64_t bucket_bytes = int64_t{1} << 20;
};

// What one step exchanged.
struct StepTraffic {
  int64_t values = 0;       // gradient values this rank contributed (kept values only for pruned weights)
  int64_t bytes_sent = 0;   // bytes this rank sent
  double wait_seconds = 0;  // time finish_step() waited for the exchange to end
};

// Averages the gradients of `params` over the ranks, in buckets of a fixed
// order that start while backward is still running. A pruned weight sends
// only its kept values (its mask is the same on every rank: that is
// checked, by a checksum, whenever a mask changes, and a mismatch is an error
// naming the parameter). The kept values go in the same order whether a rank
// trains the weight dense and masked or in its sparse form, so each rank's
// kernels may be its own choice.
class GradientReducer {
 public:
  GradientReducer(std::vector<std::pair<std::string, layers::ParameterPtr>> params,
                  std::shared_ptr<const Communicator> world, ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before backward, after forward (a layer may switch a weight to its sparse
  // form in forward). Each rank's gradient is multiplied by `weight` before
  // the sum: 1 when backward started from the rank's share of the global loss
  // (as above, and as synchronised batch norms need), or the share itself
  // (local / global examples) after a backward of the local mean loss.
  void begin_step(double weight = 1.0);
  // Pass to Variable::backward: each gradient joins its bucket as soon as it is final.
  const std::function<void(const autograd::Variable&)>& leaf_ready() const { return leaf_ready_; }
  // Waits for every bucket; each gradient then holds the weighted sum over the
  // ranks (a parameter no rank had a gradient for keeps none).
  void finish_step();
  const StepTraffic& last_step() const { return traffic_; }

 private:
  struct State;  // MPI requests and buffers, kept out of this header
  std::unique_ptr<State> state_;
  std::function<void(const autograd::Variable&)> leaf_ready_;
  StepTraffic traffic_;
};

}  // namespace neurite::dist
