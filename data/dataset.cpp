#include "neurite/data/dataset.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "neurite/autograd/random.h"
#include "neurite/error.h"

namespace neurite::data {

using autograd::Dtype;
using autograd::to_string;

namespace {
// Row `index` of `rows` (N, ...).
Tensor row(const Tensor& rows, int64_t index) {
  Tensor x = Tensor::empty(Shape(rows.shape().begin() + 1, rows.shape().end()), rows.dtype());
  std::memcpy(x.bytes(), rows.bytes() + static_cast<size_t>(index) * x.nbytes(), x.nbytes());
  return x;
}
}  // namespace

TensorDataset::TensorDataset(Tensor inputs, Tensor labels, int64_t num_classes, std::string source,
                             std::vector<Tensor> more_inputs)
    : inputs_(std::move(inputs)),
      labels_(std::move(labels)),
      more_inputs_(std::move(more_inputs)),
      num_classes_(num_classes),
      source_(std::move(source)) {
  check<ShapeError>(inputs_.dim() >= 1 && labels_.dim() == 1 && inputs_.size(0) == labels_.numel(),
                    "{}: {} inputs {} but {} labels", source_, inputs_.dim() >= 1 ? inputs_.size(0) : 0,
                    to_string(inputs_.shape()), labels_.numel());
  for (size_t k = 0; k < more_inputs_.size(); ++k)
    check<ShapeError>(more_inputs_[k].dim() >= 1 && more_inputs_[k].size(0) == labels_.numel(),
                      "{}: input {} is {} but there are {} labels", source_, k + 2,
                      to_string(more_inputs_[k].shape()), labels_.numel());
  check<DtypeError>(labels_.dtype() == Dtype::i64, "{}: labels must be int64", source_);
  const int64_t* y = labels_.data<int64_t>();
  for (int64_t i = 0; i < labels_.numel(); ++i)
    check<ValueError>(y[i] >= 0 && y[i] < num_classes_, "{}: label {} of example {} is outside [0, {})", source_, y[i],
                      i, num_classes_);
}

Shape TensorDataset::input_shape() const { return Shape(inputs_.shape().begin() + 1, inputs_.shape().end()); }

Example TensorDataset::get(int64_t index) const {
  check<ValueError>(index >= 0 && index < size(), "{}: example {} is outside [0, {})", source_, index, size());
  Example e{.input = row(inputs_, index), .label = labels_.data<int64_t>()[index]};
  for (const Tensor& more : more_inputs_) e.more_inputs.push_back(row(more, index));
  return e;
}

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  for (int64_t i : indices_)
    check<ValueError>(i >= 0 && i < base_->size(), "Subset: index {} is outside the dataset's [0, {})", i,
                      base_->size());
}

std::pair<std::shared_ptr<Dataset>, std::shared_ptr<Dataset>> random_split(std::shared_ptr<const Dataset> base,
                                                                           double fraction, uint64_t seed) {
  check<ValueError>(fraction > 0 && fraction < 1, "random_split: fraction {} must lie in (0, 1)", fraction);
  std::vector<int64_t> order(static_cast<size_t>(base->size()));
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size(); i > 1; --i)  // Fisher-Yates with counter-based draws
    std::swap(order[i - 1], order[autograd::detail::random_bits(seed, i) % i]);
  const auto cut = static_cast<std::ptrdiff_t>(static_cast<double>(order.size()) * fraction);
  return {std::make_shared<Subset>(base, std::vector<int64_t>(order.begin(), order.begin() + cut)),
          std::make_shared<Subset>(base, std::vector<int64_t>(order.begin() + cut, order.end()))};
}

}  // namespace neurite::data
