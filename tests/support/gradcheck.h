// The one gradient checker: compares every op's backward with central
// differences.
//
//   expect_gradients_match([](auto& in) { return conv2d(in[0], in[1]); },
//                          {Tensor::randn({2, 3, 5, 5}, 1), Tensor::randn({4, 3, 3, 3}, 2)});
//
// The scalar checked is L = sum(f(x) * R) with a fixed random R, accumulated in
// double; each input element (or a seeded sample of them) is nudged by +-eps
// and (L+ - L-) / 2eps must match the analytic dL/dx within tolerance.
#pragma once

#include <functional>
#include <vector>

#include "neurite/autograd/ops.h"

namespace neurite::testing {

using autograd::Tensor;
using autograd::Variable;

struct GradCheckOptions {
  double eps = 1e-3;        // the finite-difference step
  double rtol = 2e-2;       // relative to the larger of the two gradients
  double atol = 2e-3;       // absolute, for gradients near zero
  int64_t max_checks = 64;  // elements checked per input (a seeded sample)
  std::vector<bool> differentiable;  // per input; empty: all inputs
};

using Function = std::function<Variable(std::vector<Variable>&)>;

// Adds a GoogleTest failure per mismatching element (with the input, the index
// and both values) and returns whether all matched.
bool expect_gradients_match(const Function& f, const std::vector<Tensor>& inputs, const GradCheckOptions& options = {});

// x with every value closer than `margin` to a kink at `point` moved `margin`
// away from it, so that finite differences do not straddle the kink.
Tensor away_from(Tensor x, float point, float margin = 0.05f);

}  // namespace neurite::testing
