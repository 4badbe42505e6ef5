// Image classifiers: mlp, cnn, the CIFAR-style ResNets and a MobileNet-style
// network of depthwise-separable blocks.
#include "layers/models/zoo.h"

#include "neurite/error.h"
#include "neurite/layers/layers.h"

namespace neurite::layers::models::detail {

using autograd::relu;

namespace {

std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride, int64_t groups = 1) {
  return std::make_shared<Conv2d>(in, out, 3,
                                  Conv2dLayerOptions{.stride = stride, .padding = 1, .groups = groups, .bias = false});
}

// conv 3x3 - BN - ReLU - conv 3x3 - BN, plus the input (through a 1x1 conv +
// BN where the shape changes), then ReLU. (N, in, H, W) -> (N, out, H/s, W/s)
class BasicBlock : public UnaryModule {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", conv3x3(in, out, stride))),
        bn1(register_module("bn1", std::make_shared<BatchNorm2d>(out))),
        conv2(register_module("conv2", conv3x3(out, out, 1))),
        bn2(register_module("bn2", std::make_shared<BatchNorm2d>(out))) {
    if (stride != 1 || in != out)
      shortcut = register_module(
          "shortcut", std::make_shared<Sequential>(std::vector<std::shared_ptr<UnaryModule>>{
                          std::make_shared<Conv2d>(in, out, 1, Conv2dLayerOptions{.stride = stride, .bias = false}),
                          std::make_shared<BatchNorm2d>(out)}));
  }
  Variable forward(const Variable& x) override {
    Variable y = bn2->forward(conv2->forward(relu(bn1->forward(conv1->forward(x)))));
    return relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Conv2d> conv2;
  std::shared_ptr<BatchNorm2d> bn2;
  std::shared_ptr<Sequential> shortcut;
};

// conv1 - bn1 - ReLU - layer1..3 (16, 32, 64 channels; strides 1, 2, 2) - global pool - fc
class ResNet : public UnaryModule {
 public:
  ResNet(int64_t blocks_per_stage, const ModelOptions& o)
      : conv1(register_module("conv1", conv3x3(o.in_channels, 16, 1))),
        bn1(register_module("bn1", std::make_shared<BatchNorm2d>(16))) {
    int64_t in = 16;
    const int64_t widths[] = {16, 32, 64};
    for (int stage = 0; stage < 3; ++stage) {
      auto layer = std::make_shared<Sequential>();
      for (int64_t b = 0; b < blocks_per_stage; ++b) {
        layer->push_back(std::make_shared<BasicBlock>(in, widths[stage], b == 0 && stage > 0 ? 2 : 1));
        in = widths[stage];
      }
      stages_.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    fc = register_module("fc", std::make_shared<Linear>(64, o.num_classes));
  }
  Variable forward(const Variable& x) override {
    Variable y = relu(bn1->forward(conv1->forward(x)));
    for (auto& stage : stages_) y = stage->forward(y);
    return fc->forward(autograd::global_avg_pool2d(y));
  }
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Linear> fc;

 private:
  std::vector<std::shared_ptr<Sequential>> stages_;
};

// Depthwise 3x3 (stride s) - BN - ReLU - pointwise 1x1 - BN - ReLU.
class DepthwiseSeparable : public UnaryModule {
 public:
  DepthwiseSeparable(int64_t in, int64_t out, int64_t stride)
      : dw(register_module("dw", conv3x3(in, in, stride, in))),
        bn1(register_module("bn1", std::make_shared<BatchNorm2d>(in))),
        pw(register_module("pw", std::make_shared<Conv2d>(in, out, 1, Conv2dLayerOptions{.bias = false}))),
        bn2(register_module("bn2", std::make_shared<BatchNorm2d>(out))) {}
  Variable forward(const Variable& x) override {
    return relu(bn2->forward(pw->forward(relu(bn1->forward(dw->forward(x))))));
  }
  std::shared_ptr<Conv2d> dw;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Conv2d> pw;
  std::shared_ptr<BatchNorm2d> bn2;
};

class MobileNet : public UnaryModule {
 public:
  explicit MobileNet(const ModelOptions& o) : features(register_module("features", std::make_shared<Sequential>())) {
    features->push_back(conv3x3(o.in_channels, 32, 1));
    features->push_back(std::make_shared<BatchNorm2d>(32));
    features->push_back(std::make_shared<ReLU>());
    int64_t in = 32;
    for (auto [out, stride] : {std::pair<int64_t, int64_t>{64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}}) {
      features->push_back(std::make_shared<DepthwiseSeparable>(in, out, stride));
      in = out;
    }
    fc = register_module("fc", std::make_shared<Linear>(in, o.num_classes));
  }
  Variable forward(const Variable& x) override { return fc->forward(autograd::global_avg_pool2d(features->forward(x))); }
  std::shared_ptr<Sequential> features;
  std::shared_ptr<Linear> fc;
};

// features: (conv 3x3 - BN - ReLU - max pool 2) x 2, 32 and 64 channels;
// classifier: flatten - linear 128 - ReLU - dropout - linear.
class Cnn : public UnaryModule {
 public:
  explicit Cnn(const ModelOptions& o)
      : features(register_module("features", std::make_shared<Sequential>(std::vector<std::shared_ptr<UnaryModule>>{
                                                 conv3x3(o.in_channels, 32, 1), std::make_shared<BatchNorm2d>(32),
                                                 std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
                                                 conv3x3(32, 64, 1), std::make_shared<BatchNorm2d>(64),
                                                 std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2)}))),
        classifier(register_module(
            "classifier", std::make_shared<Sequential>(std::vector<std::shared_ptr<UnaryModule>>{
                              std::make_shared<Flatten>(),
                              std::make_shared<Linear>(64 * (o.image_size / 4) * (o.image_size / 4), 128),
                              std::make_shared<ReLU>(), std::make_shared<Dropout>(0.25f),
                              std::make_shared<Linear>(128, o.num_classes)}))) {}
  Variable forward(const Variable& x) override { return classifier->forward(features->forward(x)); }
  std::shared_ptr<Sequential> features, classifier;
};

}  // namespace

std::shared_ptr<UnaryModule> make_mlp(const ModelOptions& o) {
  const int64_t in = o.in_channels * o.image_size * o.image_size;
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<UnaryModule>>{
      std::make_shared<Flatten>(), std::make_shared<Linear>(in, 1024), std::make_shared<ReLU>(),
      std::make_shared<Linear>(1024, 1024), std::make_shared<ReLU>(), std::make_shared<Linear>(1024, o.num_classes)});
}

std::shared_ptr<UnaryModule> make_cnn(const ModelOptions& o) {
  check<ValueError>(o.image_size >= 4, "cnn: image size {} is smaller than its two 2x2 poolings allow", o.image_size);
  return std::make_shared<Cnn>(o);
}

std::shared_ptr<UnaryModule> make_resnet(int64_t depth, const ModelOptions& o) {
  return std::make_shared<ResNet>((depth - 2) / 6, o);
}

std::shared_ptr<UnaryModule> make_mobilenet(const ModelOptions& o) { return std::make_shared<MobileNet>(o); }

}  // namespace neurite::layers::models::detail
