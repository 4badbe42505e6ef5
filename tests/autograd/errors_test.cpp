// Bad arguments throw a neurite::Error subclass whose message names the op,
// what it got and what it expected.
#include <gtest/gtest.h>

#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/parallel.h"
#include "support/expect_error.h"

namespace neurite::autograd {
namespace {

using testing::expect_error;

Variable v(const Shape& s) { return Variable(Tensor::zeros(s)); }

TEST(Errors, ShapeMismatchesNameTheOpAndBothShapes) {
  expect_error<ShapeError>([] { add(v({2, 3}), v({4})); }, {"add", "[2,3]", "[4]"});
  expect_error<ShapeError>([] { matmul(v({2, 3}), v({4, 5})); }, {"matmul", "[2,3]", "[4,5]"});
  expect_error<ShapeError>([] { matmul(v({2, 3, 4}), v({3, 4, 5})); }, {"matmul", "batch"});
  expect_error<ShapeError>([] { linear(v({2, 5}), v({3, 4})); }, {"linear", "[3,4]", "4", "[2,5]"});
  expect_error<ShapeError>([] { conv2d(v({1, 4, 8, 8}), v({16, 3, 5, 5})); }, {"conv2d", "[16,3,5,5]", "3 input channels", "4"});
  expect_error<ShapeError>([] { conv2d(v({1, 3, 2, 2}), v({4, 3, 5, 5})); }, {"conv2d", "does not fit"});
  expect_error<ShapeError>([] { conv2d(v({1, 3, 8}), v({4, 3, 3, 3})); }, {"conv2d", "(N, C, H, W)", "[1,3,8]"});
  expect_error<ShapeError>([] { layer_norm(v({2, 5}), {4}); }, {"layer_norm", "[4]", "[2,5]"});
  expect_error<ShapeError>([] { softmax(v({2, 5}), 2); }, {"softmax", "dimension 2"});
  expect_error<ShapeError>([] { scaled_dot_product_attention(v({1, 2, 3, 4}), v({1, 2, 5, 3}), v({1, 2, 5, 4})); },
                           {"attention", "[1,2,5,3]"});
  expect_error<ShapeError>([] { reshape(v({2, 3}), {4, 2}); }, {"reshape", "[2,3]", "[4,2]"});
  expect_error<ShapeError>([] { concat({v({2, 3}), v({3, 2})}, 0); }, {"concat", "[3,2]", "[2,3]"});
}

TEST(Errors, DtypeMismatchesNameTheExpectedType) {
  Variable ids(Tensor::zeros({4}, Dtype::i64));
  expect_error<DtypeError>([&] { relu(ids); }, {"relu", "float32", "int64"});
  expect_error<DtypeError>([] { cross_entropy(v({2, 3}), Tensor::zeros({2})); }, {"cross_entropy", "int64"});
  expect_error<DtypeError>([] { embedding(v({5, 2}), Tensor::zeros({2})); }, {"embedding", "int64"});
}

TEST(Errors, OutOfRangeArgumentsNameTheValueAndTheRange) {
  expect_error<ValueError>([] { cross_entropy(v({2, 3}), Tensor::from_data({2}, std::vector<int64_t>{0, 3})); },
                           {"cross_entropy", "target 3", "[0, 3)"});
  expect_error<ValueError>([] { embedding(v({5, 2}), Tensor::from_data({1}, std::vector<int64_t>{7})); },
                           {"embedding", "index 7", "[0, 5)"});
  expect_error<ValueError>([] { dropout(v({2}), 1.0f, true, 1); }, {"dropout", "[0, 1)"});
  expect_error<ValueError>([] { conv2d(v({1, 4, 8, 8}), v({4, 2, 3, 3}), {}, {.groups = 0}); }, {"conv2d", "groups (0)"});
  expect_error<ValueError>([] { clamp(v({2}), 1.0f, 0.0f); }, {"clamp", "min (1)", "max (0)"});
  expect_error<ValueError>([] { max_pool2d(v({1, 1, 4, 4}), {.kernel_h = 2, .kernel_w = 2, .pad_h = 2}); },
                           {"max_pool2d", "padding"});
  expect_error<ValueError>([] { set_num_threads(5000); }, {"set_num_threads", "5000"});
}

TEST(Errors, EvalBatchNormWithoutRunningStatisticsIsAStateError) {
  Tensor none;
  expect_error<StateError>([&] { batch_norm(v({2, 3}), {}, {}, none, none, {.training = false}); },
                           {"batch_norm", "running statistics"});
}

}  // namespace
}  // namespace neurite::autograd
