// The zoo's registry: every model's defaults build it and fit its family.
#include <gtest/gtest.h>

#include "neurite/error.h"
#include "neurite/layers/models.h"
#include "support/expect_error.h"

namespace neurite::layers::models {
namespace {

TEST(ModelDefaults, EveryZooModelBuildsFromItsDefaultOptions) {
  for (const auto& name : model_names()) {
    const ModelDefaults& d = model_defaults(name);
    EXPECT_NO_THROW(make_model(name, d.options)) << name;
    EXPECT_EQ(d.takes_tokens, takes_tokens(name)) << name;
    EXPECT_TRUE(d.optimizer == "sgd" || d.optimizer == "adamw") << name;
    EXPECT_GT(d.batch_size, 0) << name;
  }
}

TEST(ModelDefaults, FamiliesStartFromTheirUsualInputsAndOptimizer) {
  for (const char* resnet : {"resnet20", "resnet32", "resnet56"}) {
    EXPECT_EQ(model_defaults(resnet).options.in_channels, 3) << resnet;
    EXPECT_EQ(model_defaults(resnet).options.image_size, 32) << resnet;
  }
  for (const char* mnist_sized : {"mlp", "cnn", "mobilenet", "vit-tiny"}) {
    EXPECT_EQ(model_defaults(mnist_sized).options.in_channels, 1) << mnist_sized;
    EXPECT_EQ(model_defaults(mnist_sized).options.image_size, 28) << mnist_sized;
  }
  EXPECT_EQ(model_defaults("vit-tiny").optimizer, "adamw");
  EXPECT_EQ(model_defaults("transformer").optimizer, "adamw");
  EXPECT_EQ(model_defaults("resnet20").optimizer, "sgd");
  EXPECT_TRUE(model_defaults("transformer").takes_tokens);
  EXPECT_EQ(model_defaults("mlp").batch_size, 256);
  EXPECT_EQ(model_defaults("transformer").batch_size, 32);
  EXPECT_EQ(model_defaults("resnet20").batch_size, 128);
}

TEST(ModelDefaults, AnUnknownNameListsTheZoo) {
  testing::expect_error<ValueError>([] { model_defaults("resnet21"); }, {"unknown model 'resnet21'", "resnet20"});
  EXPECT_FALSE(takes_tokens("graph.onnx"));  // imported graphs are not in the zoo
}

}  // namespace
}  // namespace neurite::layers::models
