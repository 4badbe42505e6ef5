#include "tests/fuzz/targets.h"

#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string_view>

#include "neurite/autograd/tensor.h"
#include "neurite/data/readers.h"
#include "neurite/engine/engine.h"
#include "neurite/engine/onnx.h"
#include "neurite/error.h"
#include "neurite/layers/layers.h"
#include "neurite/optim/optimizer.h"
#include "neurite/recipes/manager.h"
#include "neurite/train/checkpoint.h"

namespace neurite::fuzz {
namespace {

namespace fs = std::filesystem;
using autograd::Tensor;

// The readers take paths: the bytes go to a file of this process in memory
// (/dev/shm), rewritten for every input.
fs::path scratch_dir() {
  static const fs::path dir = [] {
    const fs::path shm = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = shm / ("neurite-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

std::string write_bytes(const uint8_t* data, size_t size, const std::string& name) {
  const fs::path path = scratch_dir() / name;
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  return path.string();
}

// Recipe text, then optionally a NUL byte and --recipe-var lines "name=value":
// the overrides are fuzzed with the text. Parsed, planned over 4 steps an
// epoch, and run for two epochs on a small two-layer model (fresh for every
// input: the modifiers prune it and set its quantization).
void recipe(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t nul = bytes.find('\0');
  const std::string text(bytes.substr(0, nul));
  std::map<std::string, std::string> overrides;
  if (nul != std::string_view::npos) {
    std::string_view rest = bytes.substr(nul + 1);
    while (!rest.empty()) {
      const size_t end = rest.find('\n');
      const std::string_view line = rest.substr(0, end);
      const size_t eq = line.find('=');
      if (eq != std::string_view::npos) overrides[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    }
  }
  // A card whose first line is a fence reads as Markdown under either name.
  const auto r = recipes::Recipe::parse(text, text.starts_with("#") ? "fuzz.md" : "fuzz.yaml", overrides);
  r.epochs();
  recipes::plan(r, /*steps_per_epoch=*/4);
  auto model = std::make_shared<layers::Sequential>(std::vector<std::shared_ptr<layers::UnaryModule>>{
      std::make_shared<layers::Linear>(16, 32), std::make_shared<layers::ReLU>(), std::make_shared<layers::Linear>(32, 4)});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1}});
  recipes::Manager manager(r, *model, sgd, /*steps_per_epoch=*/4);
  for (int64_t step = 0; step < 8; ++step) manager.before_step(step / 4.0, step);
}

// A serialised ModelProto: parsed, validated, shapes inferred, compiled for
// batch 1 (one thread, no timing) and run once on zeros.
void onnx(const uint8_t* data, size_t size) {
  engine::Graph graph = engine::from_onnx(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx");
  graph.validate();
  graph.infer_shapes();
  engine::CompileOptions options;
  options.threads = 1;
  options.kernels.autotune = false;
  engine::Engine engine = engine::compile(std::move(graph), options);
  std::map<std::string, Tensor> inputs;
  for (const auto& input : engine.inputs())
    inputs.emplace(input.name, Tensor::zeros(input.shape, engine::storage_of(input.type)));
  engine.run(inputs);
}

// A checkpoint file: loaded, and its model built with the weights and masks
// (what `--resume`, `eval` and `export` do first). Its header's CRC-32 is
// made right for the HDF5 bytes after it, so that the fuzzer reaches the
// reader behind the check (a wrong one is refused before HDF5 sees a byte).
void checkpoint(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 512;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= kHeader) {
    const std::string_view body = std::string_view(bytes).substr(kHeader);
    std::string header = fmt::format("NEURITE CHECKPOINT\ncrc32 {:08x} bytes {}\n",
                                     crc32_z(0, reinterpret_cast<const Bytef*>(body.data()), body.size()), body.size());
    header.resize(kHeader, '\0');
    bytes.replace(0, kHeader, header);
  }
  const auto ckpt = train::load_checkpoint(
      write_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "checkpoint.h5"));
  train::build_model(ckpt);
}

// An HDF5 data file (h5:FILE): opened and its first and last example read.
void h5_data(const uint8_t* data, size_t size) {
  const auto set = data::load_h5(write_bytes(data, size, "data.h5"));
  if (set->size() > 0) {
    set->get(0);
    set->get(set->size() - 1);
  }
}

// IDX labels (one dimension) or images (more), gzip-compressed when the bytes are.
void idx(const uint8_t* data, size_t size) {
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string path = write_bytes(data, size, gzip ? "data.idx.gz" : "data.idx");
  if (!gzip && size >= 4 && data[3] == 1) data::read_idx_labels(path);
  else data::read_idx_images(path);
}

void npy(const uint8_t* data, size_t size) { autograd::load_npy(write_bytes(data, size, "array.npy")); }

// One image in a one-class folder, read as `folder:` data reads it.
void image(const uint8_t* data, size_t size) {
  write_bytes(data, size, "images/a/image.png");
  const data::ImageFolder folder((scratch_dir() / "images").string());
  folder.get(0);
}

}  // namespace

const std::map<std::string, Target>& targets() {
  static const std::map<std::string, Target> all{
      {"recipe", recipe}, {"onnx", onnx}, {"checkpoint", checkpoint}, {"h5_data", h5_data},
      {"idx", idx},       {"npy", npy},   {"image", image}};
  return all;
}

}  // namespace neurite::fuzz
