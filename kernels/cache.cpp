#include "neurite/kernels/cache.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "neurite/kernels/autotune.h"

namespace neurite::kernels {

namespace {
int64_t read_l2() {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level(dir + "level"), type(dir + "type"), size(dir + "size");
    int l = 0;
    std::string t, s;
    if (!(level >> l) || !(type >> t) || !(size >> s)) continue;
    if (l != 2 || t == "Instruction") continue;
    int64_t bytes = std::stoll(s);  // "1024K"
    if (s.back() == 'K') bytes <<= 10;
    if (s.back() == 'M') bytes <<= 20;
    if (bytes > 0) return bytes;
  }
  const long bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);  // virtual machines often have no sysfs cache entries
  return bytes > 0 ? bytes : int64_t{1} << 20;
}
}  // namespace

int64_t l2_cache_bytes() {
  static const int64_t bytes = read_l2();
  return bytes;
}

}  // namespace neurite::kernels

namespace neurite::kernels {

void evict_l2() {
  static std::vector<char> buffer(static_cast<size_t>(2 * l2_cache_bytes()));
  static char round = 0;
  ++round;
  for (size_t i = 0; i < buffer.size(); i += 64) buffer[i] = round;
}

}  // namespace neurite::kernels
