// Readers for the data formats Neurite trains on, and the data specs of the
// command line. Each throws IoError (missing or unreadable file) or
// FormatError (truncated or malformed content) naming the file.
//
//   auto splits = data::open_data("idx:/data/fashion/train");
//   auto cifar = data::open_data("cifar10:/data/cifar-10-batches-bin");  // train and test
#pragma once

#include <memory>
#include <string>

#include "neurite/data/dataset.h"

namespace neurite::data {

// IDX files (MNIST's format), plain or gzip-compressed: unsigned-byte images
// (N, H, W) as float32 (N, 1, H, W) in [0, 1]; labels (N) as int64.
Tensor read_idx_images(const std::string& path);
Tensor read_idx_labels(const std::string& path);
// PREFIX-images-idx3-ubyte[.gz] with PREFIX-labels-idx1-ubyte[.gz].
std::shared_ptr<TensorDataset> load_idx(const std::string& prefix);

// CIFAR-10 binary batches: records of 1 label byte + 3x32x32 image bytes.
std::shared_ptr<TensorDataset> load_cifar10(const std::vector<std::string>& files);

// HDF5 file with datasets `x` (N, ...) float32 or uint8 (scaled to [0, 1]),
// or wider integers (token ids (N, L), read as int64), and `y` (N) integer
// labels; a model of several inputs finds the second in `x2`, the third in
// `x3` and so on (read as `x` is: an attention mask of int64 stays integer).
std::shared_ptr<TensorDataset> load_h5(const std::string& path);
// Writes `x`, `more_inputs` as x2, x3, ... and `y` as load_h5 reads them
// (tests and converters).
void save_h5(const std::string& path, const Tensor& x, const Tensor& y, const std::vector<Tensor>& more_inputs = {});

// One subfolder per class (sorted names are the classes); images decoded with
// OpenCV on access, as grayscale or colour after the first image and resized
// to the first image's size.
class ImageFolder : public Dataset {
 public:
  explicit ImageFolder(const std::string& root);
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  Example get(int64_t index) const override;
  Shape input_shape() const override { return {channels_, height_, width_}; }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::string source(int64_t index) const override { return files_.at(index); }
  const std::vector<std::string>& classes() const { return classes_; }

 private:
  std::vector<std::string> classes_, files_;
  std::vector<int64_t> labels_;
  int64_t channels_ = 1, height_ = 0, width_ = 0;
};

struct DataSplits {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> test;  // null when the source has no test split
};

// SPEC: fashion-mnist | mnist-digits | idx:PREFIX | folder:DIR | h5:FILE | cifar10:DIR.
// folder:DIR uses DIR/train and DIR/test (or DIR/val) when present.
// Throws ValueError for an unknown spec, listing the known forms.
DataSplits open_data(const std::string& spec);

// Where `mnist-digits` lives: $NEURITE_DATA_DIR, else data/ beside the neurite binary's build folder.
std::string data_dir();

}  // namespace neurite::data
