// The sparse kernels, written once over a vector type. Each ISA's .cpp file
// defines its parameters and includes this under its own compiler flags:
//   NEURITE_ISA_NAMESPACE   the namespace of its entry points (avx2, avx512)
//   NEURITE_ISA_TILE_CSR    output tile of CSR and 1x4, in vectors
//   NEURITE_ISA_TILE_ROWS4  output tile of each of the four rows of 4x1, in vectors
// and, before the include, in that namespace: Vector (a GCC vector extension
// type of the ISA's width), load_first(p, n) and store_first(p, v, n): the
// first n lanes of a vector, by the ISA's masked moves (which never touch the
// lanes masked off, so a row's last pixels cost one masked pass over the
// sparse row, not one scalar pass per pixel).
//
// spmm keeps a tile of block_rows x NV vectors of the output in registers
// across a whole sparse row: per column entry it loads NV vectors of the
// dense row once and issues block_rows broadcast-FMAs on each.
#include <cstring>

#include "neurite/kernels/sparse.h"

namespace neurite::kernels::NEURITE_ISA_NAMESPACE {

template <typename V>
constexpr int lanes = sizeof(V) / sizeof(float);

template <typename V>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
inline void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}
template <typename V>
inline float lane_sum(const V& v) {
  if constexpr (lanes<V> == 1) {
    return v;
  } else {
    float s = 0;
    for (int i = 0; i < lanes<V>; ++i) s += v[i];
    return s;
  }
}

