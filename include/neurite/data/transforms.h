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

}  // namespace neurite::data
