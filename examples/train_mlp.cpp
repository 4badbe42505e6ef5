// Train an MLP on Fashion-MNIST, written against Neurite's public headers:
// a data loader, a model from the zoo, SGD with momentum, and the loop.
//
//   build/examples/train_mlp [epochs]
#include <neurite/autograd/ops.h>
#include <neurite/parallel.h>
#include <neurite/data/loader.h>
#include <neurite/data/readers.h>
#include <neurite/layers/init.h>
#include <neurite/layers/models.h>
#include <neurite/optim/optimizer.h>
#include <neurite/train/trainer.h>

#include <cstdio>
#include <cstdlib>

using namespace neurite;
using autograd::Variable;

int main(int argc, char** argv) {
  init(argv);          // OpenMP's threads wait passively; freed memory stays in the heap
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 3;
  set_num_threads(0);  // all cores
  layers::manual_seed(0);

  const data::DataSplits fashion = data::open_data("fashion-mnist");  // Debian's dataset-fashion-mnist
  data::DataLoader loader(fashion.train, {.batch_size = 128, .shuffle = true, .seed = 0});
  auto model = layers::models::make_model("mlp");  // 784-1024-1024-10
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.05, .weight_decay = 5e-4}}, {.momentum = 0.9});

  for (int epoch = 0; epoch < epochs; ++epoch) {
    model->train();
    auto batches = loader.epoch(epoch);
    while (auto batch = batches.next()) {
      Variable loss = autograd::cross_entropy(model->forward(Variable(batch->inputs)), batch->targets);
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    }
    const train::Evaluation test = train::evaluate(*model, *fashion.test);
    std::printf("epoch %d: test top-1 %.2f%%, loss %.4f\n", epoch + 1, 100 * test.top1, test.loss);
  }
  return 0;
}
