#include "support/golden.h"

#include <gtest/gtest.h>

#include <cmath>

namespace neurite::testing {

autograd::Tensor golden(const std::string& test_case, const std::string& name) {
  return autograd::load_npy(std::string(NEURITE_GOLDEN_DIR) + "/" + test_case + "/" + name + ".npy");
}

void expect_close(const autograd::Tensor& got, const autograd::Tensor& want, const std::string& what, double rtol,
                  double atol) {
  ASSERT_EQ(autograd::to_string(got.shape()), autograd::to_string(want.shape())) << what << ": shapes differ";
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  int64_t bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (std::abs(static_cast<double>(g[i]) - w[i]) <= atol + rtol * std::abs(w[i])) continue;
    if (bad++ == 0) ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << w[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.numel() << " elements differ";
}

}  // namespace neurite::testing
