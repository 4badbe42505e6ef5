// The gradient exchange alone, for the scaling model of docs/distributed.md:
// under `mpirun -np N`, the time of one GradientReducer step over a zoo
// model's parameters (pruned to --sparsity), with no compute to hide it, and
// the time of a one-value sum (the latency of a collective).
//
//   mpirun -np 2 build/bench/bench_exchange resnet20 0.9    # prints one JSON line from rank 0
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "neurite/dist/dist.h"
#include "neurite/layers/init.h"
#include "neurite/layers/models.h"
#include "neurite/pruning/pruning.h"

using namespace neurite;
using Clock = std::chrono::steady_clock;

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "resnet20";
  const double sparsity = argc > 2 ? std::stod(argv[2]) : 0.0;
  const int reps = argc > 3 ? std::stoi(argv[3]) : 50;
  auto world = dist::Communicator::world();
  layers::manual_seed(0);
  auto model = layers::models::make_model(name, layers::models::model_defaults(name).options);
  if (sparsity > 0)
    pruning::prune(*model, pruning::linear_conv_and_attention_weights(*model), sparsity,
                   pruning::MaskType::parse("unstructured"), false);
  for (auto& p : model->parameters()) p->trainable().set_grad(autograd::Tensor::ones(p->trainable().shape()));
  dist::GradientReducer reducer(model->named_parameters(), world);
  std::vector<double> step_ms, sum_us;
  for (int r = 0; r < reps + 5; ++r) {
    world->barrier();
    const auto start = Clock::now();
    reducer.begin_step(0.5);
    reducer.finish_step();  // every gradient packed here: the whole exchange, nothing overlapped
    const auto middle = Clock::now();
    world->sum(1.0, 1.0);
    const auto end = Clock::now();
    if (r < 5) continue;
    step_ms.push_back(std::chrono::duration<double, std::milli>(middle - start).count());
    sum_us.push_back(std::chrono::duration<double, std::micro>(end - middle).count());
  }
  if (world->rank() == 0)
    fmt::print("{{\"model\": \"{}\", \"sparsity\": {}, \"ranks\": {}, \"values\": {}, \"bytes_sent\": {}, "
               "\"exchange_ms\": {:.4f}, \"sum_us\": {:.2f}}}\n",
               name, sparsity, world->size(), reducer.last_step().values, reducer.last_step().bytes_sent,
               median(step_ms), median(sum_us));
  return 0;
}
