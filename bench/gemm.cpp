// GEMM GFLOP/s of Neurite's kernel (oneDNN sgemm) and of Eigen, the
// alternative it was chosen over, on the same shapes and threads.
//   build/bench/bench_gemm [--repeats N]
#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "neurite/kernels/gemm.h"
#include "neurite/parallel.h"
#include "neurite/autograd/tensor.h"

using neurite::autograd::Tensor;
namespace k = neurite::kernels;

template <typename F>
double median_seconds(int repeats, F f) {
  f();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto s = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  int repeats = 15;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  fmt::print("{:>16} {:>8} {:>14} {:>14} {:>8}\n", "M x N x K", "threads", "neurite GF/s", "eigen GF/s", "ratio");
  for (auto [m, n, kk] : std::vector<std::array<int64_t, 3>>{{1024, 1024, 1024}, {512, 1024, 2304}, {512, 2304, 1024}})
    for (int threads : {1, 2}) {
      neurite::set_num_threads(threads);
      Eigen::setNbThreads(threads);
      const Tensor a = Tensor::randn({m, kk}, 1), b = Tensor::randn({kk, n}, 2);
      Tensor c = Tensor::empty({m, n});
      const double flop = 2.0 * m * n * kk;
      const double ours = flop / median_seconds(repeats, [&] {
        k::gemm({m, n, kk}, 1.0f, a.data<float>(), kk, b.data<float>(), n, 0.0f, c.data<float>(), n, threads);
      }) / 1e9;
      Eigen::Map<const RowMajor> ea(a.data<float>(), m, kk), eb(b.data<float>(), kk, n);
      Eigen::Map<RowMajor> ec(c.data<float>(), m, n);
      const double eigen = flop / median_seconds(repeats, [&] { ec.noalias() = ea * eb; }) / 1e9;
      fmt::print("{:>16} {:>8} {:>14.1f} {:>14.1f} {:>8.2f}\n", fmt::format("{}x{}x{}", m, n, kk), threads, ours, eigen,
                 ours / eigen);
    }
}
