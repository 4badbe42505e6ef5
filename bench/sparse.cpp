// Sparse against dense masked kernels, forward + backward (dX and dW), on the
// layer shapes of the bench-train models, across densities: median ms sparse
// and dense, their ratio, and the sparse kernels' effective GFLOP/s
// (2 · nnz · pixels per product, three products). Prints a table per layer
// with the crossover (the highest density measured where sparse wins), or
// with --json one JSON line per measurement.
//   build/bench/bench_sparse [--threads 2] [--repeats 7] [--json] [--only transformer]
#include <fmt/format.h>
#include <neurite/parallel.h>
#include <neurite/autograd/sparse.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace neurite::autograd;
namespace kernels = neurite::kernels;

namespace {

Tensor random_mask(const Shape& shape, double density, kernels::WeightFormat format, uint64_t seed) {
  const int br = format == kernels::WeightFormat::rows4 ? 4 : 1, bc = format == kernels::WeightFormat::cols4 ? 4 : 1;
  const int64_t rows = shape[0], cols = numel(shape) / rows;
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution keep(density);
  Tensor m = Tensor::zeros(shape);
  for (int64_t r0 = 0; r0 < rows; r0 += br)
    for (int64_t c0 = 0; c0 < cols; c0 += bc)
      if (keep(rng))
        for (int r = 0; r < br; ++r)
          for (int c = 0; c < bc; ++c) m.data<float>()[(r0 + r) * cols + c0 + c] = 1;
  return m;
}

double median_ms(const std::function<void()>& step, int repeats) {
  std::vector<double> ms;
  for (int r = 0; r < repeats + 2; ++r) {
    const auto s = std::chrono::steady_clock::now();
    step();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
    if (r >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct Layer {
  std::string name;
  Shape x, w;
  bool conv;
  Conv2dOptions o;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeats = 7;
  bool json = false;
  std::string only;  // run the layers whose name contains this
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--json") json = true;
    else if (flag == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (flag == "--repeats" && i + 1 < argc) repeats = std::atoi(argv[++i]);
    else if (flag == "--only" && i + 1 < argc) only = argv[++i];
  }
  neurite::set_num_threads(threads);
  neurite::keep_freed_memory();  // as the neurite command does
  const Conv2dOptions same{.pad_h = 1, .pad_w = 1}, down{.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
  const std::vector<Layer> layers = {
      {"mlp fc 784->1024, batch 256", {256, 784}, {1024, 784}, false, {}},
      {"mlp fc 1024->1024, batch 256", {256, 1024}, {1024, 1024}, false, {}},
      {"transformer ffn 256->1024, 32x128 tokens", {4096, 256}, {1024, 256}, false, {}},
      {"transformer ffn 1024->256, 32x128 tokens", {4096, 1024}, {256, 1024}, false, {}},
      {"resnet20 conv 16->16 32x32, batch 128", {128, 16, 32, 32}, {16, 16, 3, 3}, true, same},
      {"resnet20 conv 32->32 16x16, batch 128", {128, 32, 16, 16}, {32, 32, 3, 3}, true, same},
      {"resnet20 conv 64->64 8x8, batch 128", {128, 64, 8, 8}, {64, 64, 3, 3}, true, same},
      {"resnet20 conv 16->32 stride 2, batch 128", {128, 16, 32, 32}, {32, 16, 3, 3}, true, down},
  };
  if (!json)
    fmt::print("sparse (forward + dX + dW) against dense masked kernels, {} threads, median of {}\n"
               "{:<44}{:>7}{:>11}{:>10}{:>10}{:>10}{:>10}\n",
               threads, repeats, "layer", "format", "crossover", "x at 50%", "x at 10%", "x at 2%", "GF/s 10%");
  for (const Layer& l : layers)
    for (kernels::WeightFormat format : {kernels::WeightFormat::csr, kernels::WeightFormat::rows4}) {
      if (l.name.find(only) == std::string::npos) continue;
      double crossover = 0, at50 = 0, at10 = 0, at2 = 0, gf10 = 0;
      for (double density : {0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02}) {
        const Tensor mask = random_mask(l.w, density, format, 1);
        Variable x(Tensor::randn(l.x, 2), true), w(Tensor::randn(l.w, 3, 0, 0.1f), true);
        auto form = l.conv ? SparseWeight::conv2d(mask, l.o, format) : SparseWeight::linear(mask, format);
        Variable values(form->gather(w.data()), true);
        auto run = [&](bool sparse) {
          return [&, sparse] {
            Variable y = sparse ? (l.conv ? sparse_conv2d(x, form, values) : sparse_linear(x, form, values))
                                : (l.conv ? conv2d(x, w, {}, l.o) : linear(x, w));
            y.backward(Tensor::ones(y.shape()));
            x.zero_grad();
            w.zero_grad();
            values.zero_grad();
          };
        };
        const double sparse_ms = median_ms(run(true), repeats), dense_ms = median_ms(run(false), repeats);
        // Pixels each weight meets: batch for a linear layer, batch x output pixels for a convolution.
        const int64_t pixels = l.conv ? l.x[0] * (l.x[2] / l.o.stride_h) * (l.x[3] / l.o.stride_w) : l.x[0];
        const double gflops = 3.0 * 2.0 * static_cast<double>(form->nnz()) * static_cast<double>(pixels) / 1e9 /
                              (sparse_ms / 1e3);
        const double speedup = dense_ms / sparse_ms;
        if (speedup > 1) crossover = std::max(crossover, density);
        if (density == 0.5) at50 = speedup;
        if (density == 0.1) at10 = speedup, gf10 = gflops;
        if (density == 0.02) at2 = speedup;
        if (json)
          fmt::print(R"({{"layer": "{}", "format": "{}", "density": {:.3f}, "sparse_ms": {:.3f}, "dense_ms": {:.3f}, )"
                     R"("speedup": {:.2f}, "sparse_gflops": {:.1f}, "threads": {}}})"
                     "\n",
                     l.name, to_string(format), form->density(), sparse_ms, dense_ms, speedup, gflops, threads);
        std::fflush(stdout);
      }
      if (!json)
        fmt::print("{:<44}{:>7}{:>10.0f}%{:>10.2f}{:>10.2f}{:>10.2f}{:>10.1f}\n", l.name, to_string(format),
                   100 * crossover, at50, at10, at2, gf10);
    }
}
