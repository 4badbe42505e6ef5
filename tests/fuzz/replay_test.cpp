// Every input of tests/fuzz/corpus/<target>/ (the seeds, and each input a
// fuzzer once crashed on) through its target in the normal build: each must
// return or throw neurite::Error, never crash or throw anything else.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "neurite/error.h"
#include "tests/fuzz/targets.h"

namespace {

namespace fs = std::filesystem;

class Replay : public ::testing::TestWithParam<std::string> {};

TEST_P(Replay, EveryCorpusInputEndsInAResultOrANeuriteError) {
  const fs::path dir = fs::path(NEURITE_FUZZ_CORPUS) / GetParam();
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  const auto target = neurite::fuzz::targets().at(GetParam());
  int inputs = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto start = std::chrono::steady_clock::now();
    try {
      target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const neurite::Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << entry.path() << ": " << typeid(e).name() << ": " << e.what();
    }
    // A hang found by the fuzzer comes back as a slow input.
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 2.0) << entry.path() << " took " << seconds << " s";
    ++inputs;
  }
  EXPECT_GT(inputs, 0) << dir << " holds no inputs";
}

INSTANTIATE_TEST_SUITE_P(Fuzz, Replay,
                         ::testing::Values("recipe", "onnx", "checkpoint", "h5_data", "idx", "npy", "image"),
                         [](const auto& info) { return info.param; });

}  // namespace
