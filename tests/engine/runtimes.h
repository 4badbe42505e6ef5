// The outside runtimes the engine tests compare with: onnx.checker (Debian's
// python3-onnx) and ONNX Runtime 1.17 (npm onnxruntime-node, installed into the
// build folder by scripts/fetch-onnxruntime.sh), run as child processes.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "neurite/autograd/tensor.h"

namespace neurite::testing {

inline bool onnx_checker_accepts(const std::vector<std::string>& paths) {
  const std::string command = fmt::format(
      "/usr/bin/python3 -c \"import onnx, sys; [onnx.checker.check_model(onnx.load(p), full_check=True) for p in "
      "sys.argv[1:]]\" {}",
      fmt::join(paths, " "));
  return std::system(command.c_str()) == 0;
}

// The model's first output on `inputs` (bound to its inputs in order), from ONNX Runtime.
inline autograd::Tensor run_onnxruntime(const std::string& model, const std::vector<autograd::Tensor>& inputs,
                                        const std::filesystem::path& dir) {
  std::vector<std::string> in_paths;
  for (size_t i = 0; i < inputs.size(); ++i) {
    in_paths.push_back((dir / fmt::format("ort_in{}.npy", i)).string());
    autograd::save_npy(in_paths.back(), inputs[i]);
  }
  const std::string out = (dir / "ort_out.npy").string();
  std::filesystem::remove(out);
  const std::string command = fmt::format("node {}/tests/tools/ort_run.js {}/onnxruntime/node_modules/onnxruntime-node {} {} {}",
                                          NEURITE_SOURCE_DIR, NEURITE_BINARY_DIR, model, out, fmt::join(in_paths, " "));
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return std::filesystem::exists(out) ? autograd::load_npy(out) : autograd::Tensor();
}
inline autograd::Tensor run_onnxruntime(const std::string& model, const autograd::Tensor& input,
                                        const std::filesystem::path& dir) {
  return run_onnxruntime(model, std::vector<autograd::Tensor>{input}, dir);
}

// Same shape, and every element within `tolerance` relative to max(1, |want|).
inline void expect_close(const autograd::Tensor& got, const autograd::Tensor& want, double tolerance) {
  ASSERT_TRUE(got.defined());
  ASSERT_EQ(autograd::to_string(got.shape()), autograd::to_string(want.shape()));
  const autograd::Tensor g = got.to(autograd::Dtype::f32), w = want.to(autograd::Dtype::f32);
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double e = std::abs(double(g.data<float>()[i]) - w.data<float>()[i]) / std::max(1.0, std::abs(double(w.data<float>()[i])));
    if (!(e <= worst)) worst = e, at = i;
  }
  EXPECT_LE(worst, tolerance) << "worst at element " << at << ": " << g.data<float>()[at] << " vs "
                              << w.data<float>()[at];
}

}  // namespace neurite::testing
