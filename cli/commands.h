// The subcommands of `neurite`, one file each; main.cpp registers them.
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "neurite/data/dataset.h"
#include "neurite/data/readers.h"
#include "neurite/engine/graph.h"
#include "neurite/kernels/policy.h"
#include "neurite/train/checkpoint.h"

namespace neurite::cli {

void add_train(CLI::App& app);
void add_analyze(CLI::App& app);
void add_eval(CLI::App& app);
void add_info(CLI::App& app);
void add_bench_train(CLI::App& app);
void add_prune(CLI::App& app);
void add_quantize(CLI::App& app);
void add_recipe(CLI::App& app);
void add_export(CLI::App& app);
void add_infer(CLI::App& app);
void add_bench(CLI::App& app);

// SIGINT and SIGTERM go to one watcher thread (cli/interrupts.cpp); call
// first thing in main, before any other thread exists.
void watch_interrupts();
// While one lives, the first SIGINT or SIGTERM sets requested() (a trainer
// stops after its step and writes a checkpoint) and a second ends the
// process; with none, the first ends it, as by default.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  const std::atomic<bool>& requested() const;
  int signal() const;  // the signal that set requested()
};

// A command's end with a message and an exit code of its own (not an
// error): main prints the message and returns the code.
struct Exit {
  int code;
  std::string message;
};

// --recipe-var name=value pairs; ValueError for one without '='.
std::map<std::string, std::string> parse_recipe_vars(const std::vector<std::string>& pairs);

// The graph of a model file: an ONNX file (.onnx) or a checkpoint, traced.
engine::Graph load_model_graph(const std::string& path);
// ShapeError unless `g`'s inputs, after the batch, fit `example`'s input and
// more_inputs in order (a dynamic size fits any); `what` leads the message.
void check_graph_fits(const engine::Graph& g, const data::Example& example, const std::string& what);
// The data of SPEC as checkpoint `c`'s model takes it: normalised as it
// was trained (train --normalize), else as it comes.
data::DataSplits open_data_for(const std::string& spec, const train::Checkpoint& c);
// One example batch of a zoo checkpoint's input: images (1, C, S, S) or tokens (1, seq_len).
autograd::Tensor example_input(const train::Checkpoint& c);

// Every command's first argument, the model: positional (`neurite eval
// MODEL ...`). `alias` names it too: "--model" for commands that always took
// it so, or "--checkpoint", kept for one release with a note on stderr that it
// is deprecated. Missing, it is a usage error (exit 2).
void add_model_argument(CLI::App* cmd, std::string& target, const std::string& help, const std::string& alias);

// Applies --threads (0: all cores).
void set_threads(int threads);
// The kernel policy: the environment's defaults (NEURITE_SPARSE_KERNELS,
// NEURITE_ISA, NEURITE_DETERMINISTIC), no autotuning with --deterministic.
kernels::KernelPolicy kernel_policy(bool deterministic);

}  // namespace neurite::cli
