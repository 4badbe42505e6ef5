#include "engine/weight_policy.h"

#include <algorithm>
#include <vector>

#include "neurite/kernels/autotune.h"

namespace neurite::engine::detail {

namespace {
// Block forms that store more than this many entries per nonzero (the zeros
// filled into partly kept blocks) never won a timing: not worth timing.
constexpr double kMaxTimedBlockFill = 2.5;
// Without timing: a block form whose zero fill stays below this, else CSR
// at or below kernels::kSparseBelowDensity, else dense.
constexpr double kMaxUntimedBlockFill = 1.2;
}  // namespace

WeightFormat choose_weight_format(const float* w, int64_t rows, int64_t cols, const WeightPolicy& policy,
                                  const std::function<double(WeightFormat)>& time_of) {
  if (policy.forced) return *policy.forced;
  const double density =
      static_cast<double>(kernels::count_nonzero(w, rows * cols)) / static_cast<double>(std::max<int64_t>(rows * cols, 1));
  if (density > kernels::kDenseAboveDensity && !policy.autotune) return WeightFormat::dense;
  std::vector<WeightFormat> candidates{WeightFormat::dense, WeightFormat::rows4};
  if (density <= kernels::kDenseAboveDensity) {
    candidates = {WeightFormat::csr, WeightFormat::dense};
    for (WeightFormat f : {WeightFormat::rows4, WeightFormat::cols4})
      if (kernels::fill_ratio(w, rows, cols, f) <= kMaxTimedBlockFill) candidates.push_back(f);
  }
  if (!policy.autotune) {
    for (WeightFormat f : {WeightFormat::rows4, WeightFormat::cols4})
      if (std::count(candidates.begin(), candidates.end(), f) && kernels::fill_ratio(w, rows, cols, f) <= kMaxUntimedBlockFill)
        return f;
    return density <= kernels::kSparseBelowDensity ? WeightFormat::csr : WeightFormat::dense;
  }
  WeightFormat best = candidates[0];
  double best_time = 1e30;
  for (WeightFormat f : candidates) {
    const double t = time_of(f);
    if (t < best_time) best_time = t, best = f;
  }
  return best;
}

}  // namespace neurite::engine::detail
