// neurite/parallel.h — the one global thread setting.
//
//   neurite::set_num_threads(2);   // every kernel, oneTBB and oneDNN alike
//
// Neurite runs its own loops on oneTBB and its dense GEMM on oneDNN; both obey
// this setting. Eigen's own threads are kept off.
//
// Programs of your own: start them with OMP_WAIT_POLICY=passive, as the
// `neurite` command does for itself. oneDNN's OpenMP threads otherwise spin
// after each call and take the cores from oneTBB's workers (1.6x on a
// 90 %-sparse training step, bench/RESULTS.md).
#pragma once

namespace neurite {

// Sets the number of threads every kernel may use; n <= 0 means all cores.
// Throws ValueError for n larger than 1024.
void set_num_threads(int n);

// The number of threads kernels use now (all cores until set_num_threads).
int num_threads();

}  // namespace neurite
