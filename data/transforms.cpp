#include "neurite/data/transforms.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "neurite/autograd/random.h"
#include "neurite/error.h"

namespace neurite::data {

using autograd::to_string;

namespace {
void check_image(const Tensor& x, const char* op) {
  check<ShapeError>(x.dim() == 3 && x.dtype() == autograd::Dtype::f32, "{}: expected a float32 (C, H, W) image, got {}",
                    op, to_string(x.shape()));
}
}  // namespace

Transform normalize(std::vector<float> mean, std::vector<float> stddev) {
  check<ValueError>(!mean.empty() && mean.size() == stddev.size(), "normalize: {} means and {} deviations", mean.size(),
                    stddev.size());
  for (float s : stddev) check<ValueError>(s > 0, "normalize: standard deviation {} must be positive", s);
  return [mean, stddev](const Tensor& x, uint64_t) {
    check_image(x, "normalize");
    const int64_t c = x.size(0), plane = x.size(1) * x.size(2);
    check<ShapeError>(mean.size() == 1 || static_cast<int64_t>(mean.size()) == c,
                      "normalize: {} means for an image of {} channels", mean.size(), c);
    Tensor y = Tensor::empty(x.shape());
    for (int64_t ch = 0; ch < c; ++ch) {
      const float m = mean[mean.size() == 1 ? 0 : ch], inv = 1.0f / stddev[mean.size() == 1 ? 0 : ch];
      for (int64_t i = 0; i < plane; ++i) y.data<float>()[ch * plane + i] = (x.data<float>()[ch * plane + i] - m) * inv;
    }
    return y;
  };
}

Transform random_crop(int64_t size, int64_t padding) {
  check<ValueError>(size > 0 && padding >= 0, "random_crop: size {} and padding {}", size, padding);
  return [size, padding](const Tensor& x, uint64_t seed) {
    check_image(x, "random_crop");
    const int64_t c = x.size(0), h = x.size(1), w = x.size(2);
    check<ShapeError>(h + 2 * padding >= size && w + 2 * padding >= size,
                      "random_crop: a {}x{} window does not fit {} padded by {}", size, size, to_string(x.shape()),
                      padding);
    const int64_t top = static_cast<int64_t>(autograd::detail::random_bits(seed, 0) % (h + 2 * padding - size + 1));
    const int64_t left = static_cast<int64_t>(autograd::detail::random_bits(seed, 1) % (w + 2 * padding - size + 1));
    Tensor y = Tensor::zeros({c, size, size});
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t r = 0; r < size; ++r) {
        const int64_t sr = top + r - padding;
        if (sr < 0 || sr >= h) continue;
        for (int64_t col = 0; col < size; ++col) {
          const int64_t sc = left + col - padding;
          if (sc >= 0 && sc < w) y.data<float>()[(ch * size + r) * size + col] = x.data<float>()[(ch * h + sr) * w + sc];
        }
      }
    return y;
  };
}

Transform horizontal_flip(float p) {
  return [p](const Tensor& x, uint64_t seed) {
    check_image(x, "horizontal_flip");
    if (autograd::detail::uniform01(seed, 2) >= p) return x;
    const int64_t rows = x.size(0) * x.size(1), w = x.size(2);
    Tensor y = Tensor::empty(x.shape());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < w; ++col) y.data<float>()[r * w + col] = x.data<float>()[r * w + w - 1 - col];
    return y;
  };
}

Transform resize(int64_t height, int64_t width) {
  check<ValueError>(height > 0 && width > 0, "resize: size {}x{} must be positive", height, width);
  return [height, width](const Tensor& x, uint64_t) {
    check_image(x, "resize");
    const int64_t c = x.size(0);
    Tensor y = Tensor::empty({c, height, width});
    for (int64_t ch = 0; ch < c; ++ch) {
      const cv::Mat src(static_cast<int>(x.size(1)), static_cast<int>(x.size(2)), CV_32F,
                        const_cast<float*>(x.data<float>() + ch * x.size(1) * x.size(2)));
      cv::Mat dst(static_cast<int>(height), static_cast<int>(width), CV_32F, y.data<float>() + ch * height * width);
      cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
    }
    return y;
  };
}

Example TransformedDataset::get(int64_t index) const {
  Example e = base_->get(index);
  e.input = transform_(e.input, 0);
  return e;
}

std::pair<std::vector<float>, std::vector<float>> channel_statistics(const Dataset& data, int64_t max_examples) {
  const int64_t n = std::min(data.size(), max_examples);
  check<ValueError>(n > 0 && max_examples > 0, "channel_statistics: no examples");
  std::vector<double> sum, square;
  int64_t plane = 0;
  for (int64_t k = 0; k < n; ++k) {
    const Tensor x = data.get(k * data.size() / n).input;
    check_image(x, "channel_statistics");
    if (sum.empty()) sum.assign(static_cast<size_t>(x.size(0)), 0), square = sum;
    check<ShapeError>(static_cast<size_t>(x.size(0)) == sum.size(), "channel_statistics: {}: {} channels, the first {}",
                      data.source(k * data.size() / n), x.size(0), sum.size());
    plane = x.size(1) * x.size(2);
    for (size_t c = 0; c < sum.size(); ++c)
      for (int64_t i = 0; i < plane; ++i) {
        const double v = x.data<float>()[static_cast<int64_t>(c) * plane + i];
        sum[c] += v;
        square[c] += v * v;
      }
  }
  std::vector<float> mean, stddev;
  const double count = static_cast<double>(n * plane);
  for (size_t c = 0; c < sum.size(); ++c) {
    const double m = sum[c] / count;
    mean.push_back(static_cast<float>(m));
    // A constant channel keeps a deviation of 1: it is centred, not blown up.
    const double var = std::max(0.0, square[c] / count - m * m);
    stddev.push_back(var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.0f);
  }
  return {mean, stddev};
}

}  // namespace neurite::data
