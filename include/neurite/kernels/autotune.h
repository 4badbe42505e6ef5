// neurite/kernels/autotune.h — the one way Neurite times candidate kernels,
// and the density above which no sparse candidate is worth timing. Training's
// layers and the engine's compile both choose with these.
//
//   double s = kernels::fastest_run_seconds([&] { run_candidate(); });
#pragma once

#include <algorithm>
#include <chrono>

namespace neurite::kernels {

// Above this density the dense kernels won on every layer shape measured
// (bench/sparse.cpp: the crossover of the sparse kernels lies below 70 % on
// every shape of the zoo), so a weight this dense runs dense without timing.
constexpr double kDenseAboveDensity = 0.7;
// Without timing (a deterministic policy), weights at or below this density
// run sparse: the crossover measured 20-50 % by shape, 30 % on most.
constexpr double kSparseBelowDensity = 0.3;

// Writes a buffer of twice the L2's size, so that what a kernel reads next
// comes from farther away, as it does inside a whole model's run.
void evict_l2();

// The fastest of a few runs of f after one warm-up run: at least 3 and at
// most 15 runs, stopping once 50 ms were spent. Minimum, not mean: the other
// runs measure interference, not the kernel. `cold`: each run after
// evict_l2(), as a layer runs inside a model, where the other layers' weights
// passed through the cache since its last run.
template <typename F>
double fastest_run_seconds(F&& f, bool cold = false) {
  using clock = std::chrono::steady_clock;
  f();
  double best = 1e30, spent = 0;
  for (int i = 0; i < 15 && (i < 3 || spent < 0.05); ++i) {
    if (cold) evict_l2();
    const auto t0 = clock::now();
    f();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::min(best, s), spent += s;
  }
  return best;
}

}  // namespace neurite::kernels
