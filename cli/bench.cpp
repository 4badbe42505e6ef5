// neurite bench: times the engine on a model (.onnx or checkpoint) with random
// inputs: sync or async streams, a sweep of batch sizes, and ONNX Runtime on
// the same file beside it when onnxruntime-node is installed.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/parallel.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/onnx.h"
#include "neurite/train/plot.h"
#include "cli/ort_bench_js.h"

namespace neurite::cli {

namespace {

namespace fs = std::filesystem;

// "automatic" (unset: timed per layer) or one form for every weight.
std::optional<engine::WeightFormat> parse_format(const std::string& name) {
  if (name == "automatic") return std::nullopt;
  if (auto f = kernels::parse_weight_format(name)) return f;
  throw ValueError(fmt::format("--format {}: expected automatic, dense, csr, 4x1 or 1x4", name));
}

struct BenchArgs {
  std::string model, mode = "columns", format = "automatic", scenario = "sync", onnxruntime = "auto", plot;
  std::vector<int64_t> shape, batch_sizes;
  std::vector<std::string> input_shapes;
  int64_t batch_size = 1;
  int threads = 0, streams = 2;
  double time = 5, warmup = 1;
  bool profile = false, json = false, deterministic = false;
};

// Every input's shape at `batch`: its own sizes after the batch, from --shape
// (the first input), --input-shape NAME=D1,D2,... or the graph.
std::map<std::string, autograd::Shape> input_shapes(const BenchArgs& a, const engine::Graph& g, int64_t batch) {
  std::map<std::string, autograd::Shape> shapes;
  auto set = [&](const std::string& name, const std::vector<int64_t>& tail) {
    autograd::Shape full{batch};
    full.insert(full.end(), tail.begin(), tail.end());
    shapes[name] = full;
  };
  if (!a.shape.empty()) set(g.inputs.at(0).name, a.shape);
  for (const std::string& spec : a.input_shapes) {
    const auto eq = spec.find('=');
    check<ValueError>(eq != std::string::npos, "--input-shape {}: expected NAME=D1,D2,...", spec);
    const std::string name = spec.substr(0, eq);
    check<ValueError>(std::any_of(g.inputs.begin(), g.inputs.end(), [&](const auto& v) { return v.name == name; }),
                      "--input-shape {}: the model has no input '{}'", spec, name);
    std::vector<int64_t> tail;
    std::stringstream dims(spec.substr(eq + 1));
    for (std::string d; std::getline(dims, d, ',');) tail.push_back(std::stoll(d));
    set(name, tail);
  }
  return shapes;
}

// onnxruntime-node beside the binary (a build folder's onnxruntime/), or where
// NEURITE_ONNXRUNTIME says; "" when there is none or --onnxruntime off.
std::string find_onnxruntime(const std::string& when) {
  check<ValueError>(when == "auto" || when == "on" || when == "off", "--onnxruntime is '{}', expected auto, on or off",
                    when);
  if (when == "off") return "";
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("NEURITE_ONNXRUNTIME")) candidates.emplace_back(dir);
  const fs::path exe = fs::read_symlink("/proc/self/exe").parent_path();
  candidates.push_back(exe / "onnxruntime" / "node_modules" / "onnxruntime-node");
  for (const auto& c : candidates)
    if (fs::is_directory(c) && std::system("node --version > /dev/null 2>&1") == 0) return c.string();
  check<ValueError>(when != "on",
                    "--onnxruntime on: no onnxruntime-node found (set NEURITE_ONNXRUNTIME to its package folder)");
  return "";
}

// ONNX Runtime on the same file, batch and threads (bench/ort_bench.js, built in).
nlohmann::json run_onnxruntime(const std::string& package, const std::string& onnx, const engine::Graph& g,
                               const std::map<std::string, autograd::Shape>& shapes, int64_t batch, int threads,
                               const BenchArgs& a) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("neurite_bench_{}", getpid());
  fs::create_directories(dir);
  const fs::path script = dir / "ort_bench.js";
  std::ofstream(script) << kOrtBenchJs;
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& v : g.inputs) {
    const auto it = shapes.find(v.name);
    inputs.push_back({{"shape", it != shapes.end() ? it->second : v.shape},
                      {"type", v.type == engine::DataType::int64 ? "int64" : "float32"}});
  }
  const std::string command =
      fmt::format("ORT_INPUT_SHAPES='{}' node {} {} {} {} {} {} {} 2>&1", inputs.dump(), script.string(), package, onnx,
                  batch, threads, a.time, a.warmup);
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    std::array<char, 4096> buffer;
    while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
    pclose(pipe);
  }
  fs::remove_all(dir);
  const auto j = nlohmann::json::parse(out.substr(0, out.find('\n')), nullptr, false);
  check<ValueError>(!j.is_discarded() && j.contains("items_per_sec"), "bench: ONNX Runtime failed on {}: {}", onnx,
                    out.substr(0, out.find('\n')));
  return j;
}

