// neurite/autograd/sparse.h — pruned weights in a sparse form, and the ops
// that train them at the cost of their nonzeros.
//
//   auto form = SparseWeight::linear(mask);                 // mask (out, in), 0/1
//   Variable values(form->gather(weight), true);            // the kept weights, [nnz]
//   Variable y = sparse_linear(x, *form, values, bias);     // = linear(x, weight * mask, bias)
//   y.backward(g);                                          // values.grad(): dW at kept positions only
//
// The form is CSR, or 4x1 / 1x4 blocks when the mask has that structure
// (every aligned group of four all kept or all pruned). Forward is a
// sparse-times-dense product, the input gradient the transposed product over
// a transposed pattern that reads the same values, and the weight gradient a
// sampled product at the kept positions (neurite/kernels/sparse.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "neurite/autograd/ops.h"
#include "neurite/kernels/sparse.h"

namespace neurite::autograd {


class SparseWeight {
 public:
  // From the mask of a Linear weight (out, in); `format` unset picks the
  // block form the mask allows, else CSR. A block format the mask does not
  // have throws ValueError.
  static std::shared_ptr<const SparseWeight> linear(const Tensor& mask, std::optional<kernels::WeightFormat> format = {});
  // From the mask of a Conv2d weight (F, C, KH, KW), groups 1.
  static std::shared_ptr<const SparseWeight> conv2d(const Tensor& mask, const Conv2dOptions& options,
                                                    std::optional<kernels::WeightFormat> format = {});
  ~SparseWeight();

  const Shape& shape() const { return shape_; }
  int64_t nnz() const;
  double density() const;
  kernels::WeightFormat format() const { return format_; }
  bool is_conv() const { return conv_.has_value(); }
  const Conv2dOptions& conv_options() const { return *conv_; }
  // Bytes of the form's indices (both patterns), values excluded.
  int64_t index_bytes() const;
  // The kept entries of a dense tensor of shape(), as [nnz].
  Tensor gather(const Tensor& dense) const;
  // Writes values [nnz] into their positions of dense (other entries untouched).
  void scatter(const Tensor& values, Tensor& dense) const;

  const kernels::BlockSparse& forward_pattern() const { return *forward_; }
  const kernels::BlockSparse& transposed_pattern() const { return *transposed_; }

 private:
  SparseWeight() = default;
  static std::shared_ptr<const SparseWeight> build(const Tensor& mask, std::optional<Conv2dOptions> conv,
                                                   std::optional<kernels::WeightFormat> format);
  Shape shape_;
  kernels::WeightFormat format_ = kernels::WeightFormat::csr;
  std::optional<Conv2dOptions> conv_;
  std::unique_ptr<kernels::BlockSparse> forward_, transposed_;
};

// linear(x, W, bias) for W held as `values` [nnz] in the sparse form w;
// `isa` runs the products (forward and backward).
Variable sparse_linear(const Variable& x, const std::shared_ptr<const SparseWeight>& w, const Variable& values,
                       const Variable& bias = {}, kernels::Isa isa = kernels::best_isa());
// conv2d(x, W, bias, w.conv_options()) for W held as `values` in w; a direct
// sparse convolution over the padded input (strided ones by phase planes).
Variable sparse_conv2d(const Variable& x, const std::shared_ptr<const SparseWeight>& w, const Variable& values,
                       const Variable& bias = {}, kernels::Isa isa = kernels::best_isa());

}  // namespace neurite::autograd
