// A tour of Neurite's autograd: a two-layer network learns to tell three
// interleaved spirals apart, trained by plain SGD written out by hand, then a
// small convolutional network runs forward and backward on a batch of images.
// Uses only the public headers.
#include <neurite/autograd/ops.h>
#include <neurite/parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>

using namespace neurite::autograd;

namespace {

// Three spirals of `per_class` points each: x (N, 2), y int64 (N).
void make_spirals(int64_t per_class, Tensor& x, Tensor& y) {
  x = Tensor::empty({3 * per_class, 2});
  y = Tensor::empty({3 * per_class}, Dtype::i64);
  const Tensor noise = Tensor::randn({3 * per_class}, 7, 0, 0.15f);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < per_class; ++i) {
      const int64_t n = c * per_class + i;
      const float r = static_cast<float>(i) / per_class;
      const float t = 4.0f * c + 4.0f * r + noise.data<float>()[n];
      x.at<float>({n, 0}) = r * std::sin(t);
      x.at<float>({n, 1}) = r * std::cos(t);
      y.data<int64_t>()[n] = c;
    }
}

void sgd_step(std::vector<Variable>& params, float lr) {
  for (auto& p : params) {
    float* w = p.data().data<float>();
    const float* g = p.grad().data<float>();
    for (int64_t i = 0; i < p.numel(); ++i) w[i] -= lr * g[i];
    p.zero_grad();
  }
}

}  // namespace

int main() {
  neurite::set_num_threads(0);
  std::printf("Neurite autograd tour (%d threads)\n\n", neurite::num_threads());

  Tensor x, y;
  make_spirals(200, x, y);
  std::vector<Variable> params = {
      Variable(Tensor::randn({64, 2}, 1, 0, 0.7f), true), Variable(Tensor::zeros({64}), true),
      Variable(Tensor::randn({3, 64}, 2, 0, 0.12f), true), Variable(Tensor::zeros({3}), true)};
  auto forward = [&](const Variable& in) {
    return linear(relu(linear(in, params[0], params[1])), params[2], params[3]);
  };
  std::printf("1. A 2-64-3 network learns three spirals (%lld points, full-batch SGD):\n",
              static_cast<long long>(x.size(0)));
  for (int step = 0; step <= 2000; ++step) {
    Variable loss = cross_entropy(forward(Variable(x)), y);
    if (step % 500 == 0) std::printf("   step %4d  loss %.4f\n", step, loss.item());
    loss.backward();
    sgd_step(params, 0.5f);
  }
  int64_t correct = 0;
  {
    NoGradGuard no_grad;  // evaluation records no graph
    const Tensor logits = forward(Variable(x)).data();
    for (int64_t n = 0; n < x.size(0); ++n) {
      int64_t best = 0;
      for (int64_t c = 1; c < 3; ++c)
        if (logits.at<float>({n, c}) > logits.at<float>({n, best})) best = c;
      correct += best == y.data<int64_t>()[n];
    }
  }
  std::printf("   training accuracy %.1f %%\n\n", 100.0 * static_cast<double>(correct) / static_cast<double>(x.size(0)));

  std::printf("2. A small CNN (conv-bn-relu-pool x2, linear), one training step on 64 random 3x32x32 images:\n");
  Variable w1(Tensor::randn({16, 3, 3, 3}, 3, 0, 0.2f), true), w2(Tensor::randn({32, 16, 3, 3}, 4, 0, 0.1f), true);
  Variable fc(Tensor::randn({10, 32 * 8 * 8}, 5, 0, 0.02f), true);
  Tensor rm1 = Tensor::zeros({16}), rv1 = Tensor::ones({16}), rm2 = Tensor::zeros({32}), rv2 = Tensor::ones({32});
  const Tensor images = Tensor::randn({64, 3, 32, 32}, 6);
  const Tensor labels = Tensor::randint({64}, 8, 0, 10);
  const Conv2dOptions same{.pad_h = 1, .pad_w = 1};
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    Variable h = relu(batch_norm(conv2d(Variable(images), w1, {}, same), {}, {}, rm1, rv1, {}));
    h = max_pool2d(h, {.kernel_h = 2, .kernel_w = 2});
    h = relu(batch_norm(conv2d(h, w2, {}, same), {}, {}, rm2, rv2, {}));
    h = max_pool2d(h, {.kernel_h = 2, .kernel_w = 2});
    Variable loss = cross_entropy(linear(flatten(h), fc), labels);
    loss.backward();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("   step %d  loss %.4f  %.1f ms  |dL/dw1| = %.4f\n", rep, loss.item(), ms,
                std::sqrt(sum(Variable(w1.grad()) * Variable(w1.grad())).item()));
    w1.zero_grad();
    w2.zero_grad();
    fc.zero_grad();
  }
  return 0;
}
