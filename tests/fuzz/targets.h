// The fuzz targets: one per reader of bytes from outside (recipes, ONNX,
// checkpoints, HDF5 data, IDX, .npy, images). A target takes any bytes and
// either returns or throws neurite::Error: a clear error is the right answer
// to bad bytes. Anything else (a crash, another exception, a hang, an
// allocation the bytes did not pay for) is a bug.
//
// The same targets run in two programs: under libFuzzer (fuzz_<name>, the
// clang build of `make fuzz`) and in the test suite, which replays every
// input of tests/fuzz/corpus/<name>/ through the normal build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace neurite::fuzz {

using Target = void (*)(const uint8_t* data, size_t size);

// By name: recipe, onnx, checkpoint, h5_data, idx, npy, image.
const std::map<std::string, Target>& targets();

}  // namespace neurite::fuzz
