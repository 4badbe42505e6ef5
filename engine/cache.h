// The cache size the planner sizes tensor-column tiles by.
#pragma once

#include <cstdint>

namespace neurite::engine::detail {

// Bytes of the L2 cache of CPU 0, read once from sysfs
// (/sys/devices/system/cpu/cpu0/cache/index*/); 1 MiB when sysfs does not say.
int64_t l2_cache_bytes();

}  // namespace neurite::engine::detail
