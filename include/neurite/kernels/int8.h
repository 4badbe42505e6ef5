// neurite/kernels/int8.h — 8-bit products: int8 weights times uint8
// activations with int32 sums, the arithmetic of QDQ models' convolutions and
// linear layers (y = x_scale · w_scale · Σ (x_q - x_zero) · w_q).
//
// The weight (rows, cols) is held in groups of four consecutive columns (1x4
// blocks along the reduction), only the groups holding a non-zero: a dense
// weight keeps them all, a 1x4-block-pruned one its blocks, an unstructured
// one every group a kept weight falls in. Four is what one VNNI instruction
// (vpdpbusd) sums per 32-bit lane.
//
// The activations are quads: four consecutive features of one item in four
// bytes, items contiguous (x4[((k / 4) · ld + m) · 4 + k % 4]), so a group
// times 16 items is one vpdpbusd.
//
//   kernels::Int8Groups w = kernels::pack_int8_groups(weight_q, rows, cols);
//   kernels::to_quads(x, items, cols, grid, x4, ld);
//   kernels::int8_gemm(w, x4, kernels::quad_offsets(cols, ld).data(), ld, acc, 0, w.rows, kernels::best_isa());
#pragma once

#include <cstdint>
#include <vector>

#include "neurite/kernels/policy.h"
#include "neurite/kernels/quantize.h"
#include "neurite/kernels/rows.h"

namespace neurite::kernels {

struct Int8Groups {
  int64_t rows = 0, cols = 0;      // the weight's (N, K)
  std::vector<int64_t> row_start;  // rows + 1: each row's first group
  std::vector<int32_t> quad;       // per group: its first column / 4
  std::vector<int32_t> weights;    // per group: its four int8 weights, column order, in one int32
  std::vector<int32_t> row_sum;    // per row: the sum of its weights (the zero point's correction)

  int64_t groups() const { return static_cast<int64_t>(quad.size()); }
  double density() const;  // groups held of all groups
};

// `w` (rows, cols) row-major int8.
Int8Groups pack_int8_groups(const int8_t* w, int64_t rows, int64_t cols);

// Fewer items than one vector leave lanes idle: measured on the MLP, INT8
// loses to float below this many rows (bench/RESULTS.md), so the engine
// keeps such layers float.
constexpr int64_t kInt8MinItems = 16;
// Past this many quads a sum could leave int32 (each quad adds at most
// 4 · 255 · 128): longer products stay float.
constexpr int64_t kInt8MaxQuads = 16384;

// What moves a grid's values and zero point into uint8 (vpdpbusd's unsigned
// operand): 128 for an int8 grid (its zero point or range below 0, also
// after a Clip narrowed the range), else 0.
inline int32_t uint8_shift(const QuantGrid& g) { return g.qmin < 0 || g.zero_point < 0 ? 128 : 0; }

// Items of a quad buffer: at least `items`, whole vectors of 16.
int64_t quad_ld(int64_t items);
// x (items, cols) float, row-major, quantised on `grid` and shifted to uint8
// (an int8 grid's values + 128), into items [0, items) of quads x4
// (ceil(cols / 4), ld, 4), the columns past `cols` zero; items past `items`
// are left as they are (a caller zeroes them, or fills them by another call
// at x4 + items * 4). Returns the zero point of the uint8 values.
int32_t to_quads(const float* x, int64_t items, int64_t cols, const QuantGrid& grid, uint8_t* x4, int64_t ld);

// acc[n · items + m] = Σ_k x4(m, k) · w[n][k] for rows n in [n0, n1) and
// items m < `items` (whole vectors of 16), where quad q of item m is the four
// bytes at x4 + (quad_offset[q] + m) · 4: q · ld for a quad buffer; a
// channel quad's padded plane shifted by a tap for a convolution, which then
// needs no copies of its input. Exact int32 sums, as every ISA computes them;
// avx512 runs VNNI where the CPU has it, else the avx2 kernel.
void int8_gemm(const Int8Groups& w, const uint8_t* x4, const int64_t* quad_offset, int64_t items, int32_t* acc, int64_t n0,
               int64_t n1, Isa isa);
// The float epilogue of one output feature's sums, row by row:
// to[r · cols + c] = act(scale · (sums[r · ld + c] - correction) + bias (+ residual[r · cols + c]))
// for r < rows, c < cols; a convolution's sums have ld >= cols (its phase
// planes' width), the columns past cols computed and dropped. residual may be
// null. The avx512 kernel masks each row's last vector, so rows of 8 or 32
// cost no scalar tail.
void int8_epilogue(const int32_t* sums, int64_t rows, int64_t cols, int64_t ld, float scale, int32_t correction, float bias,
                   const float* residual, Activation activation, float* to, Isa isa);
// The float epilogue of a block of features' sums, transposed into rows:
// out[m · ldo + f] = act(scale[f] · (sums[f · ld + m] - correction[f]) + bias[f]
// (+ residual[m · ldr + f])) for f < features, m < rows; bias and residual may
// be null; ld whole vectors of 16 (int8_gemm's sums). One pass: the avx512
// kernel transposes 16 x 16 tiles of sums in registers, so each output row
// is written once, contiguously.
void int8_epilogue_rows(const int32_t* sums, int64_t ld, int64_t features, int64_t rows, const float* scale,
                        const int32_t* correction, const float* bias, const float* residual, int64_t ldr,
                        Activation activation, float* out, int64_t ldo, Isa isa);
// The offsets of a quad buffer's quads: q · ld.
std::vector<int64_t> quad_offsets(int64_t cols, int64_t ld);

// Whether this CPU has AVX-512 VNNI (vpdpbusd).
bool has_vnni();

}  // namespace neurite::kernels
