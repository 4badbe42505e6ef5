// The machine's float32 FMA peak per core: ten independent 8-wide FMA chains
// (enough to cover the FMA latency on two pipes), so the GEMM figures of
// bench_gemm can be read as a fraction of what the core can do.
#include <immintrin.h>

#include <chrono>
#include <cstdio>

__attribute__((target("avx2,fma"))) static float fma_loop(long iterations) {
  __m256 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long n = 0; n < iterations; ++n)
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 sum = acc[0];
  for (int i = 1; i < 10; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  return out[0];
}

int main() {
  const long iterations = 200'000'000;
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    volatile float sink = fma_loop(iterations);
    (void)sink;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * 8 * 10 * iterations / s / 1e9);
  }
  std::printf("AVX2 FMA peak, 1 thread: %.1f GFLOP/s\n", best);
  return 0;
}