// One scenario at one batch size: sync runs one engine with every thread;
// async runs --streams engines at once, the threads shared among them, and
// counts every stream's items.
engine::BenchResult run_ours(const BenchArgs& a, const engine::Graph& g, int64_t batch, int threads,
                             std::vector<engine::StepInfo>& steps, double& compile_s) {
  const engine::Mode mode = engine::parse_mode(a.mode);
  const std::optional<engine::WeightFormat> format = parse_format(a.format);
  const int streams = a.scenario == "async" ? a.streams : 1;
  const int per_stream = std::max(1, threads / streams);
  const auto shapes = input_shapes(a, g, batch);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<engine::Engine> engines;
  for (int k = 0; k < streams; ++k)
    engines.push_back(engine::compile(g, {.batch = batch, .input_shapes = shapes, .threads = per_stream, .mode = mode,
                                          .format = format, .kernels = kernel_policy(a.deterministic)}));
  compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  steps = engines[0].steps();
  const engine::BenchOptions options{.time_s = a.time, .warmup_s = a.warmup, .profile = a.profile && streams == 1};
  if (streams == 1) return engine::benchmark(engines[0], options);
  std::vector<engine::BenchResult> results(static_cast<size_t>(streams));
  std::vector<std::thread> workers;
  for (int k = 0; k < streams; ++k)
    workers.emplace_back([&, k] { results[k] = engine::benchmark(engines[k], options); });
  for (auto& w : workers) w.join();
  std::vector<double> all;
  double items_per_sec = 0;
  for (const auto& r : results) {
    all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    items_per_sec += r.items_per_sec;
  }
  engine::BenchResult r = engine::latency_summary(std::move(all), batch);
  r.items_per_sec = items_per_sec;  // the streams together
  return r;
}

nlohmann::json result_json(const engine::BenchResult& r) {
  return {{"items_per_sec", r.items_per_sec},
          {"latency_ms",
           {{"mean", r.mean_ms}, {"std", r.std_ms}, {"p50", r.p50_ms}, {"p90", r.p90_ms}, {"p99", r.p99_ms}}},
          {"iterations", r.iterations}};
}

