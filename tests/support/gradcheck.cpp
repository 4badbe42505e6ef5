#include "support/gradcheck.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace neurite::testing {

namespace {

double projected(const Variable& out, const Tensor& r) {
  double total = 0;
  const float* po = out.data().data<float>();
  const float* pr = r.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) total += static_cast<double>(po[i]) * pr[i];
  return total;
}

}  // namespace

bool expect_gradients_match(const Function& f, const std::vector<Tensor>& inputs, const GradCheckOptions& o) {
  auto differentiable = [&](size_t i) {
    return inputs[i].dtype() == autograd::Dtype::f32 && (o.differentiable.empty() || o.differentiable[i]);
  };
  std::vector<Variable> vars;
  for (size_t i = 0; i < inputs.size(); ++i) vars.emplace_back(inputs[i].clone(), differentiable(i));
  Variable out = f(vars);
  const Tensor projection = Tensor::randn(out.shape(), 12345);
  out.backward(projection);

  bool ok = true;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!differentiable(i)) continue;
    EXPECT_TRUE(vars[i].has_grad()) << "input " << i << " received no gradient";
    if (!vars[i].has_grad()) return false;
    const Tensor analytic = vars[i].grad();
    const int64_t n = inputs[i].numel();
    const int64_t checks = std::min(n, o.max_checks);
    for (int64_t c = 0; c < checks; ++c) {
      const int64_t j = checks == n ? c : static_cast<int64_t>((c * 2654435761ull + 17) % static_cast<uint64_t>(n));
      auto value_at = [&](double delta) {
        std::vector<Variable> probe;
        for (size_t k = 0; k < inputs.size(); ++k) {
          Tensor t = inputs[k].clone();
          if (k == i) t.data<float>()[j] = static_cast<float>(t.data<float>()[j] + delta);
          probe.emplace_back(t, false);
        }
        autograd::NoGradGuard guard;
        return projected(f(probe), projection);
      };
      const double x = inputs[i].data<float>()[j];
      const double eps = o.eps * std::max(1.0, std::abs(x));
      const double numeric = (value_at(eps) - value_at(-eps)) / (2 * eps);
      const double a = analytic.data<float>()[j];
      const double tol = o.atol + o.rtol * std::max(std::abs(a), std::abs(numeric));
      if (!(std::abs(a - numeric) <= tol)) {
        ADD_FAILURE() << "input " << i << " " << autograd::to_string(inputs[i].shape()) << " element " << j
                      << ": analytic " << a << ", numeric " << numeric;
        ok = false;
      }
    }
  }
  return ok;
}

Tensor away_from(Tensor x, float point, float margin) {
  x = x.clone();
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (std::abs(p[i] - point) < margin) p[i] = point + (p[i] >= point ? margin : -margin);
  return x;
}

}  // namespace neurite::testing
