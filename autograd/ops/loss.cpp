// Losses: cross entropy (over log_softmax) and mean squared error (composite).
#include <cmath>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/autograd/profile.h"

namespace neurite::autograd {

namespace {

// The negative log-likelihood of log-probabilities (N, C) with PyTorch's
// label smoothing: per row (1-eps) * -logp[y] + eps * mean_c(-logp[c]).
Variable smoothed_nll(const Variable& logp, const Tensor& target, const CrossEntropyOptions& o) {
  const int64_t rows = logp.size(0), classes = logp.size(1);
  const float* pl = logp.data().data<float>();
  const int64_t* pt = target.data<int64_t>();
  const float eps = o.label_smoothing;
  std::vector<float> weight(static_cast<size_t>(rows));  // 0 for ignored rows, else 1 / divisor
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r) kept += pt[r] != o.ignore_index;
  const float scale = o.reduction == Reduction::mean ? (kept > 0 ? 1.0f / static_cast<float>(kept) : NAN) : 1.0f;
  Tensor losses = Tensor::empty({rows});
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (pt[r] == o.ignore_index) {
      losses.data<float>()[r] = 0;
      continue;
    }
    const float* row = pl + r * classes;
    double smooth = 0;
    if (eps > 0)
      for (int64_t c = 0; c < classes; ++c) smooth -= row[c];
    const double loss = (1.0 - eps) * -row[pt[r]] + eps * smooth / static_cast<double>(classes);
    losses.data<float>()[r] = static_cast<float>(loss);
    weight[r] = scale;
    total += loss;
  }
  Tensor out = o.reduction == Reduction::none ? losses : Tensor::scalar(static_cast<float>(total * scale));
  return named(Variable(out, {logp}, [=](const Tensor& g, std::vector<Variable>& in) {
    const int64_t* pt = target.data<int64_t>();
    Tensor d = Tensor::zeros(in[0].shape());
    float* pd = d.data<float>();
    for (int64_t r = 0; r < rows; ++r) {
      if (pt[r] == o.ignore_index) continue;
      const float gr = (o.reduction == Reduction::none ? g.data<float>()[r] : g.item() * weight[r]);
      if (eps > 0)
        for (int64_t c = 0; c < classes; ++c) pd[r * classes + c] = -gr * eps / static_cast<float>(classes);
      pd[r * classes + pt[r]] -= gr * (1.0f - eps);
    }
    in[0].add_grad(std::move(d));
  }), "nll_loss");
}

}  // namespace

Variable cross_entropy(const Variable& logits, const Tensor& target, const CrossEntropyOptions& options) {
  check<ShapeError>(logits.dim() == 2, "cross_entropy: logits must be (N, C), got {}", ShapeArg{logits.shape()});
  check<DtypeError>(target.dtype() == Dtype::i64, "cross_entropy: target must be int64 class indices, got {}",
                    to_string(target.dtype()));
  check<ShapeError>(target.shape() == Shape{logits.size(0)}, "cross_entropy: target must be [{}] for logits {}, got {}",
                    logits.size(0), ShapeArg{logits.shape()}, ShapeArg{target.shape()});
  check(options.label_smoothing >= 0 && options.label_smoothing <= 1,
        "cross_entropy: label_smoothing is {}, expected a value in [0, 1]", options.label_smoothing);
  const int64_t classes = logits.size(1);
  const int64_t* pt = target.data<int64_t>();
  for (int64_t r = 0; r < target.numel(); ++r)
    check(pt[r] == options.ignore_index || (pt[r] >= 0 && pt[r] < classes),
          "cross_entropy: target {} of row {} is outside [0, {})", pt[r], r, classes);
  return smoothed_nll(log_softmax(logits, 1), target, options);
}

Variable mse_loss(const Variable& input, const Variable& target, Reduction reduction) {
  check<ShapeError>(input.shape() == target.shape(), "mse_loss: input {} and target {} differ in shape",
                    ShapeArg{input.shape()}, ShapeArg{target.shape()});
  Variable squared = pow(input - target, 2.0f);
  switch (reduction) {
    case Reduction::mean: return mean(squared);
    case Reduction::sum: return sum(squared);
    case Reduction::none: return squared;
  }
  return squared;
}

}  // namespace neurite::autograd
