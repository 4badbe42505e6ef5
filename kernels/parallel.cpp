#include "neurite/parallel.h"

#include <malloc.h>
#include <cstdlib>
#include <unistd.h>
#include <omp.h>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <memory>
#include <mutex>

#include "neurite/error.h"

namespace neurite {

namespace {
std::mutex g_mutex;
std::unique_ptr<tbb::global_control> g_control;
int g_threads = 0;  // 0: not set, all cores
}  // namespace

void set_num_threads(int n) {
  check(n <= 1024, "set_num_threads: {} threads is more than 1024", n);
  std::lock_guard lock(g_mutex);
  g_threads = n <= 0 ? tbb::info::default_concurrency() : n;
  g_control.reset();  // one global_control at a time
  g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                     static_cast<size_t>(g_threads));
  omp_set_num_threads(g_threads);
}

void keep_freed_memory() {
  // glibc refuses (silently) an mmap threshold above 32 MiB, and one at the
  // block's own size still maps it: no mmap at all, then, and no trimming.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void init(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on as we are
  }
  keep_freed_memory();
}

int num_threads() {
  std::lock_guard lock(g_mutex);
  return g_threads > 0 ? g_threads : tbb::info::default_concurrency();
}

}  // namespace neurite
