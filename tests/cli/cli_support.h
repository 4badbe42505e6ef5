// What the CLI tests share: running the neurite command as a user does, and
// small data sets written as HDF5 files.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "neurite/autograd/tensor.h"
#include "neurite/data/readers.h"

namespace neurite::testing {

namespace fs = std::filesystem;
using autograd::Tensor;

struct Result {
  int code;
  std::string out;  // stdout and stderr
};

// The command's exit code and output (stdout and stderr as it redirects them).
inline Result run_command(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `env`: variable assignments for the command ("NEURITE_SPARSE_KERNELS=always").
inline Result neurite_cli(const std::string& args, const std::string& env = "") {
  return run_command(env + " " + std::string(NEURITE_CLI) + " " + args + " 2>&1");
}

// `neurite ARGS` as `ranks` processes under mpirun (oversubscribed: there may
// be fewer cores; allowed as root), each with one thread unless ARGS says.
// `mpirun_args` go before the program (an MPMD ": -np 1 ..." goes in ARGS).
inline Result neurite_mpirun(int ranks, const std::string& args, const std::string& mpirun_args = "") {
  return run_command("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe --bind-to none -np " +
                     std::to_string(ranks) + " " + mpirun_args + " " + std::string(NEURITE_CLI) + " " + args + " 2>&1");
}

// 3 classes of 12x12 images: class k is bright in band k.
inline std::string write_bands(const fs::path& dir, int64_t n, uint64_t seed) {
  Tensor x = Tensor::rand({n, 1, 12, 12}, seed, 0, 0.2f);
  Tensor y = Tensor::randint({n}, seed + 1, 0, 3);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t c = 0; c < 12; ++c) x.data<float>()[i * 144 + (4 * y.data<int64_t>()[i] + r) * 12 + c] += 0.8f;
  const std::string path = (dir / ("bands" + std::to_string(seed) + ".h5")).string();
  neurite::data::save_h5(path, x, y);
  return path;
}

}  // namespace neurite::testing
