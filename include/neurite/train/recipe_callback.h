// The bridge from a recipe to the training loop: a Trainer callback that
// fires a recipes::Manager's modifiers (pruning, learning rate, freezing,
// quantization) before every optimizer step.
//
//   recipes::Manager manager(recipe, *model, optimizer, loader.batches_per_epoch());
//   train::RecipeCallback callback(manager);
//   trainer.add_callback(&callback);  // on resume, first manager.fast_forward(trainer.step())
#pragma once

#include <cstdint>

#include "neurite/recipes/manager.h"
#include "neurite/train/trainer.h"

namespace neurite::train {

class RecipeCallback : public Callback {
 public:
  // `manager` must outlive the callback.
  explicit RecipeCallback(recipes::Manager& manager) : manager_(manager) {}
  void before_step(double epoch, int64_t step) override { manager_.before_step(epoch, step); }

 private:
  recipes::Manager& manager_;
};

}  // namespace neurite::train
