// neurite/parallel.h — the process settings a program makes once: the one
// global thread setting, and the allocator's.
//
//   int main(int argc, char** argv) {
//     neurite::init(argv);           // the OpenMP wait policy and the allocator, as the CLI sets them
//     neurite::set_num_threads(2);   // every kernel, oneTBB and oneDNN alike
//
// Neurite runs its own loops on oneTBB and its dense GEMM on oneDNN; both obey
// this setting. Eigen's own threads are kept off.
//
// Programs of your own: call init(argv) first thing in main, as the `neurite`
// command does. oneDNN's OpenMP threads otherwise spin after each call and
// take the cores from oneTBB's workers (1.6x on a 90 %-sparse training step,
// bench/RESULTS.md).
#pragma once

namespace neurite {

// Sets the number of threads every kernel may use; n <= 0 means all cores.
// Throws ValueError for n larger than 1024.
void set_num_threads(int n);

// The number of threads kernels use now (all cores until set_num_threads).
int num_threads();

// Keeps memory the program frees in its heap instead of handing it back to
// the kernel: glibc returns blocks above its mmap threshold on free, so a
// training step that frees and re-allocates its activations page-faults on
// all of them again (2x on a conv backward, bench/conv.cpp). Peak memory is
// unchanged. The `neurite` command calls it; the library never does.
void keep_freed_memory();

// The process settings Neurite runs best with, for main() to call first:
// OpenMP's threads wait passively (libgomp reads OMP_WAIT_POLICY only when it
// loads, so when the variable is unset the program starts again with it set,
// from /proc/self/exe with the same `argv`; a program that set it keeps its
// choice), and keep_freed_memory().
void init(char** argv);

}  // namespace neurite
