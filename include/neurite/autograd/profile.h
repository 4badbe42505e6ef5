// neurite/autograd/profile.h — time per op kind of the forward and backward
// passes a thread runs, for finding what dominates a training step.
//
//   autograd::OpProfile profile;
//   {
//     autograd::ProfileGuard guard(profile);     // this thread profiles from here
//     Variable loss = cross_entropy(model.forward(x), y);
//     loss.backward();
//   }
//   for (const auto& [op, t] : profile.ops) fmt::print("{} {:.2f} {:.2f}\n", op, t.forward_ms, t.backward_ms);
//
// An op's forward time runs from the previous op result (or the guard's
// start) to its own result on this thread, so the code between two ops counts
// to the later one; its backward time is its backward closure's. An op built
// from others (attention, transpose) appears as those others; a result made
// by no named op appears as "other".
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "neurite/autograd/variable.h"

namespace neurite::autograd {

struct OpTime {
  double forward_ms = 0, backward_ms = 0;
  int64_t calls = 0;  // forward results
};

struct OpProfile {
  std::map<std::string, OpTime> ops;  // by op name ("matmul", "sparse_linear", ...)
};

// Adds the ops this thread runs to `profile` while it lives; guards do not nest.
class ProfileGuard {
 public:
  explicit ProfileGuard(OpProfile& profile);
  ~ProfileGuard();
  ProfileGuard(const ProfileGuard&) = delete;
  ProfileGuard& operator=(const ProfileGuard&) = delete;
};

namespace detail {
// Names the op that made `y` (a string literal), for profiles; traced() calls it.
void name_op(const Variable& y, const char* op);
}  // namespace detail

// `y`, named as made by `op` (for ops the tracer does not take):
//   return named(Variable(y, {x}, backward), "sparse_linear");
inline Variable named(Variable y, const char* op) {
  detail::name_op(y, op);
  return y;
}

}  // namespace neurite::autograd
