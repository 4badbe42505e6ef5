// Reference values written by tests/golden/make_golden.py (PyTorch 1.13) as
// .npy files under tests/golden/data/<case>/<name>.npy.
#pragma once

#include <string>

#include "neurite/autograd/tensor.h"

namespace neurite::testing {

autograd::Tensor golden(const std::string& test_case, const std::string& name);

// Adds a GoogleTest failure naming `what` and the first mismatching element
// unless |got - want| <= atol + rtol * |want| everywhere and the shapes agree.
void expect_close(const autograd::Tensor& got, const autograd::Tensor& want, const std::string& what,
                  double rtol = 1e-4, double atol = 1e-5);

}  // namespace neurite::testing
