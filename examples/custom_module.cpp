// Define your own Module: register parameters and children by name, write
// forward with autograd ops, and train it. Here a small residual MLP learns
// to classify points of two interleaved spirals.
//
//   build/examples/custom_module
#include <neurite/autograd/ops.h>
#include <neurite/layers/init.h>
#include <neurite/layers/layers.h>
#include <neurite/optim/optimizer.h>

#include <cmath>
#include <cstdio>

using namespace neurite;
using autograd::Tensor;
using autograd::Variable;

// x -> relu(fc_in x) -> h + relu(fc_hidden h) (with a learned gain) -> fc_out
class ResidualMlp : public layers::UnaryModule {
 public:
  ResidualMlp(int64_t in, int64_t hidden, int64_t classes)
      : fc_in(register_module("fc_in", std::make_shared<layers::Linear>(in, hidden))),
        fc_hidden(register_module("fc_hidden", std::make_shared<layers::Linear>(hidden, hidden))),
        fc_out(register_module("fc_out", std::make_shared<layers::Linear>(hidden, classes))),
        gain(register_parameter("gain", Tensor::full({1}, 0.5f))) {}

  Variable forward(const Variable& x) override {
    Variable h = autograd::relu(fc_in->forward(x));                    // (N, hidden)
    h = h + gain.value() * autograd::relu(fc_hidden->forward(h));      // broadcast (1) over (N, hidden)
    return fc_out->forward(h);                                         // (N, classes)
  }

  std::shared_ptr<layers::Linear> fc_in, fc_hidden, fc_out;
  layers::Parameter& gain;
};

int main() {
  layers::manual_seed(3);
  const int64_t n = 400;
  Tensor x = Tensor::empty({n, 2}), y = Tensor::empty({n}, autograd::Dtype::i64);
  for (int64_t i = 0; i < n; ++i) {  // two spirals, one per class
    const double t = 0.25 + 3.5 * static_cast<double>(i / 2) / static_cast<double>(n / 2), angle = t * 3.0 + (i % 2) * M_PI;
    x.data<float>()[2 * i] = static_cast<float>(t * std::cos(angle));
    x.data<float>()[2 * i + 1] = static_cast<float>(t * std::sin(angle));
    y.data<int64_t>()[i] = i % 2;
  }
  ResidualMlp model(2, 64, 2);
  for (const auto& [name, p] : model.named_parameters()) std::printf("%-18s %s\n", name.c_str(), autograd::to_string(p->shape()).c_str());
  optim::Adam adam({{.params = model.parameters(), .lr = 0.01}});
  for (int step = 1; step <= 1500; ++step) {
    Variable logits = model.forward(Variable(x));
    Variable loss = autograd::cross_entropy(logits, y);
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step % 300 == 0) {
      int64_t hits = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float* row = logits.data().data<float>() + 2 * i;
        hits += (row[1] > row[0]) == (y.data<int64_t>()[i] == 1);
      }
      std::printf("step %d: loss %.4f, accuracy %.1f%%\n", step, loss.data().item(), 100.0 * hits / n);
    }
  }
  return 0;
}
