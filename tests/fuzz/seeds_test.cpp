// The seeds of the binary corpora, written by today's writers: each must pass
// through its target without an error, so a fuzzer starting from them reaches
// past the header checks into the readers' depths. With
// NEURITE_WRITE_FUZZ_SEEDS=1 the test writes them into tests/fuzz/corpus/
// (the text seeds, recipes and ONNX files, are copies of the repository's own).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <opencv2/imgcodecs.hpp>

#include "neurite/data/readers.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/onnx.h"
#include "neurite/layers/models.h"
#include "neurite/train/checkpoint.h"
#include "support/temp_dir.h"
#include "tests/fuzz/targets.h"

namespace {

namespace fs = std::filesystem;
using namespace neurite;
using autograd::Tensor;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string idx_bytes(const std::vector<uint32_t>& dims, uint8_t type) {
  std::string bytes{0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  int64_t count = 1;
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(d >> shift));
    count *= d;
  }
  for (int64_t i = 0; i < count; ++i) bytes.push_back(static_cast<char>(i * 37 % 10));
  return bytes;
}

void write_gzip(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

struct Seed {
  std::string target, name;
  std::function<void(const fs::path&)> write;
};

std::vector<Seed> seeds() {
  const std::string onnx_dir = std::string(NEURITE_SOURCE_DIR) + "/tests/golden/train/";
  return {
      {"checkpoint", "zoo_cnn.h5",
       [](const fs::path& p) {
         train::Checkpoint c;
         c.model = "cnn";
         c.options = {.image_size = 4, .num_classes = 2};
         train::capture_model(*layers::models::make_model(c.model, c.options), c);
         c.epoch = 1, c.step = 3, c.input_mean = {0.5f}, c.input_std = {0.25f};
         c.recipe = "modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 2}\n";
         train::save_checkpoint(p, c);
       }},
      {"checkpoint", "onnx_mlp.h5",
       [onnx_dir](const fs::path& p) {
         train::Checkpoint c;
         c.model = "mlp.onnx";
         c.graph = read_file(onnx_dir + "mlp_train_opset17.onnx");
         train::capture_model(engine::GraphModule(engine::from_onnx(c.graph, c.model)), c);
         train::save_checkpoint(p, c);
       }},
      {"h5_data", "images.h5",
       [](const fs::path& p) { data::save_h5(p, Tensor::rand({3, 1, 4, 4}, 1), Tensor::randint({3}, 2, 0, 3)); }},
      {"h5_data", "tokens_and_mask.h5",
       [](const fs::path& p) {
         data::save_h5(p, Tensor::randint({2, 5}, 3, 0, 50), Tensor::randint({2}, 4, 0, 2),
                       {Tensor::randint({2, 5}, 5, 0, 2)});
       }},
      {"idx", "images.idx", [](const fs::path& p) { std::ofstream(p, std::ios::binary) << idx_bytes({3, 4, 4}, 8); }},
      {"idx", "labels.idx", [](const fs::path& p) { std::ofstream(p, std::ios::binary) << idx_bytes({5}, 8); }},
      {"idx", "images.idx.gz", [](const fs::path& p) { write_gzip(p, idx_bytes({2, 3, 3}, 8)); }},
      {"npy", "float.npy", [](const fs::path& p) { autograd::save_npy(p, Tensor::rand({2, 3}, 6)); }},
      {"npy", "int64.npy", [](const fs::path& p) { autograd::save_npy(p, Tensor::randint({4}, 7, 0, 9)); }},
      {"image", "gray.png", [](const fs::path& p) { cv::imwrite(p.string(), cv::Mat(4, 5, CV_8UC1, cv::Scalar(90))); }},
      {"image", "colour.jpg",
       [](const fs::path& p) { cv::imwrite(p.string() + ".jpg", cv::Mat(6, 4, CV_8UC3, cv::Scalar(10, 200, 30))),
                               fs::rename(p.string() + ".jpg", p); }},
      {"image", "colour.bmp",
       [](const fs::path& p) { cv::imwrite(p.string() + ".bmp", cv::Mat(3, 3, CV_8UC3, cv::Scalar(1, 2, 3))),
                               fs::rename(p.string() + ".bmp", p); }},
  };
}

TEST(Seeds, TodaysWritersOutputPassesThroughEveryTarget) {
  const bool into_corpus = std::getenv("NEURITE_WRITE_FUZZ_SEEDS") != nullptr;
  const fs::path root = into_corpus ? fs::path(NEURITE_FUZZ_CORPUS) : neurite::testing::temp_dir("fuzz_seeds");
  for (const Seed& seed : seeds()) {
    const fs::path path = root / seed.target / ("seed_" + seed.name);
    fs::create_directories(path.parent_path());
    seed.write(path);
    const std::string bytes = read_file(path);
    ASSERT_FALSE(bytes.empty()) << path;
    try {
      neurite::fuzz::targets().at(seed.target)(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << path << ": " << e.what();
    }
  }
}

}  // namespace
