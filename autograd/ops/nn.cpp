// Network ops: embedding, dropout, scaled dot-product attention.
#include <cmath>
#include <cstring>

#include "autograd/elementwise_kernels.h"
#include "neurite/autograd/random.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/profile.h"
#include "neurite/autograd/trace.h"

namespace neurite::autograd {

Variable embedding(const Variable& weight, const Tensor& indices) {
  check<ShapeError>(weight.dim() == 2, "embedding: weight must be (V, D), got {}", ShapeArg{weight.shape()});
  check<DtypeError>(indices.dtype() == Dtype::i64, "embedding: indices must be int64, got {}", to_string(indices.dtype()));
  const int64_t vocab = weight.size(0), d = weight.size(1);
  const int64_t* pi = indices.data<int64_t>();
  for (int64_t i = 0; i < indices.numel(); ++i)
    check(pi[i] >= 0 && pi[i] < vocab, "embedding: index {} at position {} is outside [0, {})", pi[i], i, vocab);
  Shape out_shape = indices.shape();
  out_shape.push_back(d);
  Tensor y = Tensor::empty(out_shape);
  const float* pw = weight.data().data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < indices.numel(); ++i) std::memcpy(py + i * d, pw + pi[i] * d, sizeof(float) * d);
  return traced(Variable(y, {weight}, [indices, d](const Tensor& g, std::vector<Variable>& in) {
    Tensor dw = Tensor::zeros(in[0].shape());
    const int64_t* pi = indices.data<int64_t>();
    const float* pg = g.data<float>();
    float* pd = dw.data<float>();
    for (int64_t i = 0; i < indices.numel(); ++i)
      for (int64_t j = 0; j < d; ++j) pd[pi[i] * d + j] += pg[i * d + j];
    in[0].add_grad(std::move(dw));
  }), "embedding", {}, {indices});
}

namespace {
// out[i] = in[i] · (dropped ? 0 : scale) for i in [b, e). A function of its
// own, over restrict pointers: inside the op's lambdas the loop ran 4x slower.
void drop(const float* __restrict in, float* __restrict out, int64_t b, int64_t e, uint32_t key, uint32_t threshold,
          float scale) {
  for (int64_t i = b; i < e; ++i)
    out[i] = detail::random_bits32(key, static_cast<uint32_t>(i)) < threshold ? 0.0f : in[i] * scale;
}
}  // namespace

Variable dropout(const Variable& x, float p, bool training, uint64_t seed) {
  check(p >= 0 && p < 1, "dropout: probability is {}, expected a value in [0, 1)", p);
  if (!training || p == 0) return x;
  const float keep_scale = 1.0f / (1.0f - p);
  // Dropped where 32 random bits fall below p · 2^32; each 2^32 elements take their own key.
  const auto threshold = static_cast<uint32_t>(std::min(4294967295.0, std::ldexp(static_cast<double>(p), 32)));
  // out = in · mask, the mask drawn from (seed, index) in the same pass: the
  // backward pass draws it again instead of keeping a mask tensor, and no
  // separate product runs (mask and product had cost 14 % of a sparse
  // transformer step).
  auto masked = [seed, threshold, keep_scale](const Tensor& in) {
    Tensor out = Tensor::empty(in.shape());
    const float* pi = in.data<float>();
    float* po = out.data<float>();
    detail::parallel_range(in.numel(), detail::kElementGrain, [&](int64_t b, int64_t e) {
      drop(pi, po, b, e, static_cast<uint32_t>(detail::mix64(seed + static_cast<uint64_t>(b >> 32))), threshold, keep_scale);
    });
    return out;
  };
  return named(Variable(masked(x.data()), {x},
                        [masked](const Tensor& g, std::vector<Variable>& in) { in[0].add_grad(masked(g)); }),
               "dropout");
}

Variable scaled_dot_product_attention(const Variable& q, const Variable& k, const Variable& v,
                                      const AttentionOptions& options) {
  check<ShapeError>(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
                    "attention: q, k, v must be (N, H, L, D), got {}, {}, {}", ShapeArg{q.shape()},
                    ShapeArg{k.shape()}, ShapeArg{v.shape()});
  const int64_t batch = q.size(0), heads = q.size(1), len_q = q.size(2), depth = q.size(3), len_k = k.size(2);
  check<ShapeError>(k.size(0) == batch && k.size(1) == heads && k.size(3) == depth && v.size(0) == batch &&
                        v.size(1) == heads && v.size(2) == len_k,
                    "attention: q {}, k {} and v {} do not fit together", ShapeArg{q.shape()}, ShapeArg{k.shape()},
                    ShapeArg{v.shape()});
  const float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(depth)));
  Variable scores = mul(matmul(q, transpose(k, 2, 3)), scale);  // (N, H, L, S)

  const bool padded = options.key_padding_mask.defined();
  if (options.causal || padded) {
    // An additive mask of 0 and -inf, broadcast over what it does not depend on.
    if (padded) {
      const Tensor& m = options.key_padding_mask;
      check<ShapeError>(m.shape() == Shape{batch, len_k}, "attention: key_padding_mask must be [{},{}], got {}", batch,
                        len_k, ShapeArg{m.shape()});
    }
    Tensor mask = Tensor::zeros({padded ? batch : 1, 1, options.causal ? len_q : 1, len_k});
    float* pm = mask.data<float>();
    for (int64_t n = 0; n < mask.size(0); ++n)
      for (int64_t i = 0; i < mask.size(2); ++i)
        for (int64_t j = 0; j < len_k; ++j) {
          const Tensor& m = options.key_padding_mask;
          const bool pad = padded && (m.dtype() == Dtype::i64 ? m.data<int64_t>()[n * len_k + j] != 0
                                                              : m.data<float>()[n * len_k + j] != 0);
          const bool future = options.causal && j > i;
          if (pad || future) pm[(n * mask.size(2) + i) * len_k + j] = -INFINITY;
        }
    scores = add(scores, Variable(mask));
  }
  return matmul(softmax(scores, -1), v);
}

}  // namespace neurite::autograd
