// Which form each weight of a compiled graph is packed in.
#pragma once

#include <functional>
#include <optional>

#include "neurite/kernels/sparse.h"

namespace neurite::engine::detail {

using kernels::WeightFormat;

struct WeightPolicy {
  std::optional<WeightFormat> forced;  // one form for every weight
  bool autotune = true;                // time the candidates; else decide by density and block fill
};

// The form of a (rows, cols) weight w. Measuring, it times the candidates
// with time_of(format) (seconds on the layer's own shape) and keeps the
// fastest (autotune); the candidates are CSR, dense, and the block forms whose zero fill
// is small — or only dense and full 4x1 blocks for a weight above
// kernels::kDenseAboveDensity (our kernel over full 4x1 blocks beat oneDNN on
// thin layers such as a first convolution of one input channel).
WeightFormat choose_weight_format(const float* w, int64_t rows, int64_t cols, const WeightPolicy& policy,
                                  const std::function<double(WeightFormat)>& time_of);

}  // namespace neurite::engine::detail
