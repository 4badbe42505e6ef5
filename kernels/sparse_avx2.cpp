// The sparse kernels for AVX2 + FMA: 8 floats a vector, 16 registers; built with -mavx2 -mfma.
#define NEURITE_ISA_NAMESPACE avx2
#define NEURITE_ISA_BYTES 32
#define NEURITE_ISA_TILE_CSR 8
#define NEURITE_ISA_TILE_ROWS4 2
#include "kernels/sparse_kernels.inl"
