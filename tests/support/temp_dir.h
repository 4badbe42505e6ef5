// A fresh, empty folder for a test's files, named after the test binary's
// process so parallel ctest runs never share one.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace neurite::testing {

inline std::filesystem::path temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("neurite_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace neurite::testing