void run_bench(const BenchArgs& a) {
  for (int64_t b : a.batch_sizes) check<ValueError>(b >= 1, "--batch-sizes has {}, expected at least 1", b);
  check<ValueError>(a.batch_size >= 1, "--batch-size is {}, expected at least 1", a.batch_size);
  check<ValueError>(a.time > 0 && a.warmup >= 0, "--time must be > 0 and --warmup >= 0, got {} and {}", a.time,
                    a.warmup);
  check<ValueError>(a.scenario == "sync" || a.scenario == "async", "--scenario is '{}', expected sync or async",
                    a.scenario);
  check<ValueError>(a.streams >= 1, "--streams is {}, expected at least 1", a.streams);
  set_threads(a.threads);
  engine::parse_mode(a.mode);
  parse_format(a.format);
  const int threads = num_threads();
  const engine::Graph g = load_model_graph(a.model);
  const std::string ort = find_onnxruntime(a.onnxruntime);
  std::string onnx = a.model;
  const fs::path exported = fs::temp_directory_path() / fmt::format("neurite_bench_{}.onnx", getpid());
  if (!ort.empty() && !a.model.ends_with(".onnx")) {  // a checkpoint: ONNX Runtime runs its export
    engine::save_onnx(g, exported.string());
    onnx = exported.string();
  }
  const std::vector<int64_t> batches = a.batch_sizes.empty() ? std::vector<int64_t>{a.batch_size} : a.batch_sizes;
  nlohmann::json runs = nlohmann::json::array();
  std::vector<engine::StepInfo> steps;
  std::vector<engine::ProfileEntry> profile;
  for (int64_t batch : batches) {
    if (!a.json) fmt::print(stderr, "batch {}: compiling, {} s of warm-up, measuring for {} s...\n", batch, a.warmup, a.time);
    double compile_s = 0;
    const engine::BenchResult r = run_ours(a, g, batch, threads, steps, compile_s);
    nlohmann::json run = result_json(r);
    run["batch_size"] = batch;
    run["compile_s"] = compile_s;
    nlohmann::json shapes = nlohmann::json::object();
    for (const auto& [name, shape] : input_shapes(a, g, batch)) shapes[name] = shape;
    for (const auto& v : g.inputs)
      if (!shapes.contains(v.name)) {
        autograd::Shape s = v.shape;
        if (!s.empty()) s[0] = batch;
        shapes[v.name] = s;
      }
    run["inputs"] = shapes;
    if (!ort.empty()) {
      run["onnxruntime"] = run_onnxruntime(ort, onnx, g, input_shapes(a, g, batch), batch, threads, a);
      run["speedup_vs_onnxruntime"] = r.items_per_sec / run["onnxruntime"]["items_per_sec"].get<double>();
    }
    runs.push_back(run);
    profile = r.profile;
  }
  fs::remove(exported);
  if (!a.plot.empty()) {
    train::LineChart chart{fmt::format("{}: {} threads, {}", fs::path(a.model).filename().string(), threads,
                                       a.scenario == "async" ? fmt::format("{} streams", a.streams) : "sync"),
                           "batch size", "items/s", {}};
    train::Series ours{"Neurite", {}, {}}, theirs{"ONNX Runtime", {}, {}};
    for (const auto& run : runs) {
      ours.x.push_back(run["batch_size"].get<double>());
      ours.y.push_back(run["items_per_sec"].get<double>());
      if (run.contains("onnxruntime")) {
        theirs.x.push_back(run["batch_size"].get<double>());
        theirs.y.push_back(run["onnxruntime"]["items_per_sec"].get<double>());
      }
    }
    chart.series.push_back(ours);
    if (!theirs.x.empty()) chart.series.push_back(theirs);
    train::write_svg(chart, a.plot);
  }
  if (a.json) {
    nlohmann::json j = runs.size() == 1 ? runs[0] : nlohmann::json{{"runs", runs}};
    j["threads"] = threads;
    j["mode"] = a.mode;
    j["scenario"] = a.scenario;
    if (a.scenario == "async") j["streams"] = a.streams;
    if (runs.size() == 1) j["batch_size"] = batches[0];
    j["steps"] = nlohmann::json::array();
    for (const auto& s : steps) j["steps"].push_back({{"name", s.name}, {"kernel", s.kernel}, {"group", s.group}});
    if (a.profile) {
      j["profile"] = nlohmann::json::array();
      for (const auto& p : profile) j["profile"].push_back({{"name", p.name}, {"ms", p.total_ms}});
    }
    std::cout << j.dump() << "\n";
    return;
  }
  int sparse = 0;
  for (const auto& s : steps) sparse += s.kernel.find("dense") == std::string::npos && s.density < 1;
  std::vector<std::string> inputs;
  for (const auto& [name, shape] : runs.back()["inputs"].items())
    inputs.push_back(fmt::format("{} {}", name, autograd::to_string(shape.get<autograd::Shape>())));
  fmt::print("{}: {} steps ({} sparse), {} mode, {}, {} threads; inputs {}\n", a.model, steps.size(), sparse, a.mode,
             a.scenario == "async" ? fmt::format("async, {} streams", a.streams) : "sync", threads,
             fmt::join(inputs, ", "));
  const bool with_ort = !ort.empty();
  fmt::print("{:>6} {:>12} {:>9} {:>8} {:>9} {:>9} {:>9}{}\n", "batch", "items/s", "mean ms", "std", "p50", "p90",
             "p99", with_ort ? fmt::format(" {:>14} {:>8}", "ORT items/s", "x ORT") : "");
  for (const auto& run : runs) {
    const auto& l = run["latency_ms"];
    fmt::print("{:>6} {:>12.1f} {:>9.3f} {:>8.3f} {:>9.3f} {:>9.3f} {:>9.3f}{}\n", run["batch_size"].get<int64_t>(),
               run["items_per_sec"].get<double>(), l["mean"].get<double>(), l["std"].get<double>(),
               l["p50"].get<double>(), l["p90"].get<double>(), l["p99"].get<double>(),
               with_ort ? fmt::format(" {:>14.1f} {:>7.2f}x", run["onnxruntime"]["items_per_sec"].get<double>(),
                                      run["speedup_vs_onnxruntime"].get<double>())
                        : "");
  }
  if (a.profile) {
    fmt::print("{:>10}  {}\n", "ms/run", "step or column group");
    for (const auto& p : profile) fmt::print("{:>10.3f}  {}\n", p.total_ms, p.name);
    // The steps no kernel of ours runs: each a node of the graph on the reference executor.
    std::map<std::string, int> reference;
    for (const auto& s : steps)
      if (s.kernel.rfind("node ", 0) == 0) ++reference[s.kernel.substr(5)];
    double reference_ms = 0;
    for (const auto& p : profile)
      if (p.name.find(" [node ") != std::string::npos) reference_ms += p.total_ms;
    std::vector<std::string> ops;
    for (const auto& [op, count] : reference) ops.push_back(fmt::format("{} x{}", op, count));
    fmt::print("on the reference executor: {} steps{}{}\n",
               std::accumulate(reference.begin(), reference.end(), 0, [](int n, const auto& e) { return n + e.second; }),
               ops.empty() ? "" : fmt::format(" ({})", fmt::join(ops, ", ")),
               a.mode == "layers" ? fmt::format(", {:.3f} ms/run", reference_ms) : "");
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Time the inference engine on a model with random inputs");
  add_model_argument(cmd, a->model, "ONNX model (.onnx) or checkpoint (.h5)", "--model");
  cmd->add_option("--batch-size", a->batch_size, "Items per run")->capture_default_str();
  cmd->add_option("--batch-sizes", a->batch_sizes, "A sweep: one row per batch size (e.g. 1,8,64)")->delimiter(',');
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)");
  cmd->add_option("--scenario", a->scenario, "sync (one stream of runs) or async (--streams at once)")
      ->capture_default_str();
  cmd->add_option("--streams", a->streams, "Concurrent streams in the async scenario, sharing the threads")
      ->capture_default_str();
  cmd->add_option("--time", a->time, "Seconds to measure")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Seconds to run first, unmeasured")->capture_default_str();
  cmd->add_option("--mode", a->mode, "columns (tiles through groups of layers) or layers")->capture_default_str();
  cmd->add_option("--shape", a->shape, "The first input's sizes after the batch, for dynamic ones such as a sequence length")
      ->delimiter(',');
  cmd->add_option("--input-shape", a->input_shapes, "NAME=D1,D2,...: a named input's sizes after the batch (repeatable)");
  cmd->add_option("--format", a->format, "Weight form: automatic (timed per layer), dense, csr, 4x1, 1x4")
      ->capture_default_str();
  cmd->add_option("--onnxruntime", a->onnxruntime,
                  "ONNX Runtime on the same file in a column beside ours: auto (when onnxruntime-node is found), on, off")
      ->capture_default_str();
  cmd->add_option("--plot", a->plot, "Write items/s per batch size (ours and ONNX Runtime's) to this SVG");
  cmd->add_flag("--deterministic", a->deterministic,
                "Choose weight forms and column groups by shape and density, not by timing: the same plan every run");
  cmd->add_flag("--profile", a->profile, "Add the time per step (layers) or column group (columns); sync only");
  cmd->add_flag("--json", a->json,
                "Print {\"items_per_sec\", \"latency_ms\": {\"mean\", \"std\", \"p50\", \"p90\", \"p99\"}, "
                "\"iterations\", \"batch_size\", \"inputs\", \"threads\", \"mode\", \"scenario\", \"compile_s\", "
                "\"onnxruntime\" (when run), \"steps\": [...]}; with --batch-sizes, {\"runs\": [...], ...}");
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace neurite::cli
