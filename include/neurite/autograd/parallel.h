// neurite/autograd/parallel.h — the one global thread setting.
//
//   neurite::set_num_threads(2);   // every kernel, oneTBB and oneDNN alike
//
// Neurite runs its own loops on oneTBB and its dense GEMM on oneDNN; both obey
// this setting. Eigen's own threads are kept off.
#pragma once

namespace neurite {

// Sets the number of threads every kernel may use; n <= 0 means all cores.
// Throws ValueError for n larger than 1024.
void set_num_threads(int n);

// The number of threads kernels use now (all cores until set_num_threads).
int num_threads();

}  // namespace neurite
