// The sparse kernels for AVX-512: 16 floats a vector, 32 registers; built
// with -mavx512f -mavx512vl -mfma.
#define NEURITE_ISA_NAMESPACE avx512
#define NEURITE_ISA_BYTES 64
#define NEURITE_ISA_TILE_CSR 8
#define NEURITE_ISA_TILE_ROWS4 4
#include "kernels/sparse_kernels.inl"