// One output tile: rows of row block rb, pixels [p, p + NV * lanes), or the
// first `partial` pixels of one vector when partial > 0.
template <typename V, int BR, int BC, int NV>
inline void spmm_tile(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb,
                      int64_t p, int partial = 0) {
  constexpr int L = lanes<V>;
  V acc[BR][NV];
  for (int r = 0; r < BR; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = V{};
  const int32_t* col = a.col.data() + a.row_ptr[rb] * BC;
  for (int64_t e = a.row_ptr[rb]; e < a.row_ptr[rb + 1]; ++e, col += BC) {
    const float* v = values + a.value_at[e];
    for (int c = 0; c < BC; ++c) {
      const float* src = b.base + b.offset[col[c]] + p;
      V x[NV];
      if (partial > 0) {
        x[0] = load_first(src, partial);
      } else {
        for (int j = 0; j < NV; ++j) x[j] = load<V>(src + j * L);
      }
      for (int r = 0; r < BR; ++r) {
        const float w = v[r * BC + c];
        for (int j = 0; j < NV; ++j) acc[r][j] += w * x[j];
      }
    }
  }
  for (int r = 0; r < BR; ++r) {
    float* out = y + (rb * BR + r) * ldy + p;
    if (partial > 0) {
      store_first(out, acc[r][0], partial);
    } else {
      for (int j = 0; j < NV; ++j) store(out + j * L, acc[r][j]);
    }
  }
}

template <typename V, int BR, int BC, int NV>
void spmm_blocks(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0,
                 int64_t rb1, int64_t p0, int64_t p1) {
  constexpr int64_t L = lanes<V>, T = NV * L;
  for (int64_t rb = rb0; rb < rb1; ++rb) {
    int64_t p = p0;
    for (; p + T <= p1; p += T) spmm_tile<V, BR, BC, NV>(a, values, b, y, ldy, rb, p);
    // Shorter rows (a batch of 64, an 8x8 image) still take wide tiles: each
    // pass over the sparse row costs its index loads once per tile.
    if constexpr (NV >= 4)
      for (; p + T / 2 <= p1; p += T / 2) spmm_tile<V, BR, BC, NV / 2>(a, values, b, y, ldy, rb, p);
    if constexpr (NV >= 2)
      for (; p + 2 * L <= p1; p += 2 * L) spmm_tile<V, BR, BC, 2>(a, values, b, y, ldy, rb, p);
    for (; p + L <= p1; p += L) spmm_tile<V, BR, BC, 1>(a, values, b, y, ldy, rb, p);
    if (p < p1) spmm_tile<V, BR, BC, 1>(a, values, b, y, ldy, rb, p, static_cast<int>(p1 - p));
  }
}

// G blocks of one block row at a time share each load of dy.
template <typename V, int BR, int BC, int G>
inline void sddmm_group(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb,
                        int64_t e, int64_t p0, int64_t p1) {
  constexpr int64_t L = lanes<V>;
  V acc[G][BR][BC];
  float tail[G][BR][BC] = {};
  for (int g = 0; g < G; ++g)
    for (int r = 0; r < BR; ++r)
      for (int c = 0; c < BC; ++c) acc[g][r][c] = V{};
  const float* src[G][BC];
  for (int g = 0; g < G; ++g)
    for (int c = 0; c < BC; ++c) src[g][c] = b.base + b.offset[a.col[(e + g) * BC + c]];
  const float* d = dy + rb * BR * lddy;
  int64_t p = p0;
  for (; p + L <= p1; p += L) {
    V dv[BR];
    for (int r = 0; r < BR; ++r) dv[r] = load<V>(d + r * lddy + p);
    for (int g = 0; g < G; ++g)
      for (int c = 0; c < BC; ++c) {
        const V x = load<V>(src[g][c] + p);
        for (int r = 0; r < BR; ++r) acc[g][r][c] += dv[r] * x;
      }
  }
  for (; p < p1; ++p)
    for (int g = 0; g < G; ++g)
      for (int c = 0; c < BC; ++c)
        for (int r = 0; r < BR; ++r) tail[g][r][c] += d[r * lddy + p] * src[g][c][p];
  for (int g = 0; g < G; ++g) {
    float* out = dvalues + a.value_at[e + g];
    for (int r = 0; r < BR; ++r)
      for (int c = 0; c < BC; ++c) out[r * BC + c] += lane_sum(acc[g][r][c]) + tail[g][r][c];
  }
}

template <typename V, int BR, int BC, int G>
void sddmm_blocks(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0,
                  int64_t rb1, int64_t p0, int64_t p1) {
  for (int64_t rb = rb0; rb < rb1; ++rb) {
    int64_t e = a.row_ptr[rb];
    for (; e + G <= a.row_ptr[rb + 1]; e += G) sddmm_group<V, BR, BC, G>(a, dy, lddy, b, dvalues, rb, e, p0, p1);
    for (; e < a.row_ptr[rb + 1]; ++e) sddmm_group<V, BR, BC, 1>(a, dy, lddy, b, dvalues, rb, e, p0, p1);
  }
}

// Register budgets: an output tile of 8 vectors for CSR and 1x4, 4 rows of
// NV4 vectors for 4x1, leaving registers for the loads and the broadcast.
template <typename V, int NV1, int NV4>
void spmm(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0, int64_t rb1,
          int64_t p0, int64_t p1) {
  if (a.block_rows == 4) return spmm_blocks<V, 4, 1, NV4>(a, values, b, y, ldy, rb0, rb1, p0, p1);
  if (a.block_cols == 4) return spmm_blocks<V, 1, 4, NV1>(a, values, b, y, ldy, rb0, rb1, p0, p1);
  spmm_blocks<V, 1, 1, NV1>(a, values, b, y, ldy, rb0, rb1, p0, p1);
}

template <typename V>
void sddmm(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0,
           int64_t rb1, int64_t p0, int64_t p1) {
  if (a.block_rows == 4) return sddmm_blocks<V, 4, 1, 2>(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
  if (a.block_cols == 4) return sddmm_blocks<V, 1, 4, 1>(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
  sddmm_blocks<V, 1, 1, 4>(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
}

void spmm_entry(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0,
                int64_t rb1, int64_t p0, int64_t p1) {
  spmm<Vector, NEURITE_ISA_TILE_CSR, NEURITE_ISA_TILE_ROWS4>(a, values, b, y, ldy, rb0, rb1, p0, p1);
}
void sddmm_entry(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0,
                 int64_t rb1, int64_t p0, int64_t p1) {
  sddmm<Vector>(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
}

}  // namespace neurite::kernels::NEURITE_ISA_NAMESPACE
