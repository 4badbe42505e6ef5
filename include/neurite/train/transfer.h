// Transfer learning: a model starts from another run's checkpoint. Weights
// load by name; a tensor whose shape differs here (a head for another number
// of classes) keeps its fresh initialisation; a loaded weight keeps its
// pruning mask, so a pruned base stays pruned while it is fine-tuned.
//
//   auto model = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32, .num_classes = 100});
//   const train::InitReport r = train::init_from_checkpoint(*model, "base/checkpoint.h5");
//   for (const auto& t : r.reinitialised) fmt::print("{} kept its fresh initialisation\n", t.name);
#pragma once

#include <string>
#include <vector>

#include "neurite/layers/module.h"
#include "neurite/train/checkpoint.h"

namespace neurite::train {

struct InitReport {
  struct Mismatch {
    std::string name;
    autograd::Shape checkpoint_shape, model_shape;
  };
  std::vector<std::string> loaded;     // tensors copied from the checkpoint, masks included
  std::vector<Mismatch> reinitialised;  // same name, another shape: left as initialised
  int64_t model_tensors = 0;           // parameters and buffers of the model
};

// Loads `base`'s tensors into `model` by name, as described above; names
// only one of them has are skipped. Throws ValueError if no name matches
// with the same shape (`where` names the checkpoint in the message).
InitReport init_from_checkpoint(layers::Module& model, const Checkpoint& base, const std::string& where = "checkpoint");
// The same from the checkpoint file at `path`; IoError / FormatError from loading it.
InitReport init_from_checkpoint(layers::Module& model, const std::string& path);

}  // namespace neurite::train
