// The one blocked matrix transpose: sparse linear ops and the engine turn
// row-major activations into feature-major ones (the batch contiguous) with it.
#pragma once

#include <cstdint>

namespace neurite::kernels {

// dst (cols, rows) = src (rows, cols)ᵀ with leading dimensions lds and ldd,
// in parallel on oneTBB. `along_src` walks tiles along src's rows: pass true
// when src's leading dimension is the power-of-two one.
void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd, bool along_src);

}  // namespace neurite::kernels
