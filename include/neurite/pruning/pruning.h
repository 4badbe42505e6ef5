// Magnitude pruning: masks from weight magnitudes, per tensor or global,
// unstructured or structured (blocks, N:M, channels, filters); the sparsity
// schedules of gradual magnitude pruning; parameter selectors; one-shot pruning.
//
//   auto names = pruning::select(*model, {"__ALL_PRUNABLE__"});
//   pruning::prune(*model, names, 0.9, pruning::MaskType::parse("4x1"), /*global=*/false);
#pragma once

#include <string>
#include <vector>

#include "neurite/layers/module.h"

namespace neurite::pruning {

using autograd::Tensor;

// How weights are grouped before scoring. A weight is viewed as a matrix
// (rows = output units, cols = everything else); a group is pruned whole.
// Blocks of a convolution's weight (O, I, kh, kw) span output and input
// channels at one kernel position, as SparseML's block masks do: a [1,4]
// block is four input channels of one tap, the group the INT8 kernels sum
// in one instruction.
struct MaskType {
  enum class Kind { unstructured, block, n_of_m, filter, channel };
  Kind kind = Kind::unstructured;
  int64_t rows = 1, cols = 1;  // block
  int64_t n = 0, m = 0;        // n_of_m: at most n of every m consecutive weights of a row survive
  // "unstructured", "block4" (= [1,4]), "[r,c]" or "RxC" blocks, "N:M", "filter", "channel".
  // Throws ValueError naming the text for anything else.
  static MaskType parse(const std::string& text);
  std::string str() const;
};

// The mask (1 keeps, 0 prunes) that removes the lowest-scoring `sparsity`
// fraction of `weight`'s groups; a group's score is its mean |w| (L2 norm for
// filters and channels). Positions already 0 in `previous` (if defined) stay 0.
Tensor magnitude_mask(const Tensor& weight, const Tensor& previous, double sparsity, const MaskType& type);

// One threshold across all tensors: the lowest-scoring groups over the whole
// selection are pruned until `sparsity` of all its weights are masked.
std::vector<Tensor> global_magnitude_masks(const std::vector<Tensor>& weights, const std::vector<Tensor>& previous,
                                           double sparsity, const MaskType& type);

enum class Interpolation { linear, cubic, inverse_cubic };
// "linear", "cubic", "inverse_cubic"; ValueError otherwise.
Interpolation parse_interpolation(const std::string& text);
// GMP's sparsity at `epoch` for a ramp over [start, end] from init to final:
// init + f(p) * (final - init), p = clamp((epoch - start) / (end - start), 0, 1).
double scheduled_sparsity(double epoch, double start, double end, double init, double final, Interpolation f);

// The names of the parameters matching any selector: exact names, "re:REGEX"
// (matching from the start of the name, as Python's re.match), "__ALL__",
// "__ALL_PRUNABLE__" (the weight of every Conv2d and Linear module, chosen by
// module type). A selector that matches nothing throws ValueError listing the
// names.
std::vector<std::string> select(const layers::Module& model, const std::vector<std::string>& selectors);

// Every Linear and Conv2d weight (as "__ALL_PRUNABLE__") and every
// MultiheadAttention's in_proj_weight, in the model's order. The input
// projection is a Parameter of the attention, not a Linear, so SparseML's
// selector leaves it out; it holds three quarters of an attention's weights.
std::vector<std::string> linear_conv_and_attention_weights(const layers::Module& model);

// One-shot pruning of the named parameters to `sparsity`; masks only grow.
void prune(layers::Module& model, const std::vector<std::string>& names, double sparsity, const MaskType& type,
           bool global);

// The fraction of zeros in a tensor.
double sparsity_of(const Tensor& t);
// A model's total sparsity, the one figure every report gives: the fraction
// of zeros over the weights of its products (linear_conv_and_attention_weights;
// biases, norms and embeddings are not counted).
double total_sparsity(const layers::Module& model);

}  // namespace neurite::pruning
