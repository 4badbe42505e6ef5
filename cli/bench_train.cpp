// neurite bench-train: times full training steps (forward, backward, SGD
// step) of a zoo model on synthetic data; under mpirun, data-parallel steps
// of the global batch, with the gradient exchange's share and bytes.
#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/autograd/profile.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/dist/dist.h"
#include "neurite/parallel.h"
#include "neurite/layers/init.h"
#include "neurite/layers/models.h"
#include "neurite/optim/memory.h"
#include "neurite/optim/optimizer.h"
#include "neurite/pruning/pruning.h"

namespace neurite::cli {

namespace {
// Peak resident memory of this process (VmHWM), in MiB.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}
}  // namespace

void add_bench_train(CLI::App& app) {
  struct Args {
    std::string model;
    int64_t batch_size = 0, steps = 20, warmup = 3, in_channels = 0, image_size = 0, seq_len = 128;
    int threads = 0;
    double sparsity = 0;
    std::string mask_type = "unstructured";
    bool dense_kernels = false, deterministic = false, json = false, profile = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("bench-train", "Time training steps of a model on synthetic data");
  add_model_argument(cmd, a->model, "Zoo model", "--model");
  cmd->add_option("--batch-size", a->batch_size, "Batch size (default: 256 mlp, 128 conv nets, 32 transformer)");
  cmd->add_option("--steps", a->steps, "Timed steps")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--in-channels", a->in_channels, "Image channels (default: 3 for resnets, else 1)");
  cmd->add_option("--image-size", a->image_size, "Image side (default: 32 for resnets, else 28)");
  cmd->add_option("--seq-len", a->seq_len, "Tokens per sequence (transformer)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_option("--sparsity", a->sparsity, "Prune every Linear, Conv2d and attention projection weight to this sparsity first (magnitude, one shot)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--mask-type", a->mask_type, "Pruning pattern: unstructured, 4x1, 1x4, N:M, ...")->capture_default_str();
  cmd->add_flag("--dense-kernels", a->dense_kernels, "Run pruned layers on dense masked kernels, not sparse ones");
  cmd->add_flag("--deterministic", a->deterministic,
                "Pick sparse or dense kernels per layer by density, not by timing: the same kernels every run");
  cmd->add_flag("--profile", a->profile,
                "Add the time per op kind of the timed steps, forward and backward, and the optimizer's");
  cmd->add_flag("--json", a->json, "Print {\"ms_per_step\", ..., \"sparse_layers\": [...]}");
  cmd->callback([a] {
    set_threads(a->threads);
    check<ValueError>(a->steps >= 1 && a->warmup >= 0, "bench-train: --steps {} must be >= 1, --warmup {} >= 0",
                      a->steps, a->warmup);
    const layers::models::ModelDefaults& defaults = layers::models::model_defaults(a->model);
    const bool tokens = defaults.takes_tokens;
    const int64_t batch = a->batch_size > 0 ? a->batch_size : defaults.batch_size;
    layers::models::ModelOptions o = defaults.options;
    if (a->in_channels > 0) o.in_channels = a->in_channels;
    if (a->image_size > 0) o.image_size = a->image_size;
    o.seq_len = a->seq_len;
    layers::manual_seed(0);
    auto model = layers::models::make_model(a->model, o);
    model->train();
    if (a->sparsity > 0)
      pruning::prune(*model, pruning::linear_conv_and_attention_weights(*model), a->sparsity,
                     pruning::MaskType::parse(a->mask_type), false);
    // Under mpirun: each rank steps on its share of the global batch.
    const auto world = dist::Communicator::world();
    const bool shared = world->size() > 1;
    check<ValueError>(batch >= world->size(), "bench-train: a batch of {} cannot be shared by {} ranks", batch,
                      world->size());
    kernels::KernelPolicy policy = kernel_policy(a->deterministic);
    if (a->dense_kernels) policy.sparse = kernels::SparseKernels::never;
    model->set_kernel_policy(policy);
    // Peak memory counts from here: pruning's scratch is freed and handed back first.
    malloc_trim(0);
    std::ofstream("/proc/self/clear_refs") << "5";
    const int64_t local = batch * (world->rank() + 1) / world->size() - batch * world->rank() / world->size();
    const autograd::Tensor x = tokens ? autograd::Tensor::randint({local, o.seq_len}, 1 + world->rank(), 0, o.vocab_size)
                                      : autograd::Tensor::randn({local, o.in_channels, o.image_size, o.image_size},
                                                                1 + world->rank());
    const autograd::Tensor y = autograd::Tensor::randint({local}, 2 + world->rank(), 0, o.num_classes);
    optim::Sgd sgd({{.params = model->parameters(), .lr = 0.01}}, {.momentum = 0.9});
    dist::broadcast_module(*model, *world);
    std::optional<dist::GradientReducer> reducer;
    if (shared) reducer.emplace(model->named_parameters(), world);
    std::vector<double> exchange_ms;
    std::vector<double> ms;
    autograd::OpProfile profile;
    double optimizer_ms = 0;
    for (int64_t s = 0; s < a->warmup + a->steps; ++s) {
      const bool profiled = a->profile && s >= a->warmup;
      const auto start = std::chrono::steady_clock::now();
      {
        std::optional<autograd::ProfileGuard> guard;
        if (profiled) guard.emplace(profile);
        autograd::Variable loss = autograd::cross_entropy(model->forward(autograd::Variable(x)), y);
        sgd.zero_grad();
        if (shared) {
          reducer->begin_step(1.0);  // backward of this rank's share of the global mean loss
          loss.backward(autograd::Tensor::full(loss.shape(), static_cast<float>(local) / static_cast<float>(batch)),
                        reducer->leaf_ready());
          reducer->finish_step();
          if (s >= a->warmup) exchange_ms.push_back(1000 * reducer->last_step().wait_seconds);
        } else {
          loss.backward();
        }
      }
      const auto before_step = std::chrono::steady_clock::now();
      sgd.step();
      const auto end = std::chrono::steady_clock::now();
      if (profiled) optimizer_ms += std::chrono::duration<double, std::milli>(end - before_step).count();
      if (s >= a->warmup) ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    std::sort(exchange_ms.begin(), exchange_ms.end());
    const double exchange = exchange_ms.empty() ? 0.0 : exchange_ms[exchange_ms.size() / 2];
    int64_t pruned = 0;
    std::vector<std::string> sparse_layers;
    for (const auto& [name, p] : model->named_parameters()) {
      pruned += p->has_mask();
      if (p->is_sparse()) sparse_layers.push_back(name);
    }
    const auto sparse = static_cast<int64_t>(sparse_layers.size());
    const int64_t parameter_bytes = optim::training_memory(*model, sgd).total_bytes();
    const nlohmann::json out = {{"model", a->model},
                                {"batch_size", batch},
                                {"threads", neurite::num_threads()},
                                {"steps", a->steps},
                                {"sparsity", a->sparsity},
                                {"mask_type", a->mask_type},
                                {"pruned_tensors", pruned},
                                {"sparse_tensors", sparse},
                                {"ms_per_step", median},
                                {"ms_min", ms.front()},
                                {"samples_per_sec", 1000.0 * static_cast<double>(batch) / median},
                                {"peak_rss_mib", peak_rss_mib()},
                                {"parameter_mib", static_cast<double>(parameter_bytes) / (1 << 20)},
                                {"sparse_layers", sparse_layers},
                                {"ranks", world->size()},
                                // the median time a step waited for the gradient exchange, after backward
                                {"exchange_ms", exchange},
                                {"exchange_share", exchange / median},
                                {"exchange_values", shared ? reducer->last_step().values : 0},
                                {"exchange_bytes", shared ? reducer->last_step().bytes_sent : 0}};
    if (world->rank() != 0) return;  // rank 0 reports
    // Per step, the ops by total time: what dominates a step.
    std::vector<std::pair<std::string, autograd::OpTime>> ops(profile.ops.begin(), profile.ops.end());
    std::sort(ops.begin(), ops.end(), [](const auto& p, const auto& q) {
      return p.second.forward_ms + p.second.backward_ms > q.second.forward_ms + q.second.backward_ms;
    });
    const auto per_step = static_cast<double>(a->steps);
    if (a->json) {
      nlohmann::json j = out;
      if (a->profile) {
        j["profile"] = nlohmann::json::array();
        for (const auto& [op, t] : ops)
          j["profile"].push_back({{"op", op}, {"forward_ms", t.forward_ms / per_step},
                                  {"backward_ms", t.backward_ms / per_step}, {"calls", t.calls / a->steps}});
        j["optimizer_ms"] = optimizer_ms / per_step;
      }
      std::cout << j.dump() << "\n";
      return;
    }
    if (a->profile) {
      fmt::print("{:<24} {:>8} {:>12} {:>12} {:>7}\n", "op (per step)", "calls", "forward ms", "backward ms", "share");
      for (const auto& [op, t] : ops)
        fmt::print("{:<24} {:>8} {:>12.2f} {:>12.2f} {:>6.1f}%\n", op, t.calls / a->steps, t.forward_ms / per_step,
                   t.backward_ms / per_step, 100 * (t.forward_ms + t.backward_ms) / per_step / median);
      fmt::print("{:<24} {:>8} {:>12.2f} {:>12} {:>6.1f}%\n", "optimizer step", 1, optimizer_ms / per_step, "",
                 100 * optimizer_ms / per_step / median);
    }
    fmt::print("{} batch {} on {} threads, {:.0f}% {} sparse ({} of {} pruned tensors on sparse kernels): "
               "{:.2f} ms/step (median of {}), {:.0f} samples/s, peak memory {:.0f} MiB (parameters, gradients and "
               "optimizer state {:.1f} MiB)\n",
               a->model, batch, neurite::num_threads(), 100 * a->sparsity, a->mask_type, sparse, pruned, median,
               a->steps, out["samples_per_sec"].get<double>(), out["peak_rss_mib"].get<double>(),
               out["parameter_mib"].get<double>());
    if (shared)
      fmt::print("{} ranks: {:.2f} ms/step waiting for the gradient exchange ({:.1f}% of a step), {} values, "
                 "{:.2f} MB sent per rank and step\n",
                 world->size(), exchange, 100 * exchange / median, reducer->last_step().values,
                 static_cast<double>(reducer->last_step().bytes_sent) / 1e6);
  });
}

}  // namespace neurite::cli
