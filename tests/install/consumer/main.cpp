// Builds a zoo model, takes one SGD step and prints the loss.
#include <neurite/autograd/ops.h>
#include <neurite/layers/models.h>
#include <neurite/optim/optimizer.h>

#include <cstdio>

int main() {
  using namespace neurite;
  auto model = layers::models::make_model("cnn", {.image_size = 12, .num_classes = 3});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1}});
  const auto x = autograd::Tensor::randn({4, 1, 12, 12}, 1);
  const auto y = autograd::Tensor::from_data({4}, std::vector<int64_t>{0, 1, 2, 1});
  autograd::Variable loss = autograd::cross_entropy(model->forward(autograd::Variable(x)), y);
  loss.backward();
  sgd.step();
  std::printf("consumer: loss %.4f\n", loss.data().item());
  return 0;
}
