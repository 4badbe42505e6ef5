// neurite bench: times the engine on a model (.onnx or checkpoint) with random inputs.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <iostream>
#include <map>
#include <numeric>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/parallel.h"
#include "neurite/engine/engine.h"

namespace neurite::cli {

namespace {
// "automatic" (unset: timed per layer) or one form for every weight.
std::optional<engine::WeightFormat> parse_format(const std::string& name) {
  if (name == "automatic") return std::nullopt;
  if (auto f = kernels::parse_weight_format(name)) return f;
  throw ValueError(fmt::format("--format {}: expected automatic, dense, csr, 4x1 or 1x4", name));
}
}  // namespace

void add_bench(CLI::App& app) {
  struct Args {
    std::string model, mode = "columns", format = "automatic";
    std::vector<int64_t> shape;
    int64_t batch_size = 1;
    int threads = 0;
    double time = 5, warmup = 1;
    bool profile = false, json = false, deterministic = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("bench", "Time the inference engine on a model with random inputs");
  cmd->add_option("MODEL", a->model, "ONNX model (.onnx) or checkpoint (.h5)")->required();
  cmd->add_option("--batch-size", a->batch_size, "Items per run")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_option("--time", a->time, "Seconds to measure")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Seconds to run first, unmeasured")->capture_default_str();
  cmd->add_option("--mode", a->mode, "columns (tiles through groups of layers) or layers")->capture_default_str();
  cmd->add_option("--shape", a->shape, "The input's sizes after the batch, for dynamic ones such as a sequence length")
      ->delimiter(',');
  cmd->add_option("--format", a->format, "Weight form: automatic (timed per layer), dense, csr, 4x1, 1x4")
      ->capture_default_str();
  cmd->add_flag("--deterministic", a->deterministic,
                "Choose weight forms and column groups by shape and density, not by timing: the same plan every run");
  cmd->add_flag("--profile", a->profile, "Add the time per step (layers) or column group (columns)");
  cmd->add_flag("--json", a->json,
                "Print {\"items_per_sec\", \"latency_ms\": {\"mean\", \"p50\", \"p90\", \"p99\"}, \"iterations\", "
                "\"batch_size\", \"threads\", \"mode\", \"compile_s\", \"steps\": [{\"name\", \"kernel\", \"group\"}]}");
  cmd->callback([a] {
    check<ValueError>(a->batch_size >= 1, "--batch-size is {}, expected at least 1", a->batch_size);
    check<ValueError>(a->time > 0 && a->warmup >= 0, "--time must be > 0 and --warmup >= 0, got {} and {}", a->time,
                      a->warmup);
    set_threads(a->threads);
    const engine::Mode mode = engine::parse_mode(a->mode);
    const std::optional<engine::WeightFormat> format = parse_format(a->format);
    const engine::Graph g = load_model_graph(a->model);
    if (!a->json) fmt::print(stderr, "compiling {} for batch {}...\n", a->model, a->batch_size);
    const auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, autograd::Shape> shapes;
    if (!a->shape.empty()) {
      autograd::Shape full{a->batch_size};
      full.insert(full.end(), a->shape.begin(), a->shape.end());
      shapes[g.inputs.at(0).name] = full;
    }
    engine::Engine e = engine::compile(g, {.batch = a->batch_size, .input_shapes = shapes, .threads = a->threads,
                                           .mode = mode, .format = format,
                                           .kernels = kernel_policy(a->deterministic)});
    const double compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!a->json) fmt::print(stderr, "measuring for {} s after {} s of warm-up...\n", a->time, a->warmup);
    const engine::BenchResult r =
        engine::benchmark(e, {.time_s = a->time, .warmup_s = a->warmup, .profile = a->profile});
    const int threads = num_threads();
    if (a->json) {
      nlohmann::json j{{"items_per_sec", r.items_per_sec},
                       {"latency_ms", {{"mean", r.mean_ms}, {"p50", r.p50_ms}, {"p90", r.p90_ms}, {"p99", r.p99_ms}}},
                       {"iterations", r.iterations},
                       {"batch_size", a->batch_size},
                       {"threads", threads},
                       {"mode", a->mode},
                       {"compile_s", compile_s},
                       {"steps", nlohmann::json::array()}};
      for (const auto& s : e.steps()) j["steps"].push_back({{"name", s.name}, {"kernel", s.kernel}, {"group", s.group}});
      if (a->profile) {
        j["profile"] = nlohmann::json::array();
        for (const auto& p : r.profile) j["profile"].push_back({{"name", p.name}, {"ms", p.total_ms}});
      }
      std::cout << j.dump() << "\n";
      return;
    }
    int sparse = 0;
    const auto steps = e.steps();
    for (const auto& s : steps) sparse += s.kernel.find("dense") == std::string::npos && s.density < 1;
    fmt::print("{}: {} steps ({} sparse), {} mode, batch {}, {} threads, compiled in {:.2f} s\n", a->model,
               steps.size(), sparse, a->mode, a->batch_size, threads, compile_s);
    fmt::print("{:.1f} items/s; latency ms mean {:.3f}  p50 {:.3f}  p90 {:.3f}  p99 {:.3f}; {} iterations\n",
               r.items_per_sec, r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms, r.iterations);
    if (a->profile) {
      fmt::print("{:>10}  {}\n", "ms/run", "step or column group");
      for (const auto& p : r.profile) fmt::print("{:>10.3f}  {}\n", p.total_ms, p.name);
      // The steps no kernel of ours runs: each a node of the graph on the reference executor.
      std::map<std::string, int> reference;
      for (const auto& s : steps)
        if (s.kernel.rfind("node ", 0) == 0) ++reference[s.kernel.substr(5)];
      double reference_ms = 0;
      for (const auto& p : r.profile)
        if (p.name.find(" [node ") != std::string::npos) reference_ms += p.total_ms;
      std::vector<std::string> ops;
      for (const auto& [op, count] : reference) ops.push_back(fmt::format("{} x{}", op, count));
      fmt::print("on the reference executor: {} steps{}{}\n", std::accumulate(reference.begin(), reference.end(), 0,
                                                                          [](int n, const auto& e) { return n + e.second; }),
                 ops.empty() ? "" : fmt::format(" ({})", fmt::join(ops, ", ")),
                 a->mode == "layers" ? fmt::format(", {:.3f} ms/run", reference_ms) : "");
    }
  });
}

}  // namespace neurite::cli
