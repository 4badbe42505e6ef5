// Transfer learning: init_from_checkpoint loads by name, leaves differently
// shaped tensors as initialised, and brings masks along.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "neurite/error.h"
#include "neurite/layers/init.h"
#include "neurite/layers/models.h"
#include "neurite/pruning/pruning.h"
#include "neurite/train/transfer.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace neurite::train {
namespace {

using testing::temp_dir;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

// A pruned 10-class cnn saved as a checkpoint.
Checkpoint pruned_base() {
  layers::manual_seed(1);
  Checkpoint base{.model = "cnn", .options = {.image_size = 8, .num_classes = 10}};
  auto model = layers::models::make_model(base.model, base.options);
  pruning::prune(*model, {"features.0.weight"}, 0.5, {}, false);
  capture_model(*model, base);
  return base;
}

TEST(InitFromCheckpoint, LoadsByNameKeepsMasksAndLeavesAnotherHeadAsInitialised) {
  const Checkpoint base = pruned_base();
  const std::string path = (temp_dir("transfer") / "base.h5").string();
  save_checkpoint(path, base);

  layers::manual_seed(2);
  auto model = layers::models::make_model("cnn", {.image_size = 8, .num_classes = 3});
  const layers::StateDict fresh = model->state_dict();
  const InitReport r = init_from_checkpoint(*model, path);

  const layers::StateDict now = model->state_dict();
  EXPECT_EQ(r.model_tensors, static_cast<int64_t>(now.size()));
  ASSERT_EQ(r.reinitialised.size(), 2u);  // the head's weight and bias: 3 classes here, 10 there
  for (const auto& m : r.reinitialised) {
    EXPECT_EQ(m.checkpoint_shape, base.state.at(m.name).shape()) << m.name;
    EXPECT_EQ(m.model_shape, now.at(m.name).shape()) << m.name;
    EXPECT_TRUE(same_bits(now.at(m.name), fresh.at(m.name))) << m.name << " changed";
  }
  EXPECT_EQ(r.loaded.size() + r.reinitialised.size(), base.state.size());
  for (const auto& name : r.loaded) EXPECT_TRUE(same_bits(now.at(name), base.state.at(name))) << name;
  for (const auto& [name, p] : model->named_parameters())
    if (name == "features.0.weight") {
      ASSERT_TRUE(p->has_mask());
      EXPECT_TRUE(same_bits(p->mask(), base.masks.at(name)));
    } else {
      EXPECT_FALSE(p->has_mask()) << name;
    }
}

TEST(InitFromCheckpoint, ACheckpointOfAnotherModelIsAClearError) {
  const Checkpoint base = pruned_base();
  auto mlp = layers::models::make_model("mlp");
  testing::expect_error<ValueError>([&] { init_from_checkpoint(*mlp, base, "base.h5"); },
                                    {"base.h5", "no parameter name matches", "cnn"});
  EXPECT_THROW(init_from_checkpoint(*mlp, (temp_dir("transfer_missing") / "none.h5").string()), IoError);
}

}  // namespace
}  // namespace neurite::train
