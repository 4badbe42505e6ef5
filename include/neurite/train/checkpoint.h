// Checkpoints in HDF5, readable with h5py:
//   /model/<name>/value            parameters and buffers by dotted name
//   /model/<name>/mask             beside a pruned weight
//   /optimizer/<group.index.name>  optimizer state (momentum, Adam moments, step)
//   attributes on /: format, model, model_options (JSON), optimizer, epoch, step,
//   rng_state, recipe, and input_normalization (JSON {"mean": [...], "std": [...]})
//   when the model was trained on normalised images
// save_checkpoint builds the file in memory and writes it atomically
// (neurite/files.h): a crash or a full disk never leaves a broken checkpoint.
//
//   train::Checkpoint ckpt = train::load_checkpoint("run/checkpoint.h5");
//   auto model = train::build_model(ckpt);  // the zoo model with its weights and masks
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "neurite/layers/models.h"
#include "neurite/optim/optimizer.h"

namespace neurite::train {

using autograd::Tensor;

struct Checkpoint {
  std::string model;  // zoo name, or the ONNX file a GraphModule came from
  std::string graph;  // that model's graph (serialised ONNX, with its imported weights): the run folder is self-contained
  layers::models::ModelOptions options;
  layers::StateDict state;               // parameters and buffers
  std::map<std::string, Tensor> masks;   // by parameter name
  std::string optimizer;                 // "sgd", "adam", "adamw" or empty
  optim::OptimizerState optimizer_state;
  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;   // optimizer steps taken
  // An interrupted run's place in epoch `epoch` (0 at an epoch's end): the
  // batches done, and their summed loss and examples for the epoch's mean.
  int64_t batch = 0, epoch_examples = 0;
  double epoch_loss = 0;
  uint64_t rng_state = 0;
  std::string recipe;  // the recipe text the run followed, if any
  // Per-channel (x - mean) / std the model's images get before it (train
  // --normalize), so that evaluation feeds it as training did and its export
  // takes the images as they come; empty: none.
  std::vector<float> input_mean, input_std;
  std::string file;  // the file load_checkpoint read it from (not saved), for errors
};

// Throws IoError if the file cannot be written.
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// Throws IoError for a missing file, FormatError for one that is not a Neurite checkpoint.
Checkpoint load_checkpoint(const std::string& path);

// The module's parameters, buffers and masks into checkpoint.state/masks.
void capture_model(const layers::Module& model, Checkpoint& checkpoint);
// Builds checkpoint.model with its options (or the GraphModule of
// checkpoint.graph) and loads weights and masks (strict).
std::shared_ptr<layers::UnaryModule> build_model(const Checkpoint& checkpoint);

}  // namespace neurite::train
