#include "neurite/kernels/int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace neurite::kernels {

namespace avx512 {
void int8_gemm_entry(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc,
                     int64_t n0, int64_t n1);
void int8_epilogue_entry(const int32_t* sums, int64_t rows, int64_t cols, int64_t ld, float scale, int32_t correction,
                         float bias, const float* residual, Activation activation, float* to);
void int8_epilogue_rows_entry(const int32_t* sums, int64_t ld, int64_t features, int64_t rows, const float* scale,
                              const int32_t* correction, const float* bias, const float* residual, int64_t ldr,
                              Activation activation, float* out, int64_t ldo);
}
namespace avx2 {
void int8_gemm_entry(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc,
                     int64_t n0, int64_t n1);
}

double Int8Groups::density() const {
  const int64_t all = rows * ((cols + 3) / 4);
  return all == 0 ? 0.0 : static_cast<double>(groups()) / static_cast<double>(all);
}

Int8Groups pack_int8_groups(const int8_t* w, int64_t rows, int64_t cols) {
  Int8Groups g;
  g.rows = rows;
  g.cols = cols;
  g.row_start.assign(1, 0);
  for (int64_t n = 0; n < rows; ++n) {
    int32_t sum = 0;
    for (int64_t q = 0; q * 4 < cols; ++q) {
      int8_t four[4] = {0, 0, 0, 0};
      bool kept = false;
      for (int64_t j = 0; j < 4 && q * 4 + j < cols; ++j) {
        four[j] = w[n * cols + q * 4 + j];
        kept = kept || four[j] != 0;
        sum += four[j];
      }
      if (!kept) continue;
      int32_t packed;
      std::memcpy(&packed, four, 4);
      g.quad.push_back(static_cast<int32_t>(q));
      g.weights.push_back(packed);
    }
    g.row_sum.push_back(sum);
    g.row_start.push_back(g.groups());
  }
  return g;
}

int64_t quad_ld(int64_t items) { return (items + 15) / 16 * 16; }

int32_t to_quads(const float* x, int64_t items, int64_t cols, const QuantGrid& grid, uint8_t* x4, int64_t ld) {
  // An int8 grid moved up by 128: the same steps in uint8, so that the
  // activations are vpdpbusd's unsigned operand.
  const int32_t shift = uint8_shift(grid);
  const float inverse = 1.0f / grid.scale, zp = static_cast<float>(grid.zero_point + shift);
  const float lo = static_cast<float>(grid.qmin + shift), hi = static_cast<float>(grid.qmax + shift);
  const int64_t quads = (cols + 3) / 4;
  constexpr int64_t kRun = 256;  // a row is quantised a run of columns at a time (a vectorised loop), then dealt out as words
  alignas(64) uint8_t run[kRun];
  for (int64_t m = 0; m < items; ++m) {
    const float* row = x + m * cols;
    for (int64_t c0 = 0; c0 < quads * 4; c0 += kRun) {
      const int64_t n = std::min(kRun, cols - c0), padded = std::min(kRun, quads * 4 - c0);
      for (int64_t i = 0; i < n; ++i)
        run[i] = static_cast<uint8_t>(static_cast<int32_t>(grid_value(row[c0 + i], inverse, zp, lo, hi)));
      for (int64_t i = std::max<int64_t>(n, 0); i < padded; ++i) run[i] = 0;
      for (int64_t i = 0; i < padded; i += 4) std::memcpy(x4 + (((c0 + i) / 4) * ld + m) * 4, run + i, 4);
    }
  }
  return grid.zero_point + shift;
}

namespace {

void int8_gemm_reference(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc,
                         int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    int32_t* out = acc + n * items;
    std::fill_n(out, items, 0);
    for (int64_t g = w.row_start[n]; g < w.row_start[n + 1]; ++g) {
      int8_t four[4];
      std::memcpy(four, &w.weights[g], 4);
      const uint8_t* x = x4 + quad_offset[w.quad[g]] * 4;
      for (int64_t m = 0; m < items; ++m)
        for (int j = 0; j < 4; ++j) out[m] += static_cast<int32_t>(x[m * 4 + j]) * four[j];
    }
  }
}

}  // namespace

bool has_vnni() {
  static const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return vnni;
}

void int8_gemm(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc, int64_t n0,
               int64_t n1, Isa isa) {
  if (isa == Isa::avx512 && has_vnni()) return avx512::int8_gemm_entry(w, x4, quad_offset, items, acc, n0, n1);
  if (isa != Isa::reference && isa_supported(Isa::avx2))
    return avx2::int8_gemm_entry(w, x4, quad_offset, items, acc, n0, n1);
  int8_gemm_reference(w, x4, quad_offset, items, acc, n0, n1);
}

void int8_epilogue(const int32_t* sums, int64_t rows, int64_t cols, int64_t ld, float scale, int32_t correction, float bias,
                   const float* residual, Activation activation, float* to, Isa isa) {
  if (isa == Isa::avx512 && isa_supported(Isa::avx512))
    return avx512::int8_epilogue_entry(sums, rows, cols, ld, scale, correction, bias, residual, activation, to);
  const float hi = activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity();
  const float lo = activation == Activation::none ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* from = sums + r * ld;
    const float* res = residual != nullptr ? residual + r * cols : nullptr;
    float* out = to + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      float v = scale * static_cast<float>(from[c] - correction) + bias;
      if (res != nullptr) v += res[c];
      out[c] = std::min(std::max(v, lo), hi);
    }
  }
}

void int8_epilogue_rows(const int32_t* sums, int64_t ld, int64_t features, int64_t rows, const float* scale,
                        const int32_t* correction, const float* bias, const float* residual, int64_t ldr,
                        Activation activation, float* out, int64_t ldo, Isa isa) {
  if (isa == Isa::avx512 && isa_supported(Isa::avx512))
    return avx512::int8_epilogue_rows_entry(sums, ld, features, rows, scale, correction, bias, residual, ldr, activation,
                                            out, ldo);
  const float hi = activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity();
  const float lo = activation == Activation::none ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t f = 0; f < features; ++f) {
      float v = scale[f] * static_cast<float>(sums[f * ld + m] - correction[f]) + (bias != nullptr ? bias[f] : 0.0f);
      if (residual != nullptr) v += residual[m * ldr + f];
      out[m * ldo + f] = std::min(std::max(v, lo), hi);
    }
}

std::vector<int64_t> quad_offsets(int64_t cols, int64_t ld) {
  std::vector<int64_t> out(static_cast<size_t>((cols + 3) / 4));
  for (size_t q = 0; q < out.size(); ++q) out[q] = static_cast<int64_t>(q) * ld;
  return out;
}

}  // namespace neurite::kernels
