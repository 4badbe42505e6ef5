// The data specs of the command line.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "neurite/error.h"
#include "neurite/data/readers.h"

namespace neurite::data {

namespace fs = std::filesystem;

std::string data_dir() {
  if (const char* dir = std::getenv("NEURITE_DATA_DIR")) return dir;
  // build/neurite finds build/data, and so do build/examples/* and build/tests/*
  // one level further down; no further, so no unrelated data/ folder is picked up.
  const fs::path exe = fs::read_symlink("/proc/self/exe").parent_path();
  for (const fs::path& p : {exe, exe.parent_path()})
    if (fs::is_directory(p / "data" / "mnist-digits")) return (p / "data").string();
  return (exe / "data").string();
}

DataSplits open_data(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto need_arg = [&] { check<ValueError>(!arg.empty(), "data spec '{}': expected {}:PATH", spec, kind); };
  if (spec == "fashion-mnist") {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    check<IoError>(fs::is_directory(dir), "fashion-mnist: {} is missing (install Debian's dataset-fashion-mnist)", dir);
    return {load_idx(dir + "/train"), load_idx(dir + "/t10k")};
  }
  if (spec == "mnist-digits") {
    const std::string dir = data_dir() + "/mnist-digits";
    check<IoError>(fs::is_directory(dir), "mnist-digits: {} is missing (scripts/fetch-mnist-digits.sh makes it)", dir);
    return {load_idx(dir + "/train"), load_idx(dir + "/t10k")};
  }
  if (kind == "idx") {
    need_arg();
    return {load_idx(arg), nullptr};
  }
  if (kind == "h5") {
    need_arg();
    return {load_h5(arg), nullptr};
  }
  if (kind == "folder") {
    need_arg();
    if (fs::is_directory(fs::path(arg) / "train")) {
      const fs::path test = fs::is_directory(fs::path(arg) / "test") ? fs::path(arg) / "test" : fs::path(arg) / "val";
      return {std::make_shared<ImageFolder>((fs::path(arg) / "train").string()),
              fs::is_directory(test) ? std::make_shared<ImageFolder>(test.string()) : nullptr};
    }
    return {std::make_shared<ImageFolder>(arg), nullptr};
  }
  if (kind == "cifar10") {
    need_arg();
    std::vector<std::string> train;
    for (int i = 1; i <= 5; ++i) train.push_back(arg + "/data_batch_" + std::to_string(i) + ".bin");
    return {load_cifar10(train), load_cifar10({arg + "/test_batch.bin"})};
  }
  throw ValueError("unknown data spec '" + spec +
                   "', expected fashion-mnist, mnist-digits, idx:PREFIX, folder:DIR, h5:FILE or cifar10:DIR");
}

}  // namespace neurite::data
