// Dispatch of the sparse kernels by instruction set, and their reference twin.
#include "neurite/kernels/sparse.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "neurite/error.h"

namespace neurite::kernels {

#define NEURITE_DECLARE_ISA(ns)                                                                                     \
  namespace ns {                                                                                                    \
  void spmm_entry(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0,      \
                  int64_t rb1, int64_t p0, int64_t p1);                                                             \
  void sddmm_entry(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0, \
                   int64_t rb1, int64_t p0, int64_t p1);                                                            \
  }
NEURITE_DECLARE_ISA(avx2)
NEURITE_DECLARE_ISA(avx512)
#undef NEURITE_DECLARE_ISA

namespace reference {
// Plain loops over elements, the twin tests hold the vector kernels to.
void spmm_entry(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0,
                int64_t rb1, int64_t p0, int64_t p1) {
  const int br = a.block_rows, bc = a.block_cols;
  for (int64_t rb = rb0; rb < rb1; ++rb)
    for (int r = 0; r < br; ++r) {
      float* out = y + (rb * br + r) * ldy;
      for (int64_t p = p0; p < p1; ++p) out[p] = 0;
      for (int64_t e = a.row_ptr[rb]; e < a.row_ptr[rb + 1]; ++e)
        for (int c = 0; c < bc; ++c) {
          const float w = values[a.value_at[e] + r * bc + c];
          const float* src = b.base + b.offset[a.col[e * bc + c]];
          for (int64_t p = p0; p < p1; ++p) out[p] += w * src[p];
        }
    }
}
void sddmm_entry(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0,
                 int64_t rb1, int64_t p0, int64_t p1) {
  const int br = a.block_rows, bc = a.block_cols;
  for (int64_t rb = rb0; rb < rb1; ++rb)
    for (int64_t e = a.row_ptr[rb]; e < a.row_ptr[rb + 1]; ++e)
      for (int r = 0; r < br; ++r)
        for (int c = 0; c < bc; ++c) {
          const float* d = dy + (rb * br + r) * lddy;
          const float* src = b.base + b.offset[a.col[e * bc + c]];
          float s = 0;
          for (int64_t p = p0; p < p1; ++p) s += d[p] * src[p];
          dvalues[a.value_at[e] + r * bc + c] += s;
        }
}
}  // namespace reference

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::reference: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::reference: return "reference";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa best_isa() {
  static const Isa best = isa_supported(Isa::avx512) ? Isa::avx512 : isa_supported(Isa::avx2) ? Isa::avx2 : Isa::reference;
  return best;
}

KernelPolicy policy_from_environment() {
  KernelPolicy policy;
  if (const char* env = std::getenv("NEURITE_SPARSE_KERNELS")) {
    const std::string v = env;
    check(v == "auto" || v == "always" || v == "never", "NEURITE_SPARSE_KERNELS={}: expected auto, always or never", v);
    policy.sparse = v == "always" ? SparseKernels::always : v == "never" ? SparseKernels::never : SparseKernels::automatic;
  }
  if (const char* env = std::getenv("NEURITE_ISA")) {
    for (Isa isa : {Isa::reference, Isa::avx2, Isa::avx512})
      if (std::strcmp(env, isa_name(isa)) == 0) policy.isa = isa;
    check(policy.isa.has_value(), "NEURITE_ISA={}: expected reference, avx2 or avx512", env);
    check(isa_supported(*policy.isa), "NEURITE_ISA={}: this CPU does not support it", env);
  }
  if (const char* env = std::getenv("NEURITE_DETERMINISTIC")) {
    const std::string v = env;
    check(v == "0" || v == "1", "NEURITE_DETERMINISTIC={}: expected 0 or 1", v);
    policy.autotune = v == "0";
  }
  return policy;
}

void spmm(const BlockSparse& a, const float* values, DenseRows b, float* y, int64_t ldy, int64_t rb0, int64_t rb1,
          int64_t p0, int64_t p1, Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512::spmm_entry(a, values, b, y, ldy, rb0, rb1, p0, p1);
    case Isa::avx2: return avx2::spmm_entry(a, values, b, y, ldy, rb0, rb1, p0, p1);
    case Isa::reference: return reference::spmm_entry(a, values, b, y, ldy, rb0, rb1, p0, p1);
  }
}

void sddmm(const BlockSparse& a, const float* dy, int64_t lddy, DenseRows b, float* dvalues, int64_t rb0, int64_t rb1,
           int64_t p0, int64_t p1, Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512::sddmm_entry(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
    case Isa::avx2: return avx2::sddmm_entry(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
    case Isa::reference: return reference::sddmm_entry(a, dy, lddy, b, dvalues, rb0, rb1, p0, p1);
  }
}

}  // namespace neurite::kernels
