// libFuzzer's entry for one target of tests/fuzz/targets.h, named by
// NEURITE_FUZZ_TARGET at build time. neurite::Error is the expected answer to
// bad bytes; any other exception escapes and libFuzzer reports it as a crash.
#include "neurite/error.h"
#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const neurite::fuzz::Target target = neurite::fuzz::targets().at(NEURITE_FUZZ_TARGET);
  try {
    target(data, size);
  } catch (const neurite::Error&) {
  }
  return 0;
}
