// neurite/kernels/cache.h — the cache size that training's and the engine's
// tiles are sized by.
#pragma once

#include <cstdint>

namespace neurite::kernels {

// Bytes of the L2 cache of CPU 0, read once: from sysfs
// (/sys/devices/system/cpu/cpu0/cache/index*/), else from the C library
// (sysconf, which asks the CPU), else 1 MiB.
int64_t l2_cache_bytes();

}  // namespace neurite::kernels
