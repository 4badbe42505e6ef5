// neurite/autograd/ops.h — every differentiable op.
//
//   Variable h = relu(linear(x, w1, b1));                 // x [N,784], w1 [256,784]
//   Variable loss = cross_entropy(linear(h, w2, b2), y);  // y int64 [N]
//   loss.backward();
//
// Shapes are written (N, C, H, W) style. Every op throws ShapeError or
// DtypeError naming itself, what it got and what it expected. Binary
// elementwise ops broadcast like NumPy. "Saves" says what backward keeps alive.
#pragma once

#include <functional>
#include <span>

#include <cstdint>
#include <optional>
#include <vector>

#include "neurite/autograd/tensor.h"
#include "neurite/autograd/variable.h"

namespace neurite::autograd {

// ---- elementwise (elementwise.cpp) --------------------------------------------
Variable add(const Variable& a, const Variable& b);  // saves nothing
Variable sub(const Variable& a, const Variable& b);  // saves nothing
Variable mul(const Variable& a, const Variable& b);  // saves a, b
Variable div(const Variable& a, const Variable& b);  // saves a, b
Variable add(const Variable& a, float b);
Variable mul(const Variable& a, float b);
Variable neg(const Variable& x);
Variable exp(const Variable& x);    // saves the result
Variable log(const Variable& x);    // saves x
Variable sqrt(const Variable& x);   // saves the result
Variable pow(const Variable& x, float exponent);  // saves x
Variable clamp(const Variable& x, std::optional<float> min, std::optional<float> max);  // saves x
Variable relu(const Variable& x);     // saves the result
Variable erf(const Variable& x);      // saves x
Variable abs(const Variable& x);      // saves x; gradient 0 at 0, as PyTorch's
// Elementwise with broadcasting; the gradient goes to the larger (smaller)
// input, split evenly on ties, as PyTorch's maximum/minimum.
Variable maximum(const Variable& a, const Variable& b);
Variable minimum(const Variable& a, const Variable& b);
// a where cond is non-zero, else b; cond (any dtype), a and b broadcast
// together. Gradients flow to the branch each element took.
Variable where(const Tensor& cond, const Variable& a, const Variable& b);
enum class GeluApproximation { none, tanh };  // none: x * Phi(x) with erf, as PyTorch's default
Variable gelu(const Variable& x, GeluApproximation approximate = GeluApproximation::none);  // saves x
Variable sigmoid(const Variable& x);  // saves the result
Variable tanh(const Variable& x);     // saves the result

Variable operator+(const Variable& a, const Variable& b);
Variable operator-(const Variable& a, const Variable& b);
Variable operator*(const Variable& a, const Variable& b);
Variable operator/(const Variable& a, const Variable& b);
Variable operator-(const Variable& x);
Variable operator+(const Variable& a, float b);
Variable operator-(const Variable& a, float b);
Variable operator*(const Variable& a, float b);
Variable operator/(const Variable& a, float b);
Variable operator*(float a, const Variable& b);

// The shape both operands broadcast to; ShapeError naming `op` otherwise.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Sums `t` down to `shape` (which `t`'s shape broadcast from).
Tensor sum_to(const Tensor& t, const Shape& shape);

// ---- reductions (reduce.cpp) ---------------------------------------------------
Variable sum(const Variable& x);  // all elements, shape []
Variable sum(const Variable& x, const std::vector<int64_t>& dims, bool keepdim = false);
Variable mean(const Variable& x);
Variable mean(const Variable& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Maximum over one dimension; the gradient goes to the first maximum. Saves the argmax.
Variable max(const Variable& x, int64_t dim, bool keepdim = false);
Variable softmax(const Variable& x, int64_t dim);      // saves the result
Variable log_softmax(const Variable& x, int64_t dim);  // saves the result

// ---- linear algebra (linalg.cpp) ----------------------------------------------
// (M,K)x(K,N); (...,M,K)x(...,K,N) with equal batch dimensions; (...,M,K)x(K,N).
Variable matmul(const Variable& a, const Variable& b);  // saves a, b
// x (..., in), weight (out, in), bias (out) or undefined -> (..., out).
Variable linear(const Variable& x, const Variable& weight, const Variable& bias = {});

// ---- convolution and pooling (conv.cpp, pool.cpp) ----------------------------------------
struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};
// x (N, C, H, W), weight (F, C/groups, KH, KW), bias (F) or undefined -> (N, F, OH, OW).
// Saves x and weight.
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias = {}, const Conv2dOptions& options = {});

