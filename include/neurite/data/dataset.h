// Datasets: indexed collections of (input, label) examples for classification.
//
//   auto train = data::open_data("fashion-mnist").train;    // 60,000 (1, 28, 28) images
//   data::Example e = train->get(0);                        // e.input (1, 28, 28), e.label in [0, 10)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "neurite/autograd/tensor.h"

namespace neurite::data {

using autograd::Shape;
using autograd::Tensor;

struct Example {
  Tensor input;  // float32 image (C, H, W) or int64 tokens (L)
  int64_t label = 0;
  Tensor target;  // a tensor target instead of the label (regression, dense labels); undefined: the label
  // A model's further inputs, in the order of its inputs after the first (an
  // attention mask beside the tokens, a second view): batched like `input`,
  // passed to UnaryModule::forward_inputs. The transforms see `input` only.
  std::vector<Tensor> more_inputs;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Thread-safe; throws neurite::Error on unreadable data.
  virtual Example get(int64_t index) const = 0;
  virtual Shape input_shape() const = 0;  // of one example
  virtual int64_t num_classes() const = 0;
  // Where example `index` comes from (a file), for error messages.
  virtual std::string source(int64_t index) const = 0;
};

// Examples held in memory: inputs (N, ...) float32 or int64, labels (N) int64,
// and optionally further inputs (N, ...) each, an example's more_inputs.
class TensorDataset : public Dataset {
 public:
  // Throws ShapeError if the counts differ, ValueError for labels outside [0, num_classes).
  TensorDataset(Tensor inputs, Tensor labels, int64_t num_classes, std::string source,
                std::vector<Tensor> more_inputs = {});
  int64_t size() const override { return labels_.numel(); }
  Example get(int64_t index) const override;
  Shape input_shape() const override;
  int64_t num_classes() const override { return num_classes_; }
  std::string source(int64_t) const override { return source_; }
  const Tensor& inputs() const { return inputs_; }
  const Tensor& labels() const { return labels_; }
  const std::vector<Tensor>& more_inputs() const { return more_inputs_; }

 private:
  Tensor inputs_, labels_;
  std::vector<Tensor> more_inputs_;
  int64_t num_classes_;
  std::string source_;
};

// The examples of `base` at `indices`, in that order.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t index) const override { return base_->get(indices_.at(index)); }
  Shape input_shape() const override { return base_->input_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  std::string source(int64_t index) const override { return base_->source(indices_.at(index)); }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

// A fixed split of `base` into (first, rest), by a seeded permutation, with
// `fraction` of the examples in `first`.
std::pair<std::shared_ptr<Dataset>, std::shared_ptr<Dataset>> random_split(std::shared_ptr<const Dataset> base,
                                                                           double fraction, uint64_t seed);

}  // namespace neurite::data
