// neurite/engine/engine.h — the inference engine: compiles a Graph for one
// batch size into a plan of fused, pre-packed kernels, then runs it layer
// after layer or in tensor columns.
//
//   engine::Graph g = engine::load_onnx("resnet20.onnx");
//   engine::Engine e = engine::compile(g, {.batch = 64, .threads = 2});
//   auto out = e.run({{"input", x}});                    // name -> tensor, as run_reference
//   for (const auto& s : e.steps()) fmt::print("{} {} {:.2f}\n", s.name, s.kernel, s.density);
//
// Compiling folds batch norm into the convolution or Gemm before it, folds
// constants (weight transposes included), drops dead nodes, fuses bias,
// residual add and ReLU into the convolution or linear layer they follow,
// and packs each weight in the form that runs fastest on this CPU: dense
// (oneDNN), CSR, or 4x1 / 1x4 blocks, each timed on the layer's own shape.
// In `columns` mode consecutive layers run together over a tile — a slice of
// the batch, or a band of image rows with its halo — sized to stay in L2;
// tiles run in parallel on oneTBB. `layers` mode runs each step over whole
// tensors, so the gain of columns can be measured.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "neurite/engine/graph.h"
#include "neurite/kernels/policy.h"
#include "neurite/kernels/sparse.h"

namespace neurite::engine {

enum class Mode { columns, layers };
std::string to_string(Mode mode);
Mode parse_mode(std::string_view name);  // "columns" or "layers"; ValueError otherwise

// The forms a weight may be packed in (dense, CSR, 4x1 or 1x4 blocks).
using kernels::WeightFormat;

struct CompileOptions {
  int64_t batch = 1;  // the size of every input's dynamic first dimension
  // Full shapes of inputs (e.g. a dynamic sequence length), fitting the
  // graph's fixed dimensions; an input not named takes `batch`.
  std::map<std::string, Shape> input_shapes;
  int threads = 0;    // 0: all cores
  Mode mode = Mode::columns;
  // One form for every weight (tests, benchmarks); unset, each layer takes
  // the fastest of dense, CSR and the block forms whose zero fill is small.
  std::optional<WeightFormat> format;
  int64_t tile_bytes = 0;  // working-set budget of a column tile; 0: the L2 cache (sysfs)
  // The instruction set, and whether to time on this CPU the candidate
  // weight forms of each layer and each column group against its layers run
  // one by one. autotune off: forms by density and block fill alone and every
  // group kept, a plan that does not depend on timings.
  kernels::KernelPolicy kernels;
};

// One step of the plan: a fused kernel, or a graph node the engine runs as the reference executor does.
struct StepInfo {
  std::string name;    // the graph node (the first of a fused run)
  std::string kernel;  // "conv 3x3 csr +bias+relu", "gemm dense", "node Softmax", ...
  double density = 1;  // of its weight; 1 for steps without one
  int group = -1;      // the column group (columns mode); -1: runs alone over whole tensors
};

struct ProfileEntry {
  std::string name;  // a step, or "group N (k steps, tile ...)" in columns mode
  double total_ms = 0;
  int64_t calls = 0;
};

struct BenchOptions {
  double time_s = 5;    // measure for this long
  double warmup_s = 1;  // after warming up for this long
  bool profile = false;
};

struct BenchResult {
  double items_per_sec = 0;
  double mean_ms = 0, std_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0;  // latency of one run of a batch
  int64_t iterations = 0;
  std::vector<double> latencies_ms;  // every measured run's, in order
  std::vector<ProfileEntry> profile;  // per run, when asked for
};

class Engine;
BenchResult benchmark(Engine& engine, const BenchOptions& options);
// Mean, standard deviation, percentiles and throughput of runs of `items_per_run` items each.
BenchResult latency_summary(std::vector<double> latencies_ms, int64_t items_per_run);

class Engine {
 public:
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  // Inputs by name, with the compiled batch size: ShapeError or DtypeError
  // naming the input otherwise. Returns the graph's outputs by name. Safe to
  // call from several threads at once: each call runs on a set of buffers of
  // its own (kept for the next call; one set per call in flight), the packed
  // weights are shared, and the calls share the engine's threads.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);

  const CompileOptions& options() const;
  const std::vector<ValueInfo>& inputs() const;  // with the batch filled in
  std::vector<StepInfo> steps() const;
  // While on, run() adds the time of each step (layers) or column group
  // (columns) to profile().
  void set_profiling(bool on);
  std::vector<ProfileEntry> profile() const;

  struct Plan;

 private:
  friend Engine compile(Graph graph, const CompileOptions& options);
  friend BenchResult benchmark(Engine& engine, const BenchOptions& options);
  explicit Engine(std::unique_ptr<Plan> plan);
  std::unique_ptr<Plan> plan_;
};

// Throws ShapeError when an input has a dynamic dimension other than the
// first, and what infer_shapes throws for a graph that does not fit.
Engine compile(Graph graph, const CompileOptions& options = {});

// Runs the engine on random inputs (uniform ids below 100 for int64 inputs)
// for the warm-up, then for the measured time, at least 3 runs.
BenchResult benchmark(Engine& engine, const BenchOptions& options);

}  // namespace neurite::engine
