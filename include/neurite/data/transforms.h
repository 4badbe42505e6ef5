// Per-example transforms for DataLoaderOptions::transforms, on (C, H, W) float32 images.
//
//   options.transforms = {data::random_crop(32, 4), data::horizontal_flip(), data::normalize({0.5f}, {0.25f})};
#pragma once

#include <vector>

#include "neurite/data/loader.h"

namespace neurite::data {

// (x - mean[c]) / std[c]; one value applies to every channel.
Transform normalize(std::vector<float> mean, std::vector<float> stddev);
// Pads by `padding` zeros on each side, then crops a random size x size window.
Transform random_crop(int64_t size, int64_t padding);
// Mirrors left-right with probability p.
Transform horizontal_flip(float p = 0.5f);
// Bilinear resize to height x width (OpenCV).
Transform resize(int64_t height, int64_t width);

// The examples of `base` with a fixed (not random) transform applied to each
// input, as normalize: what evaluation feeds a model trained on normalised
// images. Random augmentations belong to DataLoaderOptions::transforms.
class TransformedDataset : public Dataset {
 public:
  TransformedDataset(std::shared_ptr<const Dataset> base, Transform transform)
      : base_(std::move(base)), transform_(std::move(transform)) {}
  int64_t size() const override { return base_->size(); }
  Example get(int64_t index) const override;
  Shape input_shape() const override { return base_->input_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  std::string source(int64_t index) const override { return base_->source(index); }

 private:
  std::shared_ptr<const Dataset> base_;
  Transform transform_;
};

// Per-channel mean and standard deviation of the images of `data`, over at
// most `max_examples` of them spread evenly (for normalize).
std::pair<std::vector<float>, std::vector<float>> channel_statistics(const Dataset& data, int64_t max_examples = 10000);

}  // namespace neurite::data