struct Pool2dOptions {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 0, stride_w = 0;  // 0: the kernel size, as PyTorch
  int64_t pad_h = 0, pad_w = 0;
  bool count_include_pad = true;  // avg_pool2d only
};
Variable max_pool2d(const Variable& x, const Pool2dOptions& options);  // saves the argmax
Variable avg_pool2d(const Variable& x, const Pool2dOptions& options);
// PyTorch's adaptive bins: bin i covers [floor(i*H/OH), ceil((i+1)*H/OH)).
Variable adaptive_avg_pool2d(const Variable& x, int64_t out_h, int64_t out_w);
Variable global_avg_pool2d(const Variable& x);  // (N,C,H,W) -> (N,C)

// ---- normalisation (norm.cpp) ----------------------------------------------------
struct BatchNormOptions {
  bool training = true;
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch
  float eps = 1e-5f;
  // Synchronised batch norm (data-parallel training): adds a vector up over
  // every process that holds a share of the batch, in place. Training then
  // normalises with the whole batch's statistics, and the input's gradient
  // takes the whole batch's sums (the weight's and bias's stay this share's,
  // for the gradient exchange to add). Empty: this process's batch alone.
  std::function<void(std::span<double>)> sum_across;
};
// x (N, C, ...); weight, bias (C) or undefined. In training the batch's
// statistics normalise x and update running_mean/running_var in place
// (unbiased variance, as PyTorch); in eval the running statistics are used.
Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor& running_mean,
                    Tensor& running_var, const BatchNormOptions& options);
// Normalises over the last `normalized_shape.size()` dimensions.
Variable layer_norm(const Variable& x, const Shape& normalized_shape, const Variable& weight = {},
                    const Variable& bias = {}, float eps = 1e-5f);

// ---- losses (loss.cpp) ---------------------------------------------------------
enum class Reduction { mean, sum, none };
struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  float label_smoothing = 0.0f;
  Reduction reduction = Reduction::mean;  // mean over targets that are not ignored
};
// logits (N, C), target int64 (N) of class indices in [0, C) or ignore_index.
Variable cross_entropy(const Variable& logits, const Tensor& target, const CrossEntropyOptions& options = {});
Variable mse_loss(const Variable& input, const Variable& target, Reduction reduction = Reduction::mean);

// ---- networks (nn.cpp) ----------------------------------------------------------
// weight (V, D), indices int64 of any shape -> (..., D). Indices outside [0, V) throw.
Variable embedding(const Variable& weight, const Tensor& indices);
// Zeroes each element with probability p and scales the rest by 1/(1-p);
// identity when !training or p == 0. Seeded: the same seed, the same mask.
Variable dropout(const Variable& x, float p, bool training, uint64_t seed);

struct AttentionOptions {
  bool causal = false;
  // (N, S) with non-zero at padded key positions, or undefined.
  Tensor key_padding_mask;
  std::optional<float> scale;  // default 1/sqrt(D)
};
// q (N, H, L, D), k (N, H, S, D), v (N, H, S, Dv) -> (N, H, L, Dv): softmax(q k^T * scale + mask) v,
// composed from matmul, mul, add and softmax.
Variable scaled_dot_product_attention(const Variable& q, const Variable& k, const Variable& v,
                                      const AttentionOptions& options = {});

// ---- quantisation (quantize.cpp) -------------------------------------------------
// PyTorch's fake_quantize_per_tensor_affine (axis -1) and _per_channel_affine
// (axis >= 0): x rounded to the 8-bit grid of `scale` (float, [1] or [C]) and
// `zero_point` (int64, same shape) in [quant_min, quant_max], and back to float
// (neurite/kernels/quantize.h). The gradient passes where x / scale + zero_point
// rounds inside the range and is 0 outside (straight through); scale and
// zero_point get none. Saves x.
Variable fake_quantize(const Variable& x, const Tensor& scale, const Tensor& zero_point, int64_t quant_min,
                       int64_t quant_max, int64_t axis = -1);

// ---- shapes (shape.cpp) ----------------------------------------------------------
Variable reshape(const Variable& x, const Shape& shape);
Variable flatten(const Variable& x, int64_t start_dim = 1, int64_t end_dim = -1);
Variable permute(const Variable& x, const std::vector<int64_t>& order);
Variable transpose(const Variable& x, int64_t dim0, int64_t dim1);
Variable slice(const Variable& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Variable concat(const std::vector<Variable>& parts, int64_t dim);
Variable index_select(const Variable& x, int64_t dim, const Tensor& index);
// x broadcast to `shape` (NumPy rules: x's shape must broadcast to it), a copy;
// the gradient sums back over the broadcast dimensions.
Variable expand(const Variable& x, const Shape& shape);

}  // namespace neurite::autograd
